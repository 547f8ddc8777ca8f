/* shm.h — big payloads through anonymous shared memory, not the pipe.
 *
 * Calls and results are pickled with protocol 5.  The out-of-band buffers
 * of at least SHM_BUFFER_MIN bytes (a NumPy array, a pickle.PickleBuffer)
 * and a pickle of at least SHM_PICKLE_MIN bytes (a 50 MB bytes) are written
 * into one memfd per frame.  Its descriptor goes over the worker's socket
 * (SCM_RIGHTS) just before the frame, and the frame, flagged
 * WIRE_FLAG_SHARED, carries only a table of where each piece is.  The
 * receiver maps the memfd once and unpickles over the mapping: a NumPy
 * array views it, keeping it mapped, without another copy.  When the last
 * object over it goes, the receiver marks the memfd free, and the sender,
 * which kept it, fills it again for a later frame (shm.c: the send cache).
 *
 * Nothing is left behind: a memfd has no name (nothing in /dev/shm); the
 * frame's descriptor is closed once sent; a descriptor in flight belongs to
 * the socket, and goes with it when a worker dies or the pool breaks; the
 * receiver closes it once mapped.  The memory lives as long as the objects
 * over it, or the sender's cache, bounded, which a pool's end empties.
 *
 * The table, little-endian 64-bit words:
 *
 *     count, pickle_at, pickle_length, then count x (offset, length)
 *
 * pickle_at == SHM_INLINE: the pickle follows the table in the frame.
 */
#ifndef CF_SHM_H
#define CF_SHM_H

#include "cfutures.h"

#include <stddef.h>

/* Where shared memory pays, measured here (3.11, 2 cores): a round trip of
 * an array of 64 KiB took 326 us through shared memory and 259 us through
 * the pipe, 128 KiB 344 vs 329 us, 256 KiB 386 vs 1095 us.  Below these the
 * pipe is as fast, and the system calls a memfd costs are not paid. */
#define SHM_BUFFER_MIN (128 * 1024)
#define SHM_PICKLE_MIN (256 * 1024)

/* A frame's payload, ready to write. */
typedef struct {
    Py_buffer payload;      /* the pickle, or the table (and inline pickle) */
    int fd;                 /* the memfd to send before it; -1: none */
    int split;              /* a split call (WIRE_FLAG_SPLIT) */
} shm_frame;

/* A pickle in the pieces its pickler wrote (pickling.c: one buffer, or a
 * _forking_dumps list), each exported, so that none can be resized while it
 * is copied with the GIL released. */
typedef struct {
    Py_buffer *views;               /* `&one`, or a PyMem array for a list */
    Py_ssize_t count;
    size_t length;
    Py_buffer one;                  /* the usual single piece: no allocation a task */
} shm_pieces;

/* The pieces one after the other in `dest`. */
void shm_pieces_copy(const shm_pieces *p, unsigned char *dest);

/* The shared form of `pickle` and its out-of-band `buffers` (a list of
 * PickleBuffers, or NULL: none): the memfd in out->fd, the table (and the
 * pickle, if small) in out->payload.  0, or -1 with an exception. */
int shm_pack(cf_state *st, const shm_pieces *pickle, PyObject *buffers, shm_frame *out);

/* Unpickle a frame's payload.  `fd`: the memfd that came with a SHARED
 * frame, or -1; it is closed here whatever happens.  New reference, or
 * NULL with an exception. */
PyObject *shm_loads(cf_state *st, const void *payload, size_t length, int fd);

/* The socket pair a worker and the parent pass memfds over (SOCK_SEQPACKET,
 * close-on-exec).  0, or -1 with errno. */
int shm_socketpair(int fds[2]);

/* Send `fd` as one message over `sock`; `wait`: block until there is room
 * (the worker), else fail with EAGAIN (the parent).  0, or -1 with errno
 * (EINTR: call again). */
int shm_send_fd(int sock, int fd, int wait);

/* Receive one descriptor from `sock`; `wait` as above.  The descriptor
 * (close-on-exec), or -1 with errno (EINTR: call again; EPROTO: a message
 * without one). */
int shm_recv_fd(int sock, int wait);

/* A shared frame's descriptor that will never be sent (its task was
 * dropped): mark its segment free again, and close it. */
void shm_release_unsent(int fd);

/* Let go of the segments kept for reuse (a process pool stopped). */
void shm_cache_clear(cf_state *st);

/* Let go of the segments kept for reuse that went unused for a while (a
 * second).  When to call it again (monotonic ns), or 0: nothing is kept
 * any more.  The I/O thread and an idle worker call it as they wait. */
int64_t shm_cache_trim(cf_state *st, int64_t now);

/* In the child of fork(): forget the parent's segments. */
void shm_after_fork_child(cf_state *st);

int shm_module_init(PyObject *module, cf_state *st);
void shm_module_free(cf_state *st);

#endif /* CF_SHM_H */
