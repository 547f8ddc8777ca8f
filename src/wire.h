/* wire.h — the frame format between the parent and a worker process.
 *
 * A frame is an 8-byte header — payload length and kind, both little-endian
 * uint32 — followed by the payload (a pickle).  The parent shuts a worker
 * down with an EXIT frame — not just by closing the pipe: a process forked
 * later may hold a copy of the pipe's write end — and then closes it; end of
 * file also ends a worker whose parent died.  Each worker has its own pair
 * of pipes, and a worker answers its tasks in the order it got them, so no
 * frame needs an id: the parent knows which task every result belongs to.
 */
#ifndef CF_WIRE_H
#define CF_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define WIRE_HEADER_SIZE 8

typedef enum {
    WIRE_TASK = 1,          /* parent -> worker: pickled (fn, args, kwargs) */
    WIRE_EXIT = 2,          /* parent -> worker: no more work, exit (no payload) */
    WIRE_RESULT = 3,        /* worker -> parent: pickled return value */
    WIRE_ERROR = 4,         /* worker -> parent: pickled exception (with its traceback) */
} wire_kind;

/* Set on a result's kind when the worker exits right after it
 * (max_tasks_per_child reached). */
#define WIRE_LEAVING 0x100

void wire_pack_header(unsigned char header[WIRE_HEADER_SIZE], size_t length, uint32_t kind);
void wire_unpack_header(const unsigned char header[WIRE_HEADER_SIZE], size_t *length,
                        uint32_t *kind);

/* Blocking whole writes/reads for the worker (call without the GIL).
 * wire_write_all: 0, or -1 with errno.  wire_read_all: 0, 1 on end of file
 * before the first byte, -1 with errno (EINTR is returned to the caller,
 * which must run signal handlers and call again for the rest: `*done` says
 * how much arrived). */
int wire_write_all(int fd, struct iovec *iov, int iovcnt);
int wire_read_all(int fd, void *buf, size_t size, size_t *done);

/* Incremental, non-blocking reading of frames for the parent.  The inbox
 * fills its header, then a payload buffer of exactly the announced size. */
typedef struct {
    unsigned char header[WIRE_HEADER_SIZE];
    size_t header_have;
    unsigned char *payload;     /* malloc'd once the header is complete */
    size_t length, have;
    uint32_t kind;
} wire_inbox;

/* Read what is available from `fd` (O_NONBLOCK) into `box`.  Returns 1 when a
 * whole frame is in `box` (take it with wire_inbox_take), 0 when more is
 * needed (EAGAIN), 2 on end of file, -1 with errno on error.  No GIL needed. */
int wire_inbox_read(wire_inbox *box, int fd);

/* Hand over the complete frame's payload (malloc'd; the caller frees it)
 * and reset the inbox for the next frame. */
unsigned char *wire_inbox_take(wire_inbox *box, size_t *length, uint32_t *kind);

void wire_inbox_clear(wire_inbox *box);

#endif /* CF_WIRE_H */
