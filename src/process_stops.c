/* process_stops.c — a process pool stopping one worker on purpose and going
 * on: a task that ran past its timeout, cancel() of a running task
 * (cancel_running), and a worker that died (isolate_crashes; without it the
 * pool breaks, and the error says which worker died how, running what).
 *
 * Every task the pool may stop is alone in its worker and reports when it
 * starts (process_pool.h), so stopping the worker stops that task and no
 * other.  The worker goes BUSY -> STOPPING (SIGTERM now, SIGKILL once its
 * grace is over); its end of file makes it EXITED, the I/O thread reaps it
 * and starts a replacement when work is waiting.  Everything here runs
 * with the GIL held.
 */
#include "process_pool.h"

#include <assert.h>

/* How long a worker stopped alone may take to end before SIGKILL. */
#define PP_STOP_GRACE_NS ((int64_t)1000 * 1000 * 1000)

/* BUSY -> STOPPING: its running task was settled (failed or cancelled) by
 * the caller.  That task stays in the worker's list until the worker is
 * reaped: the I/O thread may be writing its bytes right now (`writing`),
 * and the worker's late frames have nothing else to match.  The state is
 * set before terminate() runs Python code, so other threads see it whole. */
static void
worker_stop_alone(PoolCoreObject *core, pp_worker *w)
{
    assert(w->state == WORKER_BUSY);
    w->state = WORKER_STOPPING;
    w->kill_at = cf_monotonic_ns() + PP_STOP_GRACE_NS;
    w->unsent = NULL;
    w->unsent_offset = 0;
    if (w->process != NULL) {
        process_signal(w->process, "terminate");
    }
    core_wake(core);                /* its deadline, and its end, are the I/O thread's */
}

/* ---- timeouts ----------------------------------------------------------- */

/* The stdlib's TimeoutError, naming the limit (new reference or NULL). */
static PyObject *
timeout_error(cf_state *st, int64_t timeout_ns)
{
    char *limit = PyOS_double_to_string((double)timeout_ns / 1e9, 'r', 0, 0, NULL);
    if (limit == NULL) {
        return NULL;
    }
    PyObject *error = NULL;
    PyObject *message = PyUnicode_FromFormat(
        "the task ran longer than its timeout of %s seconds; its worker process was stopped",
        limit);
    PyMem_Free(limit);
    if (message != NULL) {
        error = PyObject_CallOneArg(st->TimeoutError, message);
        Py_DECREF(message);
    }
    return error;
}

/* Apply every whole frame `w` has sent by now (its answer may be there
 * already: then its task did not time out). */
static void
worker_read_now(cf_state *st, PoolCoreObject *core, pp_worker *w)
{
    w->inbox.drained = 0;           /* time passed since its last read */
    while (w->result_fd >= 0 && wire_inbox_read(&w->inbox, w->result_fd) == WIRE_READ_DONE) {
        uint64_t length;
        uint32_t kind, flags;
        unsigned char *payload = wire_inbox_take(&w->inbox, &length, &kind, &flags);
        worker_answered(st, core, w, payload, (size_t)length, kind, flags, NULL);
    }
}

/* The running task of `w` timed out: stop `w`, fail the task. */
static void
worker_time_out(cf_state *st, PoolCoreObject *core, pp_worker *w)
{
    pp_task *t = pp_first(&w->tasks);
    worker_stop_alone(core, w);
    PyObject *error = timeout_error(st, t->timeout_ns);
    if (error == NULL) {
        error = cf_err_take();
    }
    PyObject *r = future_set_exception(t->future, error);
    if (r == NULL) {
        PyErr_Clear();              /* finished meanwhile by someone else */
    }
    Py_XDECREF(r);
    Py_XDECREF(error);
}

/* When the running task of `w` times out (monotonic ns), or 0. */
static int64_t
worker_task_deadline(pp_worker *w)
{
    pp_task *t = w->state == WORKER_BUSY ? pp_first(&w->tasks) : NULL;
    if (t == NULL || t->timeout_ns == 0 || t->started_at == 0) {
        return 0;
    }
    return t->started_at + t->timeout_ns;
}

int64_t
core_enforce_deadlines(cf_state *st, PoolCoreObject *core, int64_t now)
{
    int64_t next = core->abandon_at;
    if (next != 0 && now >= next) {
        core_break(st, core, NULL);     /* Ctrl-C, and the grace is over */
        return 0;
    }
    if (core->hold_until > now) {
        next = cf_sooner(next, core->hold_until);     /* dispatch resumes then */
    }
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        int64_t deadline = worker_task_deadline(w);
        if (deadline != 0 && now >= deadline) {
            worker_read_now(st, core, w);
            deadline = worker_task_deadline(w);
            if (deadline != 0 && now >= deadline) {
                worker_time_out(st, core, w);
                deadline = 0;
            }
        }
        next = cf_sooner(next, deadline);
        if (w->state == WORKER_STOPPING && w->kill_at != 0) {
            if (now >= w->kill_at) {
                w->kill_at = 0;
                process_signal(w->process, "kill");  /* it ignores SIGTERM */
            }
            next = cf_sooner(next, w->kill_at);
        }
    }
    return next;
}

void
core_interrupt(PoolCoreObject *core, double grace)
{
    pool_shut_down(&core->base);
    core_cancel_pending(core);
    if (core->abandon_at == 0) {
        core->abandon_at = cf_monotonic_ns() + cf_seconds_to_ns(grace);
    }
    core_wake(core);
}

/* ---- cancel() of a running task ----------------------------------------- */

int
core_cancel_running(cf_state *st, PoolCoreObject *core, PyObject *future)
{
    (void)st;
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        pp_task *t = w->state == WORKER_BUSY ? pp_first(&w->tasks) : NULL;
        if (t == NULL || t->future != future) {
            continue;
        }
        worker_stop_alone(core, w);
        return future_cancel_running(t->future);
    }
    return 0;
}

/* ---- crashes ------------------------------------------------------------ */

/* WorkerDied for the DEAD worker `w`, naming its pid, exit code or signal,
 * and what it was doing: running the callable of `t` (its oldest task, may
 * be NULL), starting up (it never finished or started a task: its first
 * task always reports its start), or idle between tasks.  Waits (bounded) for the process
 * to end, as its exit code is wanted.  New reference, or NULL. */
static PyObject *
worker_death(PoolCoreObject *core, pp_worker *w, pp_task *t)
{
    const char *doing = t != NULL && (t->started_at != 0 || w->last_result_at != 0) ? "running"
                        : w->last_result_at == 0 ? "starting"
                                                 : "idle";
    PyObject *process = w->process;
    PyObject *pid = process ? PyObject_GetAttrString(process, "pid") : Py_NewRef(Py_None);
    if (pid != NULL && process != NULL) {
        process_join(process, PP_TERMINATE_GRACE_S);
    }
    PyObject *code = pid == NULL ? NULL
                     : process ? PyObject_GetAttrString(process, "exitcode")
                               : Py_NewRef(Py_None);
    PyObject *error = code ? PyObject_CallFunction(core->worker_died, "OOsO", pid, code, doing,
                                                   t && t->fn ? t->fn : Py_None)
                           : NULL;
    Py_XDECREF(pid);
    Py_XDECREF(code);
    return error;
}

void
core_settle_crash(cf_state *st, PoolCoreObject *core, pp_worker *w)
{
    assert(w->state == WORKER_DEAD);
    pp_task *t = pp_first(&w->tasks);
    PyObject *error = worker_death(core, w, t);
    if (error == NULL) {
        error = cf_err_take();      /* the pool breaks all the same */
    }
    /* Only a task known to have started is to blame; a worker that dies
     * before it starts one (its initializer failed) breaks the pool, as in
     * the stdlib, or it would be replaced forever. */
    if (core->isolate_crashes && t != NULL && t->started_at != 0 && w->tasks.count == 1) {
        pp_pop(&w->tasks);
        PyObject *r = future_set_exception(t->future, error);
        if (r == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(r);
        task_free(t);
        worker_reap(core, w, PP_TERMINATE_GRACE_S);
    }
    else {
        core_break(st, core, error);
    }
    Py_XDECREF(error);
}
