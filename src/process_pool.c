/* process_pool.c — the parent side of ProcessPoolExecutor: the worker table,
 * dispatch, the I/O thread, and broken-pool handling.
 *
 * Each worker process has its own pair of pipes.  The parent writes task
 * frames to a worker's task pipe and reads result frames from its result
 * pipe; a worker answers in order, so each worker's list of dispatched tasks
 * says exactly which future every result — or a crash — belongs to.
 *
 * One I/O thread per pool waits on all result pipes (and on task pipes with
 * bytes still to write) with the GIL released, reads every frame that is
 * ready, then takes the GIL once to complete the whole batch of futures and
 * dispatch more tasks.  submit() pickles in the calling thread and, when a
 * worker has room and nothing is queued for it, writes the frame itself.
 *
 * Invariants:
 *   - Pool state changes only with the GIL held.  Without the GIL the I/O
 *     thread touches only its inboxes and the bytes of frames it listed
 *     under the GIL (frames are freed only by that thread), and only one
 *     thread writes to a task pipe at a time (`writing`).
 *   - A dispatched future is RUNNING (set_running_or_notify_cancel at
 *     dispatch, as the stdlib does when it moves an item to its call queue).
 *     A worker holds one task, plus about a millisecond of predicted work
 *     (core_depth), so the rest stay cancellable and no task waits behind a
 *     long one while another worker is free.
 *   - A worker that ends without having said it would (max_tasks_per_child)
 *     breaks the pool, with the stdlib's BrokenProcessPool messages.
 */
#include "cfutures.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Tasks in flight per worker.  Besides the running one, a worker holds at
 * most about PP_QUEUED_NS of predicted work in its pipe: enough to never
 * idle between short tasks, and to batch writes and reads, while a long task
 * never has much waiting behind it when another worker falls free. */
#define PP_DEPTH_MAX 8
#define PP_QUEUED_NS (1000 * 1000)
#define PP_PIPE_SIZE (1 << 20)
#define PP_MAX_IOV 64

typedef struct pp_task {
    struct pp_task *next;
    int64_t dispatched_at;          /* monotonic ns */
    PyObject *future;
    Py_buffer payload;              /* the pickled (fn, args, kwargs) */
    unsigned char header[WIRE_HEADER_SIZE];
} pp_task;

typedef struct {
    PyObject *process;              /* multiprocessing.Process; NULL: empty slot */
    int task_fd, result_fd;         /* our ends; -1 when closed */
    pp_task *head, *tail;           /* dispatched, in order */
    Py_ssize_t inflight;
    Py_ssize_t assigned;            /* tasks ever sent (max_tasks_per_child) */
    int64_t last_result_at;         /* monotonic ns of its latest result */
    pp_task *unsent;                /* first task not wholly written, or NULL */
    size_t unsent_offset;           /* bytes of it (header + payload) written */
    int writing;                    /* the I/O thread is writing, GIL released */
    int leaving;                    /* will exit after its last result */
    int ended;                      /* its result pipe reached end of file */
    wire_inbox inbox;               /* the I/O thread's, partial frame */
} pp_worker;

typedef struct PoolCoreObject {
    PyObject_HEAD
    PyObject *spawn;                /* cfutures.process._spawn_worker */
    PyObject *context, *initializer, *initargs;
    Py_ssize_t max_tasks_per_child; /* 0: no limit */
    pp_worker *workers;
    Py_ssize_t nworkers;
    pp_task *pending_head, *pending_tail;
    Py_ssize_t npending;
    PyObject *processes;            /* {pid: Process}, the stdlib's `_processes` */
    PyObject *io_thread;
    PyObject *broken;               /* NULL, or the message of later BrokenProcessPool */
    int wake_fd;                    /* eventfd that wakes the I/O thread */
    int started, shutdown, owner_gone, finished;
    Py_ssize_t next_worker;         /* round-robin start for dispatch */
    int64_t mean_task_ns;           /* moving mean service time; -1: none yet */
    struct PoolCoreObject *prev_live, *next_live;
} PoolCoreObject;

typedef struct {
    PyObject_HEAD                   /* _cfutures.Executor has no fields */
    PoolCoreObject *core;
} ProcessPoolObject;

static PoolCoreObject *live_cores;

static const char BROKEN_POOL[] =
    "A child process terminated abruptly, the process pool is not usable anymore";
static const char BROKEN_FUTURE[] =
    "A process in the process pool was terminated abruptly while the future was "
    "running or pending.";

/* ---- tasks -------------------------------------------------------------- */

static void
task_free(pp_task *task)
{
    PyBuffer_Release(&task->payload);
    Py_DECREF(task->future);
    PyMem_Free(task);
}

static size_t
task_size(pp_task *task)
{
    return WIRE_HEADER_SIZE + (size_t)task->payload.len;
}

/* set_exception, ignoring a future that was finished meanwhile. */
static void
fail_future(PyObject *future, PyObject *error)
{
    PyObject *r = future_set_exception(future, error);
    if (r == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(r);
}

/* ---- waking the I/O thread ---------------------------------------------- */

static void
core_wake(PoolCoreObject *core)
{
    if (core->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(core->wake_fd, &one, sizeof(one));
        (void)n;                    /* a full counter still wakes it */
    }
}

/* ---- writing task frames ------------------------------------------------ */

/* The unsent bytes of `w` as iovecs (at most PP_MAX_IOV).  GIL held. */
static int
worker_unsent_iov(pp_worker *w, struct iovec *iov)
{
    int n = 0;
    size_t skip = w->unsent_offset;
    for (pp_task *t = w->unsent; t != NULL && n < PP_MAX_IOV - 1; t = t->next) {
        if (skip < WIRE_HEADER_SIZE) {
            iov[n].iov_base = t->header + skip;
            iov[n++].iov_len = WIRE_HEADER_SIZE - skip;
            skip = 0;
        }
        else {
            skip -= WIRE_HEADER_SIZE;
        }
        iov[n].iov_base = (char *)t->payload.buf + skip;
        iov[n++].iov_len = (size_t)t->payload.len - skip;
        skip = 0;
    }
    return n;
}

/* `written` more bytes went out: move the unsent cursor.  GIL held. */
static void
worker_advance(pp_worker *w, size_t written)
{
    while (w->unsent != NULL && written > 0) {
        size_t left = task_size(w->unsent) - w->unsent_offset;
        if (written < left) {
            w->unsent_offset += written;
            return;
        }
        written -= left;
        w->unsent = w->unsent->next;
        w->unsent_offset = 0;
    }
}

/* Write what fits without blocking, with the GIL held: used by submit for
 * small frames, so a quiet pool needs no wake-up of its I/O thread. */
static void
worker_write_now(PoolCoreObject *core, pp_worker *w)
{
    if (w->writing || w->unsent == NULL || w->task_fd < 0) {
        return;
    }
    struct iovec iov[PP_MAX_IOV];
    int n = worker_unsent_iov(w, iov);
    ssize_t written = writev(w->task_fd, iov, n);
    if (written > 0) {
        worker_advance(w, (size_t)written);
    }
    if (w->unsent != NULL) {
        core_wake(core);            /* the rest is the I/O thread's */
    }
}

/* ---- dispatch ----------------------------------------------------------- */

/* Can `w` take one more task?  Never more than it will run before it
 * leaves (max_tasks_per_child), or a task would be lost with it. */
/* How many tasks a worker may hold: one until a task of the current burst
 * was timed (the mean is forgotten whenever the pool falls idle, so earlier
 * tiny tasks do not make a burst of long ones queue up behind each other). */
static Py_ssize_t
core_depth(PoolCoreObject *core)
{
    if (core->mean_task_ns < 0) {
        return 1;
    }
    int64_t queued = PP_QUEUED_NS / (core->mean_task_ns > 0 ? core->mean_task_ns : 1);
    return queued + 1 < PP_DEPTH_MAX ? (Py_ssize_t)queued + 1 : PP_DEPTH_MAX;
}

static int
worker_has_room(PoolCoreObject *core, pp_worker *w, int64_t now)
{
    if (w->process == NULL || w->ended || w->leaving || w->task_fd < 0 ||
        w->inflight >= core_depth(core) ||
        (core->max_tasks_per_child != 0 && w->assigned >= core->max_tasks_per_child)) {
        return 0;
    }
    if (w->inflight == 0) {
        return 1;
    }
    /* Queue behind a running task only with a backlog: a task bound to this
     * worker's pipe cannot be taken by another worker that falls free first
     * (the stdlib's shared queue allows that, and code may depend on it). */
    if (core->npending <= core->nworkers) {
        return 0;
    }
    /* Never queue behind a task that already ran past the queueing budget:
     * it may run long, and another worker may fall free first. */
    int64_t began = w->head->dispatched_at > w->last_result_at ? w->head->dispatched_at
                                                                : w->last_result_at;
    return now - began < PP_QUEUED_NS;
}

/* The worker with room holding the fewest tasks, or NULL. */
static pp_worker *
core_pick_worker(PoolCoreObject *core, int64_t now)
{
    pp_worker *best = NULL;
    for (Py_ssize_t k = 0; k < core->nworkers; k++) {
        pp_worker *w = &core->workers[(core->next_worker + k) % core->nworkers];
        if (worker_has_room(core, w, now) && (best == NULL || w->inflight < best->inflight)) {
            best = w;
        }
    }
    return best;
}

/* Hand pending tasks to the least loaded workers with room.  GIL held.
 * Cancelled futures are dropped here, as the stdlib drops them instead of
 * sending them. */
static void
core_dispatch(PoolCoreObject *core, int write_now)
{
    int64_t now = cf_monotonic_ns();
    pp_worker *w;
    while (core->pending_head != NULL && (w = core_pick_worker(core, now)) != NULL) {
        pp_task *t = core->pending_head;
        core->pending_head = t->next;
        if (core->pending_head == NULL) {
            core->pending_tail = NULL;
        }
        core->npending--;
        t->next = NULL;
        PyObject *go = future_set_running_or_notify_cancel(t->future, NULL);
        if (go != Py_True) {
            if (go == NULL) {
                PyErr_WriteUnraisable(t->future);
            }
            Py_XDECREF(go);
            task_free(t);
            continue;
        }
        Py_DECREF(go);
        t->dispatched_at = now;
        if (w->tail == NULL) {
            w->head = w->tail = t;
        }
        else {
            w->tail->next = t;
            w->tail = t;
        }
        if (w->unsent == NULL) {
            w->unsent = t;
            w->unsent_offset = 0;
        }
        w->inflight++;
        w->assigned++;
    }
    for (Py_ssize_t i = 0; write_now && i < core->nworkers; i++) {
        worker_write_now(core, &core->workers[i]);
    }
    core->next_worker = (core->next_worker + 1) % core->nworkers;
}

/* ---- starting and stopping workers -------------------------------------- */

static int
set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Every fd of ours that a forked child would inherit: it closes them. */
static PyObject *
core_parent_fds(PoolCoreObject *core, int extra1, int extra2)
{
    PyObject *fds = PyList_New(0);
    for (PoolCoreObject *c = live_cores; fds != NULL && c != NULL; c = c->next_live) {
        for (Py_ssize_t i = 0; i < c->nworkers; i++) {
            int both[2] = {c->workers[i].task_fd, c->workers[i].result_fd};
            for (int j = 0; j < 2; j++) {
                PyObject *fd = both[j] >= 0 ? PyLong_FromLong(both[j]) : NULL;
                if (both[j] >= 0 && (fd == NULL || PyList_Append(fds, fd) < 0)) {
                    Py_CLEAR(fds);
                }
                Py_XDECREF(fd);
                if (fds == NULL) {
                    return NULL;
                }
            }
        }
        if (c->wake_fd >= 0) {
            PyObject *fd = PyLong_FromLong(c->wake_fd);
            if (fd == NULL || PyList_Append(fds, fd) < 0) {
                Py_CLEAR(fds);
            }
            Py_XDECREF(fd);
        }
    }
    (void)core;
    int extra[2] = {extra1, extra2};
    for (int j = 0; fds != NULL && j < 2; j++) {
        PyObject *fd = PyLong_FromLong(extra[j]);
        if (fd == NULL || PyList_Append(fds, fd) < 0) {
            Py_CLEAR(fds);
        }
        Py_XDECREF(fd);
    }
    return fds;
}

/* Start a worker process in slot `i`.  GIL held.  -1 with an exception. */
static int
core_start_worker(PoolCoreObject *core, Py_ssize_t i)
{
    pp_worker *w = &core->workers[i];
    int task_pipe[2], result_pipe[2];
    if (pipe2(task_pipe, O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (pipe2(result_pipe, O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(task_pipe[0]);
        close(task_pipe[1]);
        return -1;
    }
    /* Bigger pipes: fewer wake-ups for large payloads (best effort). */
    (void)fcntl(task_pipe[1], F_SETPIPE_SZ, PP_PIPE_SIZE);
    (void)fcntl(result_pipe[1], F_SETPIPE_SZ, PP_PIPE_SIZE);

    PyObject *inherited = core_parent_fds(core, task_pipe[1], result_pipe[0]);
    PyObject *process = NULL;
    if (inherited != NULL) {
        /* The spawner wraps the child's ends in Connections, starts the
         * process and closes those ends here, whatever happens. */
        process = PyObject_CallFunction(core->spawn, "OiiOOOn", core->context, task_pipe[0],
                                        result_pipe[1], inherited, core->initializer,
                                        core->initargs, core->max_tasks_per_child);
        Py_DECREF(inherited);
    }
    else {
        close(task_pipe[0]);
        close(result_pipe[1]);
    }
    PyObject *pid = process ? PyObject_GetAttrString(process, "pid") : NULL;
    if (pid == NULL || PyDict_SetItem(core->processes, pid, process) < 0 ||
        set_nonblocking(task_pipe[1]) < 0 || set_nonblocking(result_pipe[0]) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetFromErrno(PyExc_OSError);
        }
        Py_XDECREF(pid);
        Py_XDECREF(process);
        close(task_pipe[1]);
        close(result_pipe[0]);
        return -1;
    }
    Py_DECREF(pid);
    memset(w, 0, sizeof(*w));
    w->process = process;
    w->task_fd = task_pipe[1];
    w->result_fd = result_pipe[0];
    return 0;
}

/* Stop sending: an EXIT frame, then close.  The frame matters when a process
 * forked later holds a copy of the pipe, so the worker would see no end of
 * file; it fits at once, as nothing is queued for an idle worker. */
static void
worker_close_tasks(pp_worker *w, int say_exit)
{
    if (w->task_fd < 0 || w->writing) {
        return;
    }
    if (say_exit && w->unsent == NULL) {
        unsigned char header[WIRE_HEADER_SIZE];
        wire_pack_header(header, 0, WIRE_EXIT);
        ssize_t n = write(w->task_fd, header, sizeof(header));
        (void)n;                    /* a worker that is gone needs no goodbye */
    }
    close(w->task_fd);
    w->task_fd = -1;
}

/* Reap the process of a worker whose pipe ended, and clear the slot. */
static void
worker_reap(PoolCoreObject *core, pp_worker *w)
{
    if (w->process == NULL) {
        return;
    }
    PyObject *r = PyObject_CallMethod(w->process, "join", NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable(w->process);
    }
    Py_XDECREF(r);
    PyObject *pid = PyObject_GetAttrString(w->process, "pid");
    if (pid == NULL || PyDict_DelItem(core->processes, pid) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(pid);
    Py_CLEAR(w->process);
    worker_close_tasks(w, 0);
    if (w->result_fd >= 0) {
        close(w->result_fd);
        w->result_fd = -1;
    }
    wire_inbox_clear(&w->inbox);
}

/* ---- completing futures ------------------------------------------------- */

/* A result frame arrived for the oldest task of `w`.  GIL held. */
static void
worker_complete(cf_state *st, PoolCoreObject *core, pp_worker *w, unsigned char *payload,
                size_t length, uint32_t kind)
{
    pp_task *t = w->head;
    if (t == NULL) {
        free(payload);
        return;                     /* nothing was asked: ignore it */
    }
    w->head = t->next;
    if (w->head == NULL) {
        w->tail = NULL;
    }
    w->inflight--;
    if (kind & WIRE_LEAVING) {
        w->leaving = 1;
    }
    /* Service time: from when the worker could start it (dispatch, or its
     * previous result) to now; a moving mean over about 8 tasks. */
    int64_t now = cf_monotonic_ns();
    int64_t began = t->dispatched_at > w->last_result_at ? t->dispatched_at : w->last_result_at;
    w->last_result_at = now;
    int64_t took = now - began;
    /* Up at once (a long task must stop the pipelining now), down slowly. */
    core->mean_task_ns = core->mean_task_ns < 0 || took > 2 * core->mean_task_ns
                             ? took
                             : core->mean_task_ns + (took - core->mean_task_ns) / 8;
    PyObject *view = PyMemoryView_FromMemory((char *)payload, (Py_ssize_t)length, PyBUF_READ);
    PyObject *value = view ? PyObject_CallOneArg(st->pickle_loads, view) : NULL;
    Py_XDECREF(view);
    free(payload);
    PyObject *r;
    if (value == NULL) {
        /* A result or exception that cannot be unpickled: this future's
         * error, not the pool's. */
        PyObject *exc = cf_err_take();
        r = future_set_exception(t->future, exc);
        Py_DECREF(exc);
    }
    else if ((kind & 0xff) == WIRE_ERROR) {
        r = future_set_exception(t->future, value);
    }
    else {
        r = future_set_result(t->future, value);
    }
    Py_XDECREF(value);
    if (r == NULL) {
        PyErr_Clear();              /* finished meanwhile by someone else */
    }
    Py_XDECREF(r);
    task_free(t);
}

/* A worker died unannounced: every future of the pool fails, the other
 * workers are stopped and reaped.  GIL held. */
static void
core_break(cf_state *st, PoolCoreObject *core)
{
    if (core->broken == NULL) {
        core->broken = PyUnicode_FromString(BROKEN_POOL);
        if (core->broken == NULL) {
            PyErr_Clear();
        }
    }
    core->shutdown = 1;
    PyObject *error = PyObject_CallFunction(st->BrokenProcessPool, "s", BROKEN_FUTURE);
    if (error == NULL) {
        PyErr_WriteUnraisable(NULL);
        return;
    }
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        pp_worker *w = &core->workers[i];
        pp_task *t;
        while ((t = w->head) != NULL) {
            w->head = t->next;
            fail_future(t->future, error);
            task_free(t);
        }
        w->tail = w->unsent = NULL;
        w->inflight = 0;
        if (w->process != NULL && !w->ended) {
            PyObject *r = PyObject_CallMethod(w->process, "terminate", NULL);
            if (r == NULL) {
                PyErr_Clear();
            }
            Py_XDECREF(r);
        }
    }
    pp_task *t;
    while ((t = core->pending_head) != NULL) {
        core->pending_head = t->next;
        fail_future(t->future, error);
        task_free(t);
    }
    core->pending_tail = NULL;
    core->npending = 0;
    Py_DECREF(error);
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        worker_reap(core, &core->workers[i]);
    }
}

/* ---- the I/O thread ----------------------------------------------------- */

static int
core_idle(PoolCoreObject *core)
{
    if (core->pending_head != NULL) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        if (core->workers[i].inflight > 0) {
            return 0;
        }
    }
    return 1;
}

static int
core_should_stop(cf_state *st, PoolCoreObject *core)
{
    return (core->shutdown || core->owner_gone || st->interpreter_exiting) && core_idle(core);
}

/* Shut the workers down in order: close their task pipes, reap them. */
static void
core_stop_workers(PoolCoreObject *core)
{
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        worker_close_tasks(&core->workers[i], 1);
    }
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        worker_reap(core, &core->workers[i]);
    }
}

/* Replace workers that left after max_tasks_per_child, while work remains. */
static void
core_replace_leavers(PoolCoreObject *core)
{
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        pp_worker *w = &core->workers[i];
        if (w->process != NULL && w->leaving && w->ended && w->inflight == 0) {
            worker_reap(core, w);
        }
        if (w->process == NULL && !core->shutdown && core->broken == NULL &&
            core_start_worker(core, i) < 0) {
            PyErr_WriteUnraisable(NULL);
        }
    }
}

typedef struct {
    struct pollfd *fds;
    int nfds;
} pp_pollset;

static int
pollset_ready(void *arg)
{
    pp_pollset *set = arg;
    return poll(set->fds, (nfds_t)set->nfds, 0) != 0;
}

typedef struct {
    Py_ssize_t worker;
    unsigned char *payload;
    size_t length;
    uint32_t kind;
} pp_frame;

/* `_cfutures._process_pool_io(core)`: the body of the pool's I/O thread. */
static PyObject *
process_pool_io(PyObject *module, PyObject *arg)
{
    cf_state *st = cf_state_of_module(module);
    if (!PyObject_TypeCheck(arg, st->PoolCoreType)) {
        PyErr_SetString(PyExc_TypeError, "_process_pool_io() expects a pool core");
        return NULL;
    }
    PoolCoreObject *core = (PoolCoreObject *)Py_NewRef(arg);
    Py_ssize_t n = core->nworkers;
    struct pollfd *fds = PyMem_Calloc((size_t)(2 * n + 1), sizeof(struct pollfd));
    Py_ssize_t *owner = PyMem_Calloc((size_t)(2 * n + 1), sizeof(Py_ssize_t));
    pp_frame *frames = NULL;
    size_t nframes = 0, frames_cap = 0;
    struct iovec(*iovs)[PP_MAX_IOV] = PyMem_Calloc((size_t)n, sizeof(*iovs));
    int *iovcnt = PyMem_Calloc((size_t)n, sizeof(int));
    ssize_t *written = PyMem_Calloc((size_t)n, sizeof(ssize_t));
    char *ended = PyMem_Calloc((size_t)n, 1);   /* filled without the GIL */
    if (fds == NULL || owner == NULL || iovs == NULL || iovcnt == NULL || written == NULL ||
        ended == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    for (;;) {
        /* -- with the GIL: decide what to wait for -- */
        core_dispatch(core, 1);
        if (core_should_stop(st, core) || core->broken != NULL) {
            break;
        }
        int nfds = 0;
        fds[nfds].fd = core->wake_fd;
        fds[nfds].events = POLLIN;
        owner[nfds++] = -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            pp_worker *w = &core->workers[i];
            iovcnt[i] = 0;
            written[i] = 0;
            ended[i] = 0;
            if (w->process == NULL || w->ended) {
                continue;
            }
            fds[nfds].fd = w->result_fd;
            fds[nfds].events = POLLIN;
            owner[nfds++] = i;
            if (w->unsent != NULL && w->task_fd >= 0 && !w->writing) {
                iovcnt[i] = worker_unsent_iov(w, iovs[i]);
                w->writing = 1;
                fds[nfds].fd = w->task_fd;
                fds[nfds].events = POLLOUT;
                owner[nfds++] = i;
            }
        }

        /* -- without the GIL: wait, read whole frames, write what we can -- */
        int failed_errno = 0;
        int busy = !core_idle(core);
        pp_pollset set = {fds, nfds};
        Py_BEGIN_ALLOW_THREADS
        if (busy) {
            cf_spin(pollset_ready, &set, CF_SPIN_PIPE_NS, CF_FOREVER);   /* results come soon */
        }
        int ready = poll(fds, (nfds_t)nfds, -1);
        if (ready < 0 && errno != EINTR) {
            failed_errno = errno;
        }
        for (int k = 0; ready > 0 && k < nfds; k++) {
            if (fds[k].revents == 0) {
                continue;
            }
            if (owner[k] < 0) {
                uint64_t count;
                ssize_t r = read(core->wake_fd, &count, sizeof(count));
                (void)r;
                continue;
            }
            Py_ssize_t i = owner[k];
            pp_worker *w = &core->workers[i];
            if (fds[k].events == POLLOUT) {
                if (fds[k].revents & (POLLOUT | POLLERR | POLLHUP)) {
                    written[i] = writev(w->task_fd, iovs[i], iovcnt[i]);
                }
                continue;
            }
            for (;;) {
                int r = wire_inbox_read(&w->inbox, w->result_fd);
                if (r == 1) {
                    if (nframes == frames_cap) {
                        size_t cap = frames_cap ? 2 * frames_cap : 64;
                        pp_frame *grown = realloc(frames, cap * sizeof(pp_frame));
                        if (grown == NULL) {
                            failed_errno = ENOMEM;
                            break;
                        }
                        frames = grown;
                        frames_cap = cap;
                    }
                    pp_frame *f = &frames[nframes++];
                    f->worker = i;
                    f->payload = wire_inbox_take(&w->inbox, &f->length, &f->kind);
                    continue;
                }
                if (r == 2 || r < 0) {
                    ended[i] = 1;   /* end of file (or a dead pipe): it is gone */
                }
                break;
            }
        }
        Py_END_ALLOW_THREADS
        if (failed_errno != 0) {
            errno = failed_errno;
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }

        /* -- with the GIL: the whole batch -- */
        for (Py_ssize_t i = 0; i < n; i++) {
            pp_worker *w = &core->workers[i];
            w->ended |= ended[i];
            if (iovcnt[i] > 0) {
                w->writing = 0;
                if (written[i] > 0) {
                    worker_advance(w, (size_t)written[i]);
                }
            }
        }
        for (size_t k = 0; k < nframes; k++) {
            worker_complete(st, core, &core->workers[frames[k].worker], frames[k].payload,
                            frames[k].length, frames[k].kind);
        }
        nframes = 0;
        if (core_idle(core)) {
            core->mean_task_ns = -1;
        }
        int died = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            pp_worker *w = &core->workers[i];
            if (w->process != NULL && w->ended && !(w->leaving && w->inflight == 0)) {
                died = 1;
            }
        }
        if (died) {
            core_break(st, core);
            break;
        }
        core_replace_leavers(core);
    }
    if (core->broken == NULL) {
        core_stop_workers(core);
    }
    core->finished = 1;
    /* Nobody waits on it any more: no fd outlives shutdown. */
    close(core->wake_fd);
    core->wake_fd = -1;

done:
    for (size_t k = 0; k < nframes; k++) {
        free(frames[k].payload);
    }
    free(frames);
    PyMem_Free(fds);
    PyMem_Free(owner);
    PyMem_Free(iovs);
    PyMem_Free(iovcnt);
    PyMem_Free(written);
    PyMem_Free(ended);
    Py_DECREF(core);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- the core object ---------------------------------------------------- */

static int
core_traverse(PyObject *op, visitproc visit, void *arg)
{
    PoolCoreObject *core = (PoolCoreObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(core->spawn);
    Py_VISIT(core->context);
    Py_VISIT(core->initializer);
    Py_VISIT(core->initargs);
    Py_VISIT(core->processes);
    Py_VISIT(core->io_thread);
    Py_VISIT(core->broken);
    for (Py_ssize_t i = 0; core->workers != NULL && i < core->nworkers; i++) {
        Py_VISIT(core->workers[i].process);
    }
    return 0;
}

static int
core_clear(PyObject *op)
{
    PoolCoreObject *core = (PoolCoreObject *)op;
    Py_CLEAR(core->spawn);
    Py_CLEAR(core->context);
    Py_CLEAR(core->initializer);
    Py_CLEAR(core->initargs);
    Py_CLEAR(core->processes);
    Py_CLEAR(core->io_thread);
    Py_CLEAR(core->broken);
    return 0;
}

static void
core_dealloc(PyObject *op)
{
    PoolCoreObject *core = (PoolCoreObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (core->prev_live != NULL) {
        core->prev_live->next_live = core->next_live;
    }
    else if (live_cores == core) {
        live_cores = core->next_live;
    }
    if (core->next_live != NULL) {
        core->next_live->prev_live = core->prev_live;
    }
    pp_task *t;
    while ((t = core->pending_head) != NULL) {
        core->pending_head = t->next;
        task_free(t);
    }
    for (Py_ssize_t i = 0; core->workers != NULL && i < core->nworkers; i++) {
        pp_worker *w = &core->workers[i];
        while ((t = w->head) != NULL) {
            w->head = t->next;
            task_free(t);
        }
        Py_CLEAR(w->process);
        if (w->task_fd >= 0) {
            close(w->task_fd);
        }
        if (w->result_fd >= 0) {
            close(w->result_fd);
        }
        wire_inbox_clear(&w->inbox);
    }
    PyMem_Free(core->workers);
    if (core->wake_fd >= 0) {
        close(core->wake_fd);
    }
    core_clear(op);
    PyObject_GC_Del(op);
    Py_DECREF(type);
}

static PyType_Slot core_slots[] = {
    {Py_tp_doc, "Internal: the workers and tasks of one ProcessPoolExecutor."},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {0, NULL},
};

static PyType_Spec core_spec = {
    .name = "cfutures._cfutures._PoolCore",
    .basicsize = sizeof(PoolCoreObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

/* ---- ProcessPoolExecutor ------------------------------------------------ */

/* _setup(max_workers, mp_context, initializer, initargs, max_tasks, spawn):
 * called once by the package's __init__ after validating the arguments. */
static PyObject *
process_pool_setup(PyObject *op, PyObject *args)
{
    ProcessPoolObject *self = (ProcessPoolObject *)op;
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    Py_ssize_t max_workers, max_tasks;
    PyObject *context, *initializer, *initargs, *spawn;
    if (st == NULL || !PyArg_ParseTuple(args, "nOOOnO:_setup", &max_workers, &context,
                                        &initializer, &initargs, &max_tasks, &spawn)) {
        return NULL;
    }
    if (self->core != NULL || max_workers < 1) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessPoolExecutor set up twice or badly");
        return NULL;
    }
    PoolCoreObject *core = PyObject_GC_New(PoolCoreObject, st->PoolCoreType);
    if (core == NULL) {
        return NULL;
    }
    core->spawn = Py_NewRef(spawn);
    core->context = Py_NewRef(context);
    core->initializer = Py_NewRef(initializer);
    core->initargs = Py_NewRef(initargs);
    core->max_tasks_per_child = max_tasks;
    core->nworkers = max_workers;
    core->workers = PyMem_Calloc((size_t)max_workers, sizeof(pp_worker));
    core->pending_head = core->pending_tail = NULL;
    core->npending = 0;
    core->processes = PyDict_New();
    core->io_thread = NULL;
    core->broken = NULL;
    core->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    core->started = core->shutdown = core->owner_gone = core->finished = 0;
    core->next_worker = 0;
    core->mean_task_ns = -1;
    core->prev_live = NULL;
    core->next_live = live_cores;
    if (live_cores != NULL) {
        live_cores->prev_live = core;
    }
    live_cores = core;
    for (Py_ssize_t i = 0; core->workers != NULL && i < max_workers; i++) {
        core->workers[i].task_fd = core->workers[i].result_fd = -1;
    }
    PyObject_GC_Track(core);
    self->core = core;
    if (core->workers == NULL || core->processes == NULL || core->wake_fd < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetFromErrno(PyExc_OSError);
        }
        return NULL;
    }
    Py_RETURN_NONE;
}

/* First submit: every worker, then the I/O thread — in that order, so that
 * a fork start method forks before this pool has any thread. */
static int
core_start(cf_state *st, PoolCoreObject *core)
{
    core->started = 1;
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        if (core_start_worker(core, i) < 0) {
            return -1;
        }
    }
    PyObject *kwargs = Py_BuildValue("{sOs(O)sOss}", "target", st->process_pool_io, "args",
                                     (PyObject *)core, "daemon", Py_False, "name",
                                     "cfutures-process-pool-io");
    PyObject *noargs = kwargs ? PyTuple_New(0) : NULL;
    PyObject *thread_class = noargs ? cf_threading_attr(st, "Thread") : NULL;
    core->io_thread = thread_class ? PyObject_Call(thread_class, noargs, kwargs) : NULL;
    Py_XDECREF(thread_class);
    Py_XDECREF(kwargs);
    Py_XDECREF(noargs);
    PyObject *r = core->io_thread ? PyObject_CallMethod(core->io_thread, "start", NULL) : NULL;
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    /* Joined at interpreter exit.  Only the key matters: the core as value
     * would keep its own thread, the weak key, alive forever. */
    return PyObject_SetItem(st->threads_queues, core->io_thread, Py_None);
}

/* Undo a start that failed half-way: stop the workers already started and
 * leave the pool as if never started.  Keeps a pending error. */
static void
core_stop_started(PoolCoreObject *core)
{
    PyObject *exc = cf_err_take();
    for (Py_ssize_t i = 0; i < core->nworkers; i++) {
        pp_worker *w = &core->workers[i];
        if (w->process != NULL) {
            PyObject *r = PyObject_CallMethod(w->process, "terminate", NULL);
            Py_XDECREF(r);
            PyErr_Clear();
            worker_reap(core, w);
        }
    }
    PyErr_Clear();
    Py_CLEAR(core->io_thread);      /* only there if its start() failed */
    core->started = 0;
    if (exc != NULL) {
        cf_err_restore(exc);
    }
}

/* The pickling error of a call, as the stdlib's feeder thread reports it:
 * on the future, with the formatted traceback as its __cause__. */
static void
attach_remote_traceback(cf_state *st, PyObject *exc)
{
    PyObject *tb = PyException_GetTraceback(exc);
    PyObject *lines = PyObject_CallFunction(st->format_exception, "OOO", Py_TYPE(exc), exc,
                                            tb ? tb : Py_None);
    Py_XDECREF(tb);
    PyObject *empty = lines ? PyUnicode_FromString("") : NULL;
    PyObject *text = empty ? PyUnicode_Join(empty, lines) : NULL;
    PyObject *message = text ? PyUnicode_FromFormat("\n\"\"\"\n%U\"\"\"", text) : NULL;
    PyObject *cause = message ? PyObject_CallOneArg(st->RemoteTraceback, message) : NULL;
    if (cause != NULL) {
        PyException_SetCause(exc, cause);   /* steals */
    }
    else {
        PyErr_Clear();
    }
    Py_XDECREF(lines);
    Py_XDECREF(empty);
    Py_XDECREF(text);
    Py_XDECREF(message);
}

/* submit(fn, /, *args, **kwargs) */
static PyObject *
process_pool_submit(PyObject *op, PyObject *args, PyObject *kwargs)
{
    ProcessPoolObject *self = (ProcessPoolObject *)op;
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    if (st == NULL) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, CF_QUALNAME("ProcessPoolExecutor.", "submit")
                        "() missing 1 required positional argument: 'fn'");
        return NULL;
    }
    PoolCoreObject *core = self->core;
    if (core == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessPoolExecutor.__init__() was not called");
        return NULL;
    }
    if (core->broken != NULL) {
        PyErr_SetObject(st->BrokenProcessPool, core->broken);
        return NULL;
    }
    if (core->shutdown) {
        PyErr_SetString(PyExc_RuntimeError, "cannot schedule new futures after shutdown");
        return NULL;
    }
    if (st->interpreter_exiting) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after interpreter shutdown");
        return NULL;
    }
    PyObject *future = future_new_public(st);
    if (future == NULL) {
        return NULL;
    }
    PyObject *call_args = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    PyObject *call = call_args ? PyTuple_Pack(3, PyTuple_GET_ITEM(args, 0), call_args,
                                              kwargs ? kwargs : st->empty_dict)
                               : NULL;
    Py_XDECREF(call_args);
    PyObject *pickled = call ? PyObject_CallFunction(st->pickle_dumps, "Oi", call, 5) : NULL;
    Py_XDECREF(call);
    if (pickled == NULL) {
        /* As the stdlib: the error lands on this future, the pool goes on. */
        PyObject *exc = cf_err_take();
        attach_remote_traceback(st, exc);
        fail_future(future, exc);
        Py_DECREF(exc);
        return future;
    }
    pp_task *task = PyMem_Malloc(sizeof(pp_task));
    if (task == NULL || PyObject_GetBuffer(pickled, &task->payload, PyBUF_SIMPLE) < 0) {
        PyMem_Free(task);
        Py_DECREF(pickled);
        Py_DECREF(future);
        return task == NULL ? PyErr_NoMemory() : NULL;
    }
    Py_DECREF(pickled);             /* the buffer view keeps it */
    task->next = NULL;
    task->future = Py_NewRef(future);
    wire_pack_header(task->header, (size_t)task->payload.len, WIRE_TASK);
    /* Queued before starting: starting lets other threads run, and if the
     * pool breaks meanwhile (a failing initializer) this task fails with it. */
    if (core->pending_tail == NULL) {
        core->pending_head = core->pending_tail = task;
    }
    else {
        core->pending_tail->next = task;
        core->pending_tail = task;
    }
    core->npending++;
    if (!core->started && core_start(st, core) < 0) {
        /* As the stdlib: the error (an initializer that cannot be pickled
         * for spawn, say) is raised by this submit, and the next one tries
         * again from scratch.  Only this task can be queued: a pool is
         * started by its first successful submit. */
        PyObject *exc = cf_err_take();
        core_stop_started(core);
        core->pending_head = core->pending_tail = NULL;
        core->npending = 0;
        task_free(task);
        Py_DECREF(future);
        cf_err_restore(exc);
        return NULL;
    }
    core_dispatch(core, 1);
    return future;
}

/* shutdown(wait=True, *, cancel_futures=False) */
static PyObject *
process_pool_shutdown(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"wait", "cancel_futures", NULL};
    ProcessPoolObject *self = (ProcessPoolObject *)op;
    int wait = 1, cancel_futures = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p$p:shutdown", kwlist, &wait,
                                     &cancel_futures)) {
        return NULL;
    }
    PoolCoreObject *core = self->core;
    if (core == NULL) {
        Py_RETURN_NONE;
    }
    core->shutdown = 1;
    if (cancel_futures) {
        /* Only what no worker has yet: those futures are still pending. */
        pp_task *t;
        while ((t = core->pending_head) != NULL) {
            core->pending_head = t->next;
            PyObject *r = future_cancel(t->future, NULL);
            if (r == NULL) {
                PyErr_WriteUnraisable(t->future);
            }
            Py_XDECREF(r);
            task_free(t);
        }
        core->pending_tail = NULL;
        core->npending = 0;
    }
    core_wake(core);
    if (wait && core->io_thread != NULL) {
        PyObject *r = PyObject_CallMethod(core->io_thread, "join", NULL);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *
process_pool_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    return type->tp_alloc(type, 0);
}

static int
process_pool_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((ProcessPoolObject *)op)->core);
    return 0;
}

/* The executor is going away: its pool finishes the queued work and stops. */
static int
process_pool_clear(PyObject *op)
{
    ProcessPoolObject *self = (ProcessPoolObject *)op;
    if (self->core != NULL) {
        self->core->owner_gone = 1;
        core_wake(self->core);
        Py_CLEAR(self->core);
    }
    return 0;
}

static void
process_pool_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    process_pool_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyObject *
process_pool_get_processes(PyObject *op, void *closure)
{
    (void)closure;
    PoolCoreObject *core = ((ProcessPoolObject *)op)->core;
    return Py_NewRef(core != NULL ? core->processes : Py_None);
}

static PyObject *
process_pool_get_broken(PyObject *op, void *closure)
{
    (void)closure;
    PoolCoreObject *core = ((ProcessPoolObject *)op)->core;
    return Py_NewRef(core != NULL && core->broken != NULL ? core->broken : Py_False);
}

static PyObject *
process_pool_get_shutdown_thread(PyObject *op, void *closure)
{
    (void)closure;
    PoolCoreObject *core = ((ProcessPoolObject *)op)->core;
    return PyBool_FromLong(core != NULL && core->shutdown);
}

static PyGetSetDef process_pool_getset[] = {
    {"_processes", process_pool_get_processes, NULL, NULL, NULL},
    {"_broken", process_pool_get_broken, NULL, NULL, NULL},
    {"_shutdown_thread", process_pool_get_shutdown_thread, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef process_pool_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))process_pool_submit, METH_VARARGS | METH_KEYWORDS,
     "submit($self, fn, /, *args, **kwargs)\n--\n\n"
     "Schedule fn(*args, **kwargs) in a worker process; return its Future."},
    {"shutdown", (PyCFunction)(void (*)(void))process_pool_shutdown,
     METH_VARARGS | METH_KEYWORDS,
     "shutdown($self, /, wait=True, *, cancel_futures=False)\n--\n\n"
     "Stop accepting work; optionally cancel what is queued and wait for the workers."},
    {"_setup", process_pool_setup, METH_VARARGS, "Internal: called once by __init__."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot process_pool_slots[] = {
    {Py_tp_doc, "The native part of cfutures.ProcessPoolExecutor."},
    {Py_tp_new, process_pool_new},
    {Py_tp_dealloc, process_pool_dealloc},
    {Py_tp_traverse, process_pool_traverse},
    {Py_tp_clear, process_pool_clear},
    {Py_tp_methods, process_pool_methods},
    {Py_tp_getset, process_pool_getset},
    {0, NULL},
};

static PyType_Spec process_pool_spec = {
    .name = "cfutures._cfutures.ProcessPoolExecutor",
    .basicsize = sizeof(ProcessPoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = process_pool_slots,
};

/* ---- interpreter exit and fork ------------------------------------------ */

/* At interpreter exit (the thread pool's hook calls this): every pool
 * finishes its queued work, stops its workers and its I/O thread, which the
 * hook then joins with the other threads in threads_queues. */
void
ppool_python_exit(void)
{
    for (PoolCoreObject *c = live_cores; c != NULL; c = c->next_live) {
        core_wake(c);
    }
}

/* In a child after fork: a started pool's workers and I/O thread are the
 * parent's; its copy here can take no work.  One never started still can. */
void
ppool_after_fork_child(void)
{
    for (PoolCoreObject *c = live_cores; c != NULL; c = c->next_live) {
        if (c->started && c->broken == NULL) {
            c->shutdown = 1;
            c->broken = PyUnicode_FromString(BROKEN_POOL);
            PyErr_Clear();
        }
    }
}

static PyMethodDef module_functions[] = {
    {"_process_pool_io", process_pool_io, METH_O, "Internal: the I/O thread of a process pool."},
    {NULL, NULL, 0, NULL},
};

int
ppool_module_init(PyObject *module, cf_state *st)
{
    st->PoolCoreType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &core_spec, NULL);
    if (st->PoolCoreType == NULL) {
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, (PyObject *)st->ExecutorType);
    st->ProcessPoolType =
        bases ? (PyTypeObject *)PyType_FromModuleAndSpec(module, &process_pool_spec, bases) : NULL;
    Py_XDECREF(bases);
    if (st->ProcessPoolType == NULL || PyModule_AddType(module, st->ProcessPoolType) < 0 ||
        PyModule_AddFunctions(module, module_functions) < 0) {
        return -1;
    }
    st->process_pool_io = PyObject_GetAttrString(module, "_process_pool_io");
    return st->process_pool_io == NULL ? -1 : 0;
}
