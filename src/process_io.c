/* process_io.c — the I/O thread of a process pool.
 *
 * One thread per pool waits on every worker's result pipe (and on task
 * pipes with bytes still to write) with the GIL released, reads every frame
 * that is ready, then takes the GIL once to apply the whole batch and
 * dispatch more tasks.  Each round is three steps over one batch:
 *
 *   prepare   (GIL held)      decide what to wait for and what to write
 *   transfer  (GIL released)  wait, read whole frames, write what fits
 *   apply     (GIL held)      take answered tasks from their workers,
 *                             notice ended workers, settle crashes, time
 *                             out tasks, replace leavers, dispatch, then
 *                             complete the answered futures, decide to stop
 *
 * The answered futures are completed after the dispatch (pp_settled): the
 * workers have their next tasks before any done-callback runs, and the
 * thread a result wakes finds the GIL let go soon after.  This thread
 * sleeps only in poll, and core_wake writes its eventfd only then.
 *
 * Without the GIL the thread touches only its batch, the inboxes, and the
 * bytes of frames it listed under the GIL (a worker being written is marked
 * `writing`, so no other thread writes to its pipe or frees those frames).
 * Any internal failure (no memory, a poll error) breaks the pool with that
 * error as the cause: no accepted future is ever left pending.
 */
#include "process_pool.h"
#include "shm.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    Py_ssize_t worker;
    unsigned char *payload;
    uint64_t length;
    uint32_t kind, flags;
} pp_frame;

/* Everything one round needs, allocated once for the thread's life. */
typedef struct {
    Py_ssize_t nslots;
    struct pollfd *fds;             /* wake fd, then result and task pipes */
    Py_ssize_t *owner;              /* worker of each fd; -1 for the wake fd */
    int nfds;
    struct iovec (*iovs)[PP_MAX_IOV];
    int *iovcnt;                    /* per worker: bytes listed to write */
    ssize_t *written;
    char *ended;                    /* per worker: its result pipe ended */
    pp_frame *frames;
    size_t nframes, frames_cap;
    pp_settled *settled;            /* answers applied, futures still to complete */
    size_t nsettled, settled_cap;
    int busy;                       /* work in flight: spin before sleeping */
    int64_t deadline_ns;            /* wake by then (a timeout, a kill); 0: none */
    int failed_errno;
} pp_batch;

static int
batch_init(pp_batch *b, Py_ssize_t nslots)
{
    memset(b, 0, sizeof(*b));
    b->nslots = nslots;
    b->fds = PyMem_Calloc((size_t)(2 * nslots + 1), sizeof(struct pollfd));
    b->owner = PyMem_Calloc((size_t)(2 * nslots + 1), sizeof(Py_ssize_t));
    b->iovs = PyMem_Calloc((size_t)nslots, sizeof(*b->iovs));
    b->iovcnt = PyMem_Calloc((size_t)nslots, sizeof(int));
    b->written = PyMem_Calloc((size_t)nslots, sizeof(ssize_t));
    b->ended = PyMem_Calloc((size_t)nslots, 1);
    if (b->fds == NULL || b->owner == NULL || b->iovs == NULL || b->iovcnt == NULL ||
        b->written == NULL || b->ended == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
batch_fini(pp_batch *b)
{
    for (size_t k = 0; k < b->nframes; k++) {
        free(b->frames[k].payload);
    }
    free(b->frames);
    PyMem_Free(b->settled);         /* empty: batch_settle ran last */
    PyMem_Free(b->fds);
    PyMem_Free(b->owner);
    PyMem_Free(b->iovs);
    PyMem_Free(b->iovcnt);
    PyMem_Free(b->written);
    PyMem_Free(b->ended);
}

/* ---- prepare (GIL held) ------------------------------------------------- */

static void
batch_prepare(PoolCoreObject *core, pp_batch *b)
{
    b->nfds = 0;
    b->fds[b->nfds].fd = core->wake_fd;
    b->fds[b->nfds].events = POLLIN;
    b->owner[b->nfds++] = -1;
    b->busy = 0;
    for (Py_ssize_t i = 0; i < b->nslots; i++) {
        pp_worker *w = &core->workers[i];
        b->iovcnt[i] = 0;
        b->written[i] = 0;
        b->ended[i] = 0;
        if (w->state != WORKER_IDLE && w->state != WORKER_BUSY && w->state != WORKER_LEAVING &&
            w->state != WORKER_STOPPING) {
            continue;
        }
        b->busy |= w->tasks.count > 0;
        b->fds[b->nfds].fd = w->result_fd;
        b->fds[b->nfds].events = POLLIN;
        b->owner[b->nfds++] = i;
        if (w->unsent != NULL && w->task_fd >= 0 && !w->writing) {
            b->iovcnt[i] = worker_unsent_iov(w, b->iovs[i]);
            w->writing = 1;
            b->fds[b->nfds].fd = w->task_fd;
            b->fds[b->nfds].events = POLLOUT;
            b->owner[b->nfds++] = i;
        }
    }
}

/* ---- transfer (GIL released) -------------------------------------------- */

typedef struct {
    PoolCoreObject *core;
    pp_batch *batch;
} pp_waiting;

/* Something to do: a frame, room to write, or a wake asked for. */
static int
pollset_ready(void *arg)
{
    pp_waiting *waiting = arg;
    return atomic_load_explicit(&waiting->core->wake_asked, memory_order_relaxed) ||
           poll(waiting->batch->fds, (nfds_t)waiting->batch->nfds, 0) != 0;
}

/* Read every whole frame `w` has sent; note the end of its pipe. */
static void
batch_read_frames(pp_batch *b, pp_worker *w, Py_ssize_t i)
{
    for (;;) {
        wire_read_status r = wire_inbox_read(&w->inbox, w->result_fd);
        if (r == WIRE_READ_MORE) {
            return;
        }
        if (r != WIRE_READ_DONE) {
            b->ended[i] = 1;        /* end of file (or a dead pipe): it is gone */
            return;
        }
        if (b->nframes == b->frames_cap) {
            size_t cap = b->frames_cap ? 2 * b->frames_cap : 64;
            pp_frame *grown = realloc(b->frames, cap * sizeof(pp_frame));
            if (grown == NULL) {
                b->failed_errno = ENOMEM;
                return;
            }
            b->frames = grown;
            b->frames_cap = cap;
        }
        pp_frame *f = &b->frames[b->nframes++];
        f->worker = i;
        f->payload = wire_inbox_take(&w->inbox, &f->length, &f->kind, &f->flags);
    }
}

/* Wait until something is ready (`wait` > 0), then read and write.  Pure C:
 * called with the GIL released. */
static void
batch_transfer(PoolCoreObject *core, pp_batch *b, int wait)
{
    if (wait && b->busy) {
        pp_waiting waiting = {core, b};
        cf_spin(pollset_ready, &waiting, CF_SPIN_PIPE_NS, CF_FOREVER,     /* results come soon */
                CF_SPIN_PIPE_IDLE);
    }
    int timeout_ms = wait ? -1 : 0;
    if (wait && b->deadline_ns != 0) {
        timeout_ms = cf_poll_ms_until(b->deadline_ns);
    }
    /* Asleep from here on: core_wake writes to wake_fd now. */
    atomic_store(&core->io_asleep, 1);
    if (atomic_load(&core->wake_asked)) {
        timeout_ms = 0;
    }
    int ready = poll(b->fds, (nfds_t)b->nfds, timeout_ms);
    atomic_store(&core->io_asleep, 0);
    if (ready < 0 && errno != EINTR) {
        b->failed_errno = errno;
        return;
    }
    for (int k = 0; ready > 0 && k < b->nfds && b->failed_errno == 0; k++) {
        if (b->fds[k].revents == 0) {
            continue;
        }
        Py_ssize_t i = b->owner[k];
        if (i < 0) {
            uint64_t count;
            ssize_t r = read(core->wake_fd, &count, sizeof(count));
            (void)r;
            continue;
        }
        pp_worker *w = &core->workers[i];
        if (b->fds[k].events == POLLOUT) {
            b->written[i] = writev(w->task_fd, b->iovs[i], b->iovcnt[i]);
            continue;
        }
        batch_read_frames(b, w, i);
    }
}

/* Green threads: this thread is a greenlet; wait in the (patched) select
 * so that the others run, until the batch's deadline, then transfer
 * without blocking. */
static int
batch_wait_green(pp_batch *b)
{
    int64_t left = b->deadline_ns - cf_monotonic_ns();
    PyObject *timeout = b->deadline_ns == 0 ? Py_NewRef(Py_None)
                                            : PyFloat_FromDouble(left > 0 ? (double)left / 1e9 : 0.0);
    PyObject *select = PyImport_ImportModule("select");
    PyObject *rlist = PyList_New(0), *wlist = PyList_New(0), *xlist = PyList_New(0);
    int rc = timeout != NULL && select != NULL && rlist != NULL && wlist != NULL && xlist != NULL
                 ? 0 : -1;
    for (int k = 0; rc == 0 && k < b->nfds; k++) {
        PyObject *fd = PyLong_FromLong(b->fds[k].fd);
        rc = fd == NULL ? -1 : PyList_Append(b->fds[k].events == POLLOUT ? wlist : rlist, fd);
        Py_XDECREF(fd);
    }
    PyObject *r = rc == 0 ? PyObject_CallMethod(select, "select", "OOOO", rlist, wlist, xlist,
                                                timeout)
                          : NULL;
    Py_XDECREF(timeout);
    Py_XDECREF(select);
    Py_XDECREF(rlist);
    Py_XDECREF(wlist);
    Py_XDECREF(xlist);
    return cf_consume(r);
}

/* ---- apply (GIL held) --------------------------------------------------- */

/* Complete the futures of the answers applied so far. */
static void
batch_settle(pp_batch *b)
{
    /* (Completing runs done-callbacks, which may submit: that never
     * touches this list, only the I/O thread does.) */
    for (size_t k = 0; k < b->nsettled; k++) {
        task_settle(&b->settled[k]);
    }
    b->nsettled = 0;
}

/* Room for one more settled answer.  0, or -1 (no memory: the answer is
 * completed at once instead). */
static int
batch_settled_room(pp_batch *b)
{
    if (b->nsettled < b->settled_cap) {
        return 0;
    }
    size_t cap = b->settled_cap ? 2 * b->settled_cap : 64;
    pp_settled *grown = PyMem_Realloc(b->settled, cap * sizeof(pp_settled));
    if (grown == NULL) {
        return -1;
    }
    b->settled = grown;
    b->settled_cap = cap;
    return 0;
}

/* Apply the batch's answers (their futures are completed later, by
 * batch_settle), notice ended workers, settle crashes. */
static void
batch_apply(cf_state *st, PoolCoreObject *core, pp_batch *b)
{
    for (Py_ssize_t i = 0; i < b->nslots; i++) {
        pp_worker *w = &core->workers[i];
        if (b->iovcnt[i] > 0) {
            w->writing = 0;
            if (b->written[i] > 0) {
                worker_advance(w, (size_t)b->written[i]);
            }
        }
    }
    for (size_t k = 0; k < b->nframes; k++) {
        pp_frame *f = &b->frames[k];
        int room = batch_settled_room(b) == 0;
        b->nsettled += worker_answered(st, core, &core->workers[f->worker], f->payload,
                                       (size_t)f->length, f->kind, f->flags,
                                       room ? &b->settled[b->nsettled] : NULL);
    }
    b->nframes = 0;
    int ended = 0;
    for (Py_ssize_t i = 0; i < b->nslots; i++) {
        pp_worker *w = &core->workers[i];
        if (b->ended[i] && (w->state == WORKER_IDLE || w->state == WORKER_BUSY ||
                            w->state == WORKER_LEAVING || w->state == WORKER_STOPPING)) {
            worker_ended(w);
            ended = 1;
        }
    }
    if (ended) {
        batch_settle(b);            /* what came before an end is told first */
    }
    for (Py_ssize_t i = 0; i < b->nslots && core->base.phase != POOL_BROKEN; i++) {
        if (core->workers[i].state == WORKER_DEAD) {
            core_settle_crash(st, core, &core->workers[i]);
        }
    }
    if (core_drained(core)) {
        core->mean_task_ns = -1;
    }
}

/* Should the pool wind down?  Shutdown, its executor collected, or the
 * interpreter exiting all mean: finish the accepted work, then stop. */
static int
core_winding_down(cf_state *st, PoolCoreObject *core)
{
    if (st->interpreter_exiting) {
        pool_shut_down(&core->base);
    }
    return core->base.phase == POOL_SHUTTING_DOWN;
}

/* Everything is done: dismiss the idle workers.  1 once every worker is
 * gone (the pool is STOPPED), 0 while some still have to end. */
static int
core_stop_workers(PoolCoreObject *core)
{
    int left = 0;
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        if (w->state == WORKER_IDLE) {
            worker_dismiss(w);
        }
        if (w->state == WORKER_EXITED || w->state == WORKER_DEAD) {
            worker_reap(core, w, -1);
        }
        left |= w->state != WORKER_EMPTY;
    }
    return !left;
}

/* The body of the loop, one round; 1 when the thread should end. */
static int
core_io_round(cf_state *st, PoolCoreObject *core, pp_batch *b)
{
    /* Whatever is asked from now on is seen before this thread sleeps. */
    atomic_store(&core->wake_asked, 0);
    if (core_dispatch(st, core, 0) < 0) {
        PyErr_Clear();              /* only submit's thread raises those */
    }
    /* The workers have their next tasks: now the last round's answers. */
    batch_settle(b);
    if (core->base.phase == POOL_BROKEN) {
        return 1;
    }
    if (core_winding_down(st, core) && core_drained(core) && core_stop_workers(core)) {
        pool_stopped(&core->base);
        return 1;
    }
    /* Before prepare: a worker stopped here is not listed for writing.  One
     * clock reading serves the round. */
    int64_t now = cf_monotonic_ns();
    int64_t deadline = core_enforce_deadlines(st, core, now);
    if (core->base.phase == POOL_BROKEN) {
        return 1;
    }
    batch_prepare(core, b);
    /* Shared memory kept for reuse and left unused goes as the pool waits. */
    b->deadline_ns = cf_sooner(deadline, shm_cache_trim(st, now));
    int green = core->green && cf_threads_are_green(st);
    if (green) {
        atomic_store(&core->io_asleep, 1);
        int rc = atomic_load(&core->wake_asked) ? 0 : batch_wait_green(b);
        atomic_store(&core->io_asleep, 0);
        if (rc < 0) {
            return -1;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    batch_transfer(core, b, !green);
    Py_END_ALLOW_THREADS
    if (b->failed_errno != 0) {
        errno = b->failed_errno;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    batch_apply(st, core, b);
    if (core->base.phase == POOL_BROKEN) {
        return 1;
    }
    core_replace_leavers(st, core);
    return 0;
}

PyObject *
process_pool_io(PyObject *module, PyObject *args)
{
    cf_state *st = cf_state_of_module(module);
    PoolCoreObject *core =
        (PoolCoreObject *)pool_of_thread_args(args, st->PoolCoreType, "_process_pool_io");
    if (core == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);    /* its start was given up */
    }
    pp_batch batch;
    int rc = batch_init(&batch, core->nslots) < 0 ? -1 : 0;
    while (rc == 0) {
        rc = core_io_round(st, core, &batch);
    }
    batch_settle(&batch);           /* answered before the end: completed */
    if (rc < 0) {
        /* The one exit for internal errors: nothing accepted stays pending. */
        PyObject *exc = cf_err_take();
        cf_log_critical(st, "Exception in the process pool's I/O thread:", exc);
        core_break(st, core, exc);
        Py_XDECREF(exc);
    }
    batch_fini(&batch);
    shm_cache_clear(st);            /* the shared memory kept for reuse goes too */
    /* Nobody waits on it any more: no fd outlives the pool's work. */
    if (core->wake_fd >= 0) {
        close(core->wake_fd);
        core->wake_fd = -1;
    }
    Py_DECREF(core);
    Py_RETURN_NONE;
}
