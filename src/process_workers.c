/* process_workers.c — the worker slots of a process pool and the tasks they
 * hold: starting and reaping workers, dispatch (pickling a call when a
 * worker takes it), answers, and breaking the pool.  The slot states and
 * the rule that keeps every accepted task in one place are in
 * process_pool.h.
 *
 * Invariants:
 *   - Everything here runs with the GIL held.  Python code (pickling,
 *     starting a process, completing futures) may let other threads run:
 *     code that calls it re-reads the state afterwards.
 *   - A dispatched future is RUNNING (set_running_or_notify_cancel right
 *     after its call is pickled, as the stdlib does when it moves an item
 *     to its call queue).  A worker holds one task, plus about a
 *     millisecond of predicted work (core_depth) when there is a backlog,
 *     so the rest stay cancellable and no task waits behind a long one.
 *   - A worker is never given more tasks than it runs before it leaves
 *     (max_tasks_per_child), or a task would leave with it.
 */
#include "process_pool.h"
#include "pickling.h"
#include "shm.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

const char PP_BROKEN_POOL[] =
    "A child process terminated abruptly, the process pool is not usable anymore";
const char PP_BROKEN_FUTURE[] =
    "A process in the process pool was terminated abruptly while the future was "
    "running or pending.";

/* ---- tasks -------------------------------------------------------------- */

void
task_free(pp_task *task)
{
    if (task->payload.obj != NULL) {
        PyBuffer_Release(&task->payload);
    }
    if (task->shm_fd >= 0) {
        shm_release_unsent(task->shm_fd);
    }
    Py_XDECREF(task->call);
    Py_XDECREF(task->fn);
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

/* ---- the pool ----------------------------------------------------------- */

void
core_wake(PoolCoreObject *core)
{
    atomic_store(&core->wake_asked, 1);
    if (core->wake_fd >= 0 && atomic_load(&core->io_asleep)) {
        uint64_t one = 1;
        ssize_t n = write(core->wake_fd, &one, sizeof(one));
        (void)n;                    /* a full counter still wakes it */
    }
}

Py_ssize_t
core_count(PoolCoreObject *core, worker_state state)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        n += core->workers[i].state == state;
    }
    return n;
}

int
core_drained(PoolCoreObject *core)
{
    if (core->pending.head != NULL || core->npickling > 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        if (w->state == WORKER_STARTING || w->tasks.count > 0) {
            return 0;
        }
    }
    return 1;
}

/* ---- starting and reaping workers --------------------------------------- */

static int
set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* EMPTY -> STARTING: the slot's pipes exist, its process not yet.  The
 * parent's ends are in the slot from now on, so that a fork child closes
 * them (module.c's hook).  Fills child_ends; -1 with an exception. */
static int
worker_begin_start(pp_worker *w, int child_ends[3])
{
    int task_pipe[2] = {-1, -1}, result_pipe[2] = {-1, -1}, shm_pair[2] = {-1, -1};
    assert(w->state == WORKER_EMPTY);
    if (pipe2(task_pipe, O_CLOEXEC) < 0 || pipe2(result_pipe, O_CLOEXEC) < 0 ||
        shm_socketpair(shm_pair) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        int *fds[] = {task_pipe, result_pipe, shm_pair};
        for (int k = 0; k < 3; k++) {
            close_fd(&fds[k][0]);
            close_fd(&fds[k][1]);
        }
        return -1;
    }
    /* Bigger pipes: fewer wake-ups for large payloads (best effort). */
    (void)fcntl(task_pipe[1], F_SETPIPE_SZ, PP_PIPE_SIZE);
    (void)fcntl(result_pipe[1], F_SETPIPE_SZ, PP_PIPE_SIZE);
    unsigned generation = w->generation + 1;
    memset(w, 0, sizeof(*w));
    w->generation = generation;
    w->state = WORKER_STARTING;
    w->task_fd = task_pipe[1];
    w->result_fd = result_pipe[0];
    w->shm_sock = shm_pair[0];
    child_ends[0] = task_pipe[0];
    child_ends[1] = result_pipe[1];
    child_ends[2] = shm_pair[1];
    return 0;
}

/* STARTING -> IDLE.  Steals `process`. */
static void
worker_started(pp_worker *w, PyObject *process)
{
    assert(w->state == WORKER_STARTING);
    w->process = process;
    w->state = WORKER_IDLE;
}

/* STARTING -> EMPTY. */
static void
worker_start_failed(pp_worker *w)
{
    assert(w->state == WORKER_STARTING);
    close_fd(&w->task_fd);
    close_fd(&w->result_fd);
    close_fd(&w->shm_sock);
    w->state = WORKER_EMPTY;
}

int
worker_start(cf_state *st, PoolCoreObject *core, Py_ssize_t i)
{
    (void)st;
    pp_worker *w = &core->workers[i];
    int child_ends[3];
    if (worker_begin_start(w, child_ends) < 0) {
        return -1;
    }
    /* The spawner wraps the child's ends in Connections, starts the process
     * and closes those ends here, whatever happens.  Other threads run. */
    PyObject *started = PyObject_CallFunction(core->spawn, "OiiiOOnn", core->context,
                                              child_ends[0], child_ends[1], child_ends[2],
                                              core->initializer,
                                              core->initargs, core->max_tasks_per_child,
                                              core->max_memory);
    PyObject *process = NULL;
    int interrupted = 0;
    if (started != NULL && !PyArg_ParseTuple(started, "Op", &process, &interrupted)) {
        process = NULL;
    }
    Py_XINCREF(process);
    Py_XDECREF(started);
    PyObject *pid = process ? PyObject_GetAttrString(process, "pid") : NULL;
    if (pid == NULL || set_nonblocking(w->task_fd) < 0 || set_nonblocking(w->result_fd) < 0 ||
        PyDict_SetItem(core->processes, pid, process) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetFromErrno(PyExc_OSError);
        }
        Py_XDECREF(pid);
        if (process != NULL) {
            PyObject *exc = cf_err_take();
            PyObject *r = PyObject_CallMethod(process, "kill", NULL);
            Py_XDECREF(r);
            r = r ? PyObject_CallMethod(process, "join", NULL) : NULL;
            Py_XDECREF(r);
            PyErr_Clear();
            cf_err_restore(exc);
        }
        Py_XDECREF(process);
        worker_start_failed(w);
        return -1;
    }
    Py_DECREF(pid);
    worker_started(w, process);
    core_wake(core);                /* a new result pipe for the I/O thread to watch */
    if (interrupted) {
        PyErr_SetInterrupt();       /* the Ctrl-C of its start, now it is recorded */
    }
    if (core->base.phase == POOL_BROKEN) {
        /* It broke while this one started: it goes with the others. */
        worker_stop(w);
        worker_reap(core, w, PP_TERMINATE_GRACE_S);
    }
    return 0;
}

/* An EMPTY slot, or -1. */
static Py_ssize_t
core_empty_slot(PoolCoreObject *core)
{
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        if (core->workers[i].state == WORKER_EMPTY) {
            return i;
        }
    }
    return -1;
}

int
core_start_if_needed(cf_state *st, PoolCoreObject *core)
{
    /* As the stdlib's _adjust_process_count: a new process only when no
     * idle one (or one starting) will take the pending work. */
    Py_ssize_t ready = core_count(core, WORKER_IDLE) + core_count(core, WORKER_STARTING);
    if (core->pending.count <= ready) {
        return 0;
    }
    Py_ssize_t i = core_empty_slot(core);
    if (i < 0) {
        return 0;
    }
    return worker_start(st, core, i);
}

/* Send the EXIT frame if it fits, then close the task pipe.  The frame
 * matters when a process forked later holds a copy of the pipe, so the
 * worker would see no end of file; it fits at once, as nothing is queued
 * for a worker being dismissed. */
static void
worker_close_tasks(pp_worker *w, int say_exit)
{
    if (w->task_fd < 0 || w->writing) {
        return;
    }
    if (say_exit && w->unsent == NULL) {
        unsigned char header[WIRE_HEADER_SIZE];
        wire_pack_header(header, 0, WIRE_EXIT, 0);
        ssize_t n = write(w->task_fd, header, sizeof(header));
        (void)n;                    /* a worker that is gone needs no goodbye */
    }
    close_fd(&w->task_fd);
}

void
worker_dismiss(pp_worker *w)
{
    assert(w->state == WORKER_IDLE);
    worker_close_tasks(w, 1);
    w->state = WORKER_LEAVING;
}

void
process_signal(PyObject *process, const char *method)
{
    PyObject *r = PyObject_CallMethod(process, method, NULL);
    if (r == NULL) {
        PyErr_Clear();              /* it just ended */
    }
    Py_XDECREF(r);
}

/* BUSY -> LEAVING: its answer said it exits now (max_tasks_per_child). */
static void
worker_leaving(pp_worker *w)
{
    assert(w->state == WORKER_BUSY);
    w->state = WORKER_LEAVING;
}

void
worker_stop(pp_worker *w)
{
    assert(w->state == WORKER_IDLE || w->state == WORKER_BUSY || w->state == WORKER_LEAVING);
    if (w->process != NULL) {
        process_signal(w->process, "terminate");
    }
    w->state = WORKER_DEAD;
}

void
worker_ended(pp_worker *w)
{
    assert(w->state == WORKER_IDLE || w->state == WORKER_BUSY || w->state == WORKER_LEAVING ||
           w->state == WORKER_STOPPING);
    int announced = w->state == WORKER_LEAVING && w->tasks.count == 0 && w->nreserved == 0;
    w->state = announced || w->state == WORKER_STOPPING ? WORKER_EXITED : WORKER_DEAD;
}

int
process_join(PyObject *process, double timeout)
{
    PyObject *r = timeout < 0 ? PyObject_CallMethod(process, "join", NULL)
                              : PyObject_CallMethod(process, "join", "d", timeout);
    if (r == NULL) {
        PyErr_WriteUnraisable(process);
    }
    Py_XDECREF(r);
    PyObject *code = PyObject_GetAttrString(process, "exitcode");
    int running = code == Py_None;
    if (code == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(code);
    return running;
}


void
worker_reap(PoolCoreObject *core, pp_worker *w, double grace)
{
    assert(w->state == WORKER_EXITED || w->state == WORKER_DEAD);
    worker_close_tasks(w, 0);
    pp_task *t;
    while ((t = pp_pop(&w->tasks)) != NULL) {
        task_free(t);               /* settled when it was stopped */
    }
    PyObject *process = w->process;
    w->process = NULL;
    if (process != NULL) {
        if (grace >= 0 && process_join(process, grace)) {
            process_signal(process, "terminate");
            if (process_join(process, PP_TERMINATE_GRACE_S)) {
                process_signal(process, "kill");      /* it ignores SIGTERM */
                process_join(process, -1);
            }
        }
        else if (grace < 0) {
            process_join(process, -1);
        }
        PyObject *pid = PyObject_GetAttrString(process, "pid");
        if (pid == NULL || PyDict_DelItem(core->processes, pid) < 0) {
            PyErr_Clear();
        }
        Py_XDECREF(pid);
        Py_DECREF(process);
    }
    close_fd(&w->result_fd);
    close_fd(&w->shm_sock);     /* and the memfds in flight on it */
    wire_inbox_clear(&w->inbox);
    w->state = WORKER_EMPTY;
}

/* ---- dispatch ----------------------------------------------------------- */

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
worker_has_room(PoolCoreObject *core, pp_worker *w, int64_t now, pp_task *task)
{
    Py_ssize_t held = w->tasks.count + w->nreserved;
    if ((w->state != WORKER_IDLE && w->state != WORKER_BUSY) || w->task_fd < 0 ||
        held >= core_depth(core) ||
        (core->max_tasks_per_child != 0 && w->assigned + w->nreserved >= core->max_tasks_per_child)) {
        return 0;
    }
    if (held == 0) {
        return 1;
    }
    /* A task the pool may stop is alone in its worker (process_pool.h), and
     * so is one that may leave after any task (max_memory_per_child). */
    if (task_stoppable(core, task->timeout_ns) || core->max_memory != 0 ||
        w->tasks.head == NULL || pp_first(&w->tasks)->timeout_ns != 0) {
        return 0;
    }
    /* Queue behind a running task only with a backlog: a task bound to this
     * worker's pipe cannot be taken by another worker that falls free first
     * (the stdlib's shared queue allows that, and code may depend on it). */
    if (core->pending.count <= core->nslots) {
        return 0;
    }
    /* Never queue behind a task that already ran past the queueing budget:
     * it may run long, and another worker may fall free first. */
    pp_task *running = pp_first(&w->tasks);
    int64_t began = running->dispatched_at > w->last_result_at ? running->dispatched_at
                                                                : w->last_result_at;
    return now - began < PP_QUEUED_NS;
}

/* The worker with room for `task` holding the fewest tasks, or -1. */
static Py_ssize_t
core_pick_worker(PoolCoreObject *core, int64_t now, pp_task *task)
{
    Py_ssize_t best = -1;
    for (Py_ssize_t k = 0; k < core->nslots; k++) {
        Py_ssize_t i = (core->next_worker + k) % core->nslots;
        pp_worker *w = &core->workers[i];
        if (worker_has_room(core, w, now, task) &&
            (best < 0 || w->tasks.count + w->nreserved <
                             core->workers[best].tasks.count + core->workers[best].nreserved)) {
            best = i;
        }
    }
    return best;
}

/* IDLE -> BUSY (or stays BUSY): a task is being pickled for it. */
static void
worker_take(pp_worker *w)
{
    assert(w->state == WORKER_IDLE || w->state == WORKER_BUSY);
    w->nreserved++;
    w->state = WORKER_BUSY;
}

/* BUSY -> IDLE when it holds nothing any more. */
static void
worker_maybe_idle(pp_worker *w)
{
    if (w->state == WORKER_BUSY && w->tasks.count == 0 && w->nreserved == 0) {
        w->state = WORKER_IDLE;
    }
}

/* IDLE -> BUSY (or stays BUSY): the pickled call, in `task->payload`, joins
 * the worker's list. */
static void
worker_append(PoolCoreObject *core, pp_worker *w, pp_task *task, int64_t now)
{
    assert(w->state == WORKER_IDLE || w->state == WORKER_BUSY);
    task->dispatched_at = now;
    /* A worker's first task reports its start too: a worker that dies
     * before that died starting up (its initializer), not in a task. */
    int report = task_stoppable(core, task->timeout_ns) || w->assigned == 0;
    wire_pack_header(task->header, (uint64_t)task->payload.len, WIRE_TASK,
                     (report ? WIRE_FLAG_REPORT_START : 0) | (task->shared ? WIRE_FLAG_SHARED : 0) |
                         (task->split ? WIRE_FLAG_SPLIT : 0));
    if (core->cancel_running) {
        ((FutureObject *)task->future)->stoppable = 1;
    }
    cf_tasklist_push(&w->tasks, &task->link);
    if (w->unsent == NULL) {
        w->unsent = task;
        w->unsent_offset = 0;
    }
    w->assigned++;
    w->state = WORKER_BUSY;
}

/* The pickling error of a call, as the stdlib's feeder thread reports it:
 * on the future, with the formatted traceback as its __cause__.  The
 * traceback objects themselves are dropped (their text is in the cause):
 * their frames lead back to submit()'s caller, whose locals (the executor,
 * say) the future would otherwise keep alive; the stdlib's, from its
 * feeder thread, hold nothing of the caller either. */
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
    for (PyObject *e = Py_NewRef(exc); e != NULL;) {
        PyException_SetTraceback(e, Py_None);
        PyObject *context = PyException_GetContext(e);      /* new reference */
        Py_DECREF(e);
        e = context;
    }
}

/* How pickling a call went. */
typedef enum {
    PICKLED,                /* the payload is ready */
    PICKLE_FAILED,          /* the error is on the task's future */
    PICKLE_INTERRUPTED,     /* Ctrl-C (a BaseException), raised for the caller */
} pickle_outcome;

/* Pickle `task`'s call into its payload.  A BaseException that is not an
 * Exception is left raised when `may_raise` (submit()'s thread). */
static pickle_outcome
task_pickle(cf_state *st, PyObject *dumps, pp_task *task, int may_raise)
{
    shm_frame frame;
    if (pickling_dumps_call(st, dumps, task->call, &frame) == 0) {
        task->payload = frame.payload;
        task->shm_fd = frame.fd;
        task->shared = frame.fd >= 0;
        task->split = frame.split;
        task->fn = Py_NewRef(PyTuple_GET_ITEM(task->call, 0));
        Py_CLEAR(task->call);
        return PICKLED;
    }
    if (may_raise && !PyErr_ExceptionMatches(PyExc_Exception)) {
        return PICKLE_INTERRUPTED;
    }
    /* As the stdlib: the error lands on this future, the pool goes on. */
    PyObject *exc = cf_err_take();
    attach_remote_traceback(st, exc);
    fail_future(task->future, exc);
    Py_DECREF(exc);
    return PICKLE_FAILED;
}

/* Send the memfd of a shared task's payload to the worker that will get
 * the task next: just before its frame joins the worker's list, so the
 * descriptors are in the order of the frames.  The socket never fills (a
 * worker holds at most PP_DEPTH_MAX tasks), but if it did the task would
 * fail with that error, the pool going on.  0, or -1 with the future
 * failed. */
static int
task_send_shared(pp_worker *w, pp_task *task)
{
    if (task->shm_fd < 0) {
        return 0;
    }
    int rc;
    while ((rc = shm_send_fd(w->shm_sock, task->shm_fd, 0)) < 0 && errno == EINTR) {
    }
    if (rc == 0) {
        close(task->shm_fd);
        task->shm_fd = -1;
        return 0;
    }
    PyErr_SetFromErrno(PyExc_OSError);      /* task_free releases the segment */
    PyObject *exc = cf_err_take();
    fail_future(task->future, exc);
    Py_DECREF(exc);
    return -1;
}

/* Fail a task of a pool that broke while it was being pickled. */
static void
task_fail_broken(cf_state *st, pp_task *task)
{
    PyObject *pending_error = cf_err_take();
    PyObject *error = PyObject_CallFunction(st->BrokenProcessPool, "s", PP_BROKEN_FUTURE);
    if (error == NULL) {
        PyErr_WriteUnraisable(NULL);
    }
    else {
        fail_future(task->future, error);
        Py_DECREF(error);
    }
    task_free(task);
    if (pending_error != NULL) {
        cf_err_restore(pending_error);
    }
}

/* Ctrl-C (or another BaseException) while the call was pickled in a
 * submit(): raised to that caller, never stored in the future; the task,
 * still pending, is cancelled — retrying would only raise again. */
static void
task_cancel_interrupted(pp_task *task)
{
    PyObject *interrupt = cf_err_take();
    PyObject *r = future_cancel(task->future, NULL);
    PyObject *n = r ? future_set_running_or_notify_cancel(task->future, NULL) : NULL;
    if (n == NULL) {
        PyErr_WriteUnraisable(task->future);
    }
    Py_XDECREF(r);
    Py_XDECREF(n);
    task_free(task);
    cf_err_restore(interrupt);
}

/* Give one pending task to worker `i`: pickle it (other threads may run
 * meanwhile), then look at the world again.  0, or -1 with a BaseException
 * from the pickler (see core_dispatch). */
static int
core_dispatch_one(cf_state *st, PoolCoreObject *core, Py_ssize_t i, pp_task *task, int may_raise)
{
    pp_worker *w = &core->workers[i];
    unsigned generation = w->generation;
    worker_take(w);
    core->npickling++;
    Py_INCREF(core);
    pickle_outcome pickled = task_pickle(st, core->dumps, task, may_raise);
    core->npickling--;
    int same_worker = w->generation == generation &&
                      (w->state == WORKER_IDLE || w->state == WORKER_BUSY);
    if (same_worker) {
        w->nreserved--;
        worker_maybe_idle(w);
    }
    if (pickled == PICKLE_FAILED) {
        task_free(task);            /* its error is on its future */
    }
    else if (core->base.phase == POOL_BROKEN) {
        task_fail_broken(st, task);
    }
    else if (pickled == PICKLE_INTERRUPTED) {
        task_cancel_interrupted(task);
    }
    else if (!same_worker) {
        cf_tasklist_push_front(&core->pending, &task->link);     /* its worker went away: first in line again */
    }
    else {
        PyObject *go = future_set_running_or_notify_cancel(task->future, NULL);
        if (go == Py_True && task_send_shared(w, task) < 0) {
            task_free(task);        /* its error is on its future */
        }
        else if (go == Py_True) {
            worker_append(core, w, task, cf_monotonic_ns());
        }
        else {
            /* Cancelled meanwhile: dropped, as the stdlib drops it. */
            if (go == NULL) {
                PyErr_WriteUnraisable(task->future);
            }
            task_free(task);
        }
        Py_XDECREF(go);
    }
    if (core->base.phase != POOL_RUNNING) {
        core_wake(core);            /* a pickler finishing may let it stop */
    }
    Py_DECREF(core);
    return pickled == PICKLE_INTERRUPTED ? -1 : 0;
}

int
core_dispatch(cf_state *st, PoolCoreObject *core, int may_raise)
{
    int rc = 0;
    while (rc == 0 && core->pending.head != NULL &&
           (core->base.phase == POOL_RUNNING || core->base.phase == POOL_SHUTTING_DOWN) &&
           cf_monotonic_ns() >= core->hold_until) {
        Py_ssize_t i = core_pick_worker(core, cf_monotonic_ns(), pp_first(&core->pending));
        if (i < 0) {
            break;
        }
        pp_task *task = pp_pop(&core->pending);
        if (task->call == NULL) {   /* cancelled by shutdown(cancel_futures) */
            task_free(task);
            continue;
        }
        rc = core_dispatch_one(st, core, i, task, may_raise);
    }
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        worker_write_now(core, &core->workers[i]);
    }
    if (core->nslots > 0) {
        core->next_worker = (core->next_worker + 1) % core->nslots;
    }
    return rc;
}

/* ---- writing task frames ------------------------------------------------ */

int
worker_unsent_iov(pp_worker *w, struct iovec *iov)
{
    int n = 0;
    size_t skip = w->unsent_offset;
    for (pp_task *t = w->unsent; t != NULL && n < PP_MAX_IOV - 1; t = pp_next(t)) {
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

void
worker_advance(pp_worker *w, size_t written)
{
    while (w->unsent != NULL && written > 0) {
        size_t left = task_size(w->unsent) - w->unsent_offset;
        if (written < left) {
            w->unsent_offset += written;
            return;
        }
        written -= left;
        w->unsent = pp_next(w->unsent);
        w->unsent_offset = 0;
    }
}

void
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

/* ---- answers ------------------------------------------------------------ */

/* BrokenProcessPool(message) with `cause` as its __cause__ (stolen). */
static PyObject *
broken_with_cause(cf_state *st, const char *message, PyObject *cause)
{
    PyObject *error = PyObject_CallFunction(st->BrokenProcessPool, "s", message);
    if (error == NULL) {
        Py_XDECREF(cause);
        return NULL;
    }
    if (cause != NULL) {
        PyException_SetCause(error, cause);
    }
    return error;
}

/* The service time of an answered task feeds the dispatch depth: from when
 * the worker could start it (dispatch, or its previous answer) to now; a
 * moving mean over about 8 tasks, up at once (a long task must stop the
 * pipelining now), down slowly. */
static void
core_time_task(PoolCoreObject *core, pp_worker *w, pp_task *t)
{
    int64_t now = cf_monotonic_ns();
    int64_t began = t->dispatched_at > w->last_result_at ? t->dispatched_at : w->last_result_at;
    w->last_result_at = now;
    int64_t took = now - began;
    core->mean_task_ns = core->mean_task_ns < 0 || took > 2 * core->mean_task_ns
                             ? took
                             : core->mean_task_ns + (took - core->mean_task_ns) / 8;
}

/* The outcome an answer frame carries, for its future: the value to set
 * (*is_error says how), or NULL if none could be made. */
static PyObject *
answer_outcome(cf_state *st, unsigned char *payload, size_t length, uint32_t kind, int shm_fd,
               int *is_error)
{
    PyObject *value = NULL;
    if (shm_fd == -2) {
        PyErr_SetString(PyExc_OSError, "cfutures: the shared memory of the answer did not arrive");
    }
    else {
        value = shm_loads(st, payload, length, shm_fd);
    }
    *is_error = 1;
    if (value == NULL) {
        /* A result or an exception that cannot be unpickled here: this
         * future's error (the stdlib breaks the whole pool). */
        return broken_with_cause(st, "The result could not be unpickled.", cf_err_take());
    }
    if (kind == WIRE_CALL_ERROR) {
        return broken_with_cause(st, "The call could not be unpickled in the worker process.",
                                 value);
    }
    *is_error = kind == WIRE_ERROR;
    return value;
}

void
task_settle(pp_settled *settled)
{
    pp_task *t = settled->task;
    PyObject *r = settled->is_error ? future_set_exception(t->future, settled->value)
                                    : future_set_result(t->future, settled->value);
    if (r == NULL) {
        PyErr_Clear();              /* finished meanwhile by someone else */
    }
    Py_XDECREF(r);
    Py_DECREF(settled->value);
    task_free(t);
}

int
worker_answered(cf_state *st, PoolCoreObject *core, pp_worker *w, unsigned char *payload,
                size_t length, uint32_t kind, uint32_t flags, pp_settled *settled)
{
    pp_task *t = pp_first(&w->tasks);
    /* The memfd of a shared answer came first: take it now, whatever the
     * answer becomes, so the next one finds its own.  -2: none came. */
    int shm_fd = -1;
    if (flags & WIRE_FLAG_SHARED) {
        shm_fd = w->shm_sock < 0 ? -2 : shm_recv_fd(w->shm_sock, 0);
        shm_fd = shm_fd < 0 ? -2 : shm_fd;
    }
    if (t == NULL || w->unsent == t || w->state == WORKER_STOPPING) {
        free(payload);
        if (shm_fd >= 0) {
            shm_release_unsent(shm_fd);
        }
        return 0;                   /* nothing was asked, or too late: ignore it */
    }
    if (kind == WIRE_STARTED) {
        free(payload);
        t->started_at = cf_monotonic_ns();
        return 0;
    }
    cf_tasklist_pop(&w->tasks);
    core_time_task(core, w, t);
    if (flags & WIRE_FLAG_LEAVING) {
        worker_leaving(w);
    }
    worker_maybe_idle(w);
    pp_settled answer = {t, NULL, 1};
    answer.value = answer_outcome(st, payload, length, kind, shm_fd, &answer.is_error);
    free(payload);
    if (answer.value == NULL) {
        answer.value = cf_err_take();
        answer.is_error = 1;
    }
    else if (answer.is_error &&
             PyErr_GivenExceptionMatches(answer.value, PyExc_KeyboardInterrupt)) {
        core->hold_until = cf_monotonic_ns() + PP_INTERRUPT_HOLD_NS;
    }
    if (settled == NULL) {
        task_settle(&answer);
        return 0;
    }
    *settled = answer;
    return 1;
}

/* ---- breaking and replacing --------------------------------------------- */

/* Fail every task of `w` with `error`. */
static void
worker_fail_tasks(pp_worker *w, PyObject *error)
{
    pp_task *t;
    while ((t = pp_pop(&w->tasks)) != NULL) {
        fail_future(t->future, error);
        task_free(t);
    }
    w->unsent = NULL;
    w->unsent_offset = 0;
}

void
core_break(cf_state *st, PoolCoreObject *core, PyObject *cause)
{
    if (pool_break(&core->base, PP_BROKEN_POOL) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
    PyObject *error = broken_with_cause(st, PP_BROKEN_FUTURE, Py_XNewRef(cause));
    if (error == NULL) {
        PyErr_WriteUnraisable(NULL);
        return;
    }
    pp_task *t;
    while ((t = pp_pop(&core->pending)) != NULL) {
        fail_future(t->future, error);
        task_free(t);
    }
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        worker_fail_tasks(w, error);
        if (w->state == WORKER_IDLE || w->state == WORKER_BUSY || w->state == WORKER_LEAVING) {
            worker_stop(w);
        }
    }
    Py_DECREF(error);
    /* Bounded: a worker that ignores SIGTERM is killed after a grace. */
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        if (w->state == WORKER_DEAD || w->state == WORKER_EXITED) {
            worker_reap(core, w, PP_TERMINATE_GRACE_S);
        }
    }
}

void
core_replace_leavers(cf_state *st, PoolCoreObject *core)
{
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        if (core->workers[i].state == WORKER_EXITED) {
            worker_reap(core, &core->workers[i], PP_TERMINATE_GRACE_S);
        }
    }
    /* Work that has no worker to go to gets one, during shutdown too: every
     * accepted task must run. */
    if (core->base.phase != POOL_RUNNING && core->base.phase != POOL_SHUTTING_DOWN) {
        return;
    }
    if (core->start_on_demand || core_replaces_workers(core)) {
        if (core_start_if_needed(st, core) < 0) {
            PyObject *exc = cf_err_take();
            if (core_count(core, WORKER_IDLE) + core_count(core, WORKER_BUSY) == 0) {
                core_break(st, core, exc);  /* nobody left to run the work */
            }
            else {
                cf_log_critical(st, "Exception starting a worker process:", exc);
            }
            Py_XDECREF(exc);
        }
    }
}
