/* wire.h — the frame format between the parent and a worker process.
 *
 * A frame is a 16-byte header followed by the payload (a pickle):
 *
 *     offset 0   uint64  payload length (so payloads of 4 GiB and more fit)
 *     offset 8   uint32  kind (wire_kind)
 *     offset 12  uint32  flags (WIRE_FLAG_*)
 *
 * all little-endian.  The parent shuts a worker down with an EXIT frame —
 * not just by closing the pipe: a process forked later may hold a copy of
 * the pipe's write end — and then closes it; end of file also ends a worker
 * whose parent died.  Each worker has its own pair of pipes, and a worker
 * answers its tasks in the order it got them, so no frame needs an id: the
 * parent knows which task every answer belongs to.
 */
#ifndef CF_WIRE_H
#define CF_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define WIRE_HEADER_SIZE 16
#define WIRE_LENGTH_AT 0        /* where each field starts in the header */
#define WIRE_KIND_AT 8
#define WIRE_FLAGS_AT 12

typedef enum {
    WIRE_TASK = 1,          /* parent -> worker: pickled (fn, args, kwargs) */
    WIRE_EXIT = 2,          /* parent -> worker: no more work, exit (no payload) */
    WIRE_RESULT = 3,        /* worker -> parent: pickled return value */
    WIRE_ERROR = 4,         /* worker -> parent: pickled exception the call raised */
    WIRE_CALL_ERROR = 5,    /* worker -> parent: pickled exception unpickling the call */
    WIRE_STARTED = 6,       /* worker -> parent: it begins the task (no payload) */
} wire_kind;

/* On an answer: the worker exits right after it (max_tasks_per_child, or
 * its memory grew past max_memory_per_child). */
#define WIRE_FLAG_LEAVING 0x1
/* On a task: say STARTED before running it (a task the pool may stop). */
#define WIRE_FLAG_REPORT_START 0x2
/* On a task or an answer: the payload is shm.h's table; one memfd came
 * over the worker's socket just before the frame. */
#define WIRE_FLAG_SHARED 0x4
/* On a task: the payload is a call split in two pickles (shm.h: split
 * calls): a little-endian uint32 n, the callable's pickle (n bytes), then
 * the pickle of (args, kwargs). */
#define WIRE_FLAG_SPLIT 0x8

void wire_pack_header(unsigned char header[WIRE_HEADER_SIZE], uint64_t length, uint32_t kind,
                      uint32_t flags);
void wire_unpack_header(const unsigned char header[WIRE_HEADER_SIZE], uint64_t *length,
                        uint32_t *kind, uint32_t *flags);

/* How a read ended. */
typedef enum {
    WIRE_READ_DONE,         /* all asked for is there (blocking) / a whole frame (inbox) */
    WIRE_READ_MORE,         /* inbox: nothing more available yet */
    WIRE_READ_EOF,          /* end of file before the first byte of a frame */
    WIRE_READ_FAILED,       /* errno says why (EINTR for the blocking read: call again) */
} wire_read_status;

/* Blocking whole writes/reads for the worker (call without the GIL).
 * wire_write_all: 0, or -1 with errno.  wire_read_all: `*done` says how
 * much arrived so far (end of file in the middle of the buffer is a
 * failure, EPIPE). */
int wire_write_all(int fd, struct iovec *iov, int iovcnt);
wire_read_status wire_read_all(int fd, void *buf, size_t size, size_t *done);

/* Incremental, non-blocking reading of frames for the parent.  The inbox
 * fills its header, then a payload buffer of exactly the announced size.
 * Small frames come in bulk: one read() takes up to WIRE_STAGE_SIZE bytes
 * into the stage, and the frames are cut from there, so a worker's batch of
 * answers costs one system call, not two per frame; the rest of a big
 * payload is read straight into its buffer. */
#define WIRE_STAGE_SIZE (64 * 1024)

typedef struct {
    unsigned char header[WIRE_HEADER_SIZE];
    size_t header_have;
    unsigned char *payload;     /* malloc'd once the header is complete */
    uint64_t length, have;
    uint32_t kind, flags;
    unsigned char *stage;       /* malloc'd on first use: bytes read ahead */
    size_t stage_at, stage_end; /* what of it is still to be cut into frames */
    int drained;                /* the last read came short: the pipe was empty */
} wire_inbox;

/* Read what is available from `fd` (O_NONBLOCK) into `box`: DONE when a
 * whole frame is in `box` (take it with wire_inbox_take), MORE, EOF, or
 * FAILED with errno.  After a read that came short, MORE is said without
 * another read (the pipe was empty; the caller polls before asking again).
 * No GIL needed. */
wire_read_status wire_inbox_read(wire_inbox *box, int fd);

/* Hand over the complete frame's payload (malloc'd; the caller frees it)
 * and reset the inbox for the next frame. */
unsigned char *wire_inbox_take(wire_inbox *box, uint64_t *length, uint32_t *kind,
                               uint32_t *flags);

void wire_inbox_clear(wire_inbox *box);

#endif /* CF_WIRE_H */
