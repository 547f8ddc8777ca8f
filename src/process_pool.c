/* process_pool.c — ProcessPoolExecutor's native part: the pool core object
 * (its phase, see pool.h), starting the pool, submit, shutdown, the stdlib's
 * attributes, and the pool's answers to interpreter exit and fork.
 *
 * Each worker process has its own pair of pipes; process_workers.c keeps
 * the slots and the tasks, process_io.c runs the I/O thread.  submit()
 * accepts a call into the pending list — nothing is pickled yet, as the
 * stdlib pickles only what goes to a worker — then, in the calling thread,
 * starts a worker if the work needs one and gives pending tasks to workers
 * with room, pickling each and writing its frame when the pipe takes it.
 *
 * Workers start as the running stdlib starts them: with fork, all of them
 * at the first submit, before the I/O thread exists (forking a process that
 * runs threads warns from 3.12 on); with spawn and forkserver, one at a
 * time, when no idle worker can take the work.
 */
#include "process_pool.h"
#include "pickling.h"
#include "shm.h"

#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD                   /* _cfutures.Executor has no fields */
    PoolCoreObject *core;
} ProcessPoolObject;

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
    Py_VISIT(core->dumps);
    Py_VISIT(core->worker_died);
    Py_VISIT(core->processes);
    Py_VISIT(core->io_thread);
    Py_VISIT(core->base.broken);
    for (Py_ssize_t i = 0; core->workers != NULL && i < core->nslots; i++) {
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
    Py_CLEAR(core->dumps);
    Py_CLEAR(core->worker_died);
    Py_CLEAR(core->processes);
    Py_CLEAR(core->io_thread);
    return 0;
}

/* Close whatever fds the core still holds (a pool dropped unused, or the
 * parent's copies in a fork child). */
static void
core_close_fds(PoolCoreObject *core)
{
    for (Py_ssize_t i = 0; core->workers != NULL && i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        int *fds[] = {&w->task_fd, &w->result_fd, &w->shm_sock};
        for (size_t k = 0; k < sizeof(fds) / sizeof(fds[0]); k++) {
            if (*fds[k] >= 0) {
                close(*fds[k]);
                *fds[k] = -1;
            }
        }
    }
    if (core->wake_fd >= 0) {
        close(core->wake_fd);
        core->wake_fd = -1;
    }
}

static void
core_dealloc(PyObject *op)
{
    PoolCoreObject *core = (PoolCoreObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    pool_fini(&core->base);
    pp_task *t;
    while ((t = pp_pop(&core->pending)) != NULL) {
        task_free(t);
    }
    for (Py_ssize_t i = 0; core->workers != NULL && i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        while ((t = pp_pop(&w->tasks)) != NULL) {
            task_free(t);
        }
        Py_CLEAR(w->process);
        wire_inbox_clear(&w->inbox);
    }
    core_close_fds(core);
    PyMem_Free(core->workers);
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

/* ---- interpreter exit and fork ------------------------------------------ */

static void
core_python_exit(cf_pool *pool)
{
    cf_state *st = cf_state_of_type(Py_TYPE(pool));
    if (st != NULL && st->exit_interrupted) {
        core_interrupt((PoolCoreObject *)pool, PP_INTERRUPT_GRACE_S);
    }
    PyErr_Clear();
    core_wake((PoolCoreObject *)pool);
}

/* In a child after fork: the workers and the I/O thread are the parent's,
 * and so are the fds; close our copies (a forked worker must not keep the
 * parent's pipes open, nor ever write to a number that is now another
 * file).  A started pool's copy takes no work here; one never started can
 * still start in the child. */
static int
core_after_fork_child(cf_pool *pool)
{
    PoolCoreObject *core = (PoolCoreObject *)pool;
    core_close_fds(core);
    /* The parent's tasks are the parent's to complete: drop our copies. */
    pp_task *t;
    while ((t = pp_pop(&core->pending)) != NULL) {
        task_free(t);
    }
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        while ((t = pp_pop(&w->tasks)) != NULL) {
            task_free(t);
        }
        Py_CLEAR(w->process);
        wire_inbox_clear(&w->inbox);
        memset(w, 0, sizeof(*w));
        w->state = WORKER_EMPTY;
        w->task_fd = w->result_fd = w->shm_sock = -1;
    }
    core->npickling = 0;
    Py_CLEAR(core->io_thread);
    PyErr_Clear();
    if (pool->phase == POOL_NEW) {
        return 1;
    }
    if (pool->phase != POOL_STOPPED && pool->phase != POOL_BROKEN &&
        pool_break(pool, PP_BROKEN_POOL) < 0) {
        PyErr_Clear();
    }
    return 0;
}

static int
core_cancel_running_op(cf_pool *pool, PyObject *future)
{
    cf_state *st = cf_state_of_type(Py_TYPE(pool));
    return st == NULL ? -1 : core_cancel_running(st, (PoolCoreObject *)pool, future);
}

static const cf_pool_ops core_ops = {
    .python_exit = core_python_exit,
    .after_fork_child = core_after_fork_child,
    .cancel_running = core_cancel_running_op,
};

/* ---- starting ----------------------------------------------------------- */

/* _setup(max_workers, mp_context, initializer, initargs, max_tasks, spawn,
 *        task_timeout, isolate_crashes, cancel_running, max_memory, dumps,
 *        worker_died): called once by the package's __init__ after
 * validating the arguments (task_timeout: seconds, 0.0 for none; dumps:
 * the pickler of calls, None for multiprocessing's). */
static PyObject *
process_pool_setup(PyObject *op, PyObject *args)
{
    ProcessPoolObject *self = (ProcessPoolObject *)op;
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    Py_ssize_t max_workers, max_tasks, max_memory;
    double task_timeout;
    int isolate_crashes, cancel_running;
    PyObject *context, *initializer, *initargs, *spawn, *dumps, *worker_died;
    if (st == NULL ||
        !PyArg_ParseTuple(args, "nOOOnOdppnOO:_setup", &max_workers, &context, &initializer,
                          &initargs, &max_tasks, &spawn, &task_timeout, &isolate_crashes,
                          &cancel_running, &max_memory, &dumps, &worker_died) ||
        cf_load_process_names(st) < 0 || pickling_load(st) < 0) {
        return NULL;
    }
    if (self->core != NULL || max_workers < 1) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessPoolExecutor set up twice or badly");
        return NULL;
    }
    PyObject *method = PyObject_CallMethod(context, "get_start_method", "O", Py_False);
    if (method == NULL) {
        return NULL;
    }
    int forks = PyUnicode_Check(method) && PyUnicode_CompareWithASCIIString(method, "fork") == 0;
    Py_DECREF(method);
    PoolCoreObject *core = PyObject_GC_New(PoolCoreObject, st->PoolCoreType);
    if (core == NULL) {
        return NULL;
    }
    pool_init(st, &core->base, &core_ops);
    core->spawn = Py_NewRef(spawn);
    core->context = Py_NewRef(context);
    core->initializer = Py_NewRef(initializer);
    core->initargs = Py_NewRef(initargs);
    core->max_tasks_per_child = max_tasks;
    core->task_timeout_ns = cf_seconds_to_ns(task_timeout);
    core->isolate_crashes = isolate_crashes;
    core->cancel_running = cancel_running;
    core->max_memory = max_memory;
    core->dumps = Py_NewRef(dumps == Py_None ? st->pickle_dumps : dumps);
    core->worker_died = Py_NewRef(worker_died);
    core->start_on_demand = !forks;
    core->nslots = max_workers;
    core->workers = PyMem_Calloc((size_t)max_workers, sizeof(pp_worker));
    core->pending = (cf_tasklist){NULL, NULL, 0};
    core->npickling = 0;
    core->processes = PyDict_New();
    core->io_thread = NULL;
    core->wake_fd = -1;
    atomic_init(&core->wake_asked, 0);
    atomic_init(&core->io_asleep, 0);
    core->green = cf_threads_are_green(st);
    core->next_worker = 0;
    core->mean_task_ns = -1;
    core->abandon_at = 0;
    core->hold_until = 0;
    for (Py_ssize_t i = 0; core->workers != NULL && i < max_workers; i++) {
        core->workers[i].state = WORKER_EMPTY;
        core->workers[i].task_fd = core->workers[i].result_fd = core->workers[i].shm_sock = -1;
    }
    PyObject_GC_Track(core);
    self->core = core;
    if (core->workers == NULL || core->processes == NULL) {
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

/* The I/O thread, started once the first workers run (after them, so that
 * the fork start method forks before this pool has any thread).  0 started;
 * -1 with an error, not started; 1 with an error (Ctrl-C in start()), yet
 * started: the thread runs, the pool is up. */
static int
core_start_io_thread(cf_state *st, PoolCoreObject *core)
{
    core->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (core->wake_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    PyObject *ticket = pool_ticket_new();
    PyObject *kwargs = ticket ? Py_BuildValue("{sOs(OO)sOss}", "target", st->process_pool_io,
                                              "args", (PyObject *)core, ticket, "daemon",
                                              Py_False, "name", "cfutures-process-pool-io")
                              : NULL;
    PyObject *noargs = kwargs ? PyTuple_New(0) : NULL;
    PyObject *thread_class = noargs ? cf_threading_attr(st, "Thread") : NULL;
    PyObject *thread = thread_class ? PyObject_Call(thread_class, noargs, kwargs) : NULL;
    int rc = thread == NULL ? -1 : cf_consume(PyObject_CallMethod(thread, "start", NULL));
    if (rc < 0 && thread != NULL && !pool_ticket_abandon(ticket)) {
        rc = 1;                     /* start() raised, but the thread runs */
    }
    if (rc >= 0) {
        core->io_thread = Py_NewRef(thread);
        /* Joined at interpreter exit.  Only the key matters: the core as
         * value would keep its own thread, the weak key, alive forever. */
        PyObject *exc = cf_err_take();
        if (PyObject_SetItem(st->threads_queues, core->io_thread, Py_None) < 0) {
            PyErr_WriteUnraisable(core->io_thread);
        }
        cf_err_restore(exc);
    }
    Py_XDECREF(ticket);
    Py_XDECREF(thread_class);
    Py_XDECREF(thread);
    Py_XDECREF(kwargs);
    Py_XDECREF(noargs);
    return rc;
}

/* Stop the workers of a start that failed half-way: the pool is NEW again
 * and the next submit starts from scratch.  Keeps a pending error. */
static void
core_unstart(PoolCoreObject *core)
{
    PyObject *exc = cf_err_take();
    for (Py_ssize_t i = 0; i < core->nslots; i++) {
        pp_worker *w = &core->workers[i];
        if (w->state == WORKER_IDLE) {
            worker_stop(w);
            worker_reap(core, w, PP_TERMINATE_GRACE_S);
        }
    }
    PyErr_Clear();
    if (core->wake_fd >= 0) {
        close(core->wake_fd);
        core->wake_fd = -1;
    }
    cf_err_restore(exc);
}

/* NEW -> RUNNING: the first workers (all of them under fork), then the I/O
 * thread.  -1 with the error of the start, the pool NEW again. */
static int
core_start(cf_state *st, PoolCoreObject *core)
{
    Py_ssize_t n = core->start_on_demand ? 1 : core->nslots;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (worker_start(st, core, i) < 0) {
            core_unstart(core);
            return -1;
        }
    }
    /* RUNNING before the I/O thread runs: it may find a worker dead at once
     * and break the pool, which must stay broken. */
    pool_start(&core->base);
    int started = core_start_io_thread(st, core);
    if (started < 0) {
        pool_unstart(&core->base);
        core_unstart(core);
    }
    return started == 0 ? 0 : -1;
}

/* ---- submit ------------------------------------------------------------- */

static pp_task *
task_new(PyObject *future, PyObject *call, int64_t timeout_ns)
{
    pp_task *task = PyMem_Calloc(1, sizeof(pp_task));
    if (task == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    task->future = Py_NewRef(future);
    task->call = Py_NewRef(call);
    task->timeout_ns = timeout_ns;
    task->shm_fd = -1;
    return task;
}

/* The call as the worker will unpickle it: (fn, args, kwargs), from a
 * vectorcall's fn, positional and keyword arguments. */
static PyObject *
make_call(cf_state *st, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *call_args = PyTuple_New(nargs - 1);
    PyObject *kwargs = kwnames == NULL ? Py_NewRef(st->empty_dict) : PyDict_New();
    PyObject *call = NULL;
    if (call_args == NULL || kwargs == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(call_args, i - 1, Py_NewRef(args[i]));
    }
    for (Py_ssize_t k = 0; kwnames != NULL && k < PyTuple_GET_SIZE(kwnames); k++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) < 0) {
            goto done;
        }
    }
    call = PyTuple_Pack(3, args[0], call_args, kwargs);
done:
    Py_XDECREF(call_args);
    Py_XDECREF(kwargs);
    return call;
}

/* A worker could not start for the work `task` brought: withdraw the task
 * (its submit raises, so it was never accepted) unless a worker already
 * took it.  If the pool could not start at all, tasks that other threads
 * queued meanwhile have nothing to run them: they fail, with the error of
 * the start as the cause.  Keeps the pending error. */
static void
core_withdraw(cf_state *st, PoolCoreObject *core, pp_task *task)
{
    if (cf_tasklist_remove(&core->pending, &task->link)) {
        task_free(task);
    }
    if (core->base.phase != POOL_NEW || core->pending.head == NULL ||
        core_count(core, WORKER_STARTING) > 0) {
        return;
    }
    PyObject *exc = cf_err_take();
    PyObject *error = PyObject_CallFunction(st->BrokenProcessPool, "s",
                                            "A worker process could not be started.");
    pp_task *t;
    while ((t = pp_pop(&core->pending)) != NULL) {
        if (error != NULL) {
            PyException_SetCause(error, Py_XNewRef(exc));
            PyObject *r = future_set_exception(t->future, error);
            Py_XDECREF(r);
        }
        PyErr_Clear();
        task_free(t);
    }
    Py_XDECREF(error);
    cf_err_restore(exc);
}

/* submit()'s work, for a task that may run `timeout_ns` (-1: the pool's
 * task_timeout); args[0] is fn. */
static PyObject *
core_submit(ProcessPoolObject *self, int64_t timeout_ns, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st == NULL) {
        return NULL;
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, CF_QUALNAME("ProcessPoolExecutor.", "submit")
                        "() missing 1 required positional argument: 'fn'");
        return NULL;
    }
    PoolCoreObject *core = self->core;
    if (core == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessPoolExecutor.__init__() was not called");
        return NULL;
    }
    if (!pool_accepting(st, &core->base)) {
        return pool_raise_closed(st, &core->base, st->BrokenProcessPool);
    }
    PyObject *future = future_new_public(st);
    PyObject *call = future ? make_call(st, args, nargs, kwnames) : NULL;
    pp_task *task = call ? task_new(future, call, timeout_ns < 0 ? core->task_timeout_ns
                                                                 : timeout_ns)
                         : NULL;
    Py_XDECREF(call);
    if (task == NULL) {
        Py_XDECREF(future);
        return NULL;
    }
    /* Accept: the allocations may have run the garbage collector, hence
     * Python code, hence a shutdown; look again.  From this check to the
     * push nothing runs Python code. */
    if (!pool_accepting(st, &core->base)) {
        task_free(task);
        Py_DECREF(future);
        return pool_raise_closed(st, &core->base, st->BrokenProcessPool);
    }
    cf_tasklist_push(&core->pending, &task->link);
    Py_INCREF(core);
    int rc = 0;
    if (core->base.phase == POOL_NEW) {
        /* Starting lets other threads run: a concurrent submit queues its
         * task and finds the pool starting (a STARTING slot). */
        if (core_count(core, WORKER_STARTING) == 0) {
            rc = core_start(st, core);
        }
    }
    else if (core->start_on_demand || core_replaces_workers(core)) {
        /* (A fork pool that replaces workers refills a slot left empty.) */
        rc = core_start_if_needed(st, core);
    }
    if (rc < 0) {
        /* As the stdlib: the error (an initializer that cannot be pickled
         * for spawn, say) is raised by this submit; the next one retries. */
        core_withdraw(st, core, task);
        Py_DECREF(future);
        future = NULL;
    }
    else if (core_dispatch(st, core, 1) < 0) {
        /* Ctrl-C while a call was pickled: raised here, never put in a
         * future (that task is cancelled); this submit's own task is
         * withdrawn if it still waits, as its future is never returned. */
        core_withdraw(st, core, task);
        Py_CLEAR(future);
    }
    Py_DECREF(core);
    return future;
}

/* submit(fn, /, *args, **kwargs) */
static PyObject *
process_pool_submit(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return core_submit((ProcessPoolObject *)op, -1, args, nargs, kwnames);
}

/* _submit_timed(timeout, fn, /, *args, **kwargs): submit() with a limit of
 * its own (seconds; None for none), for options(timeout=...). */
static PyObject *
process_pool_submit_timed(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "_submit_timed() needs a timeout");
        return NULL;
    }
    double timeout = 0.0;
    if (args[0] != Py_None) {
        timeout = PyFloat_AsDouble(args[0]);
        if (timeout == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    return core_submit((ProcessPoolObject *)op, cf_seconds_to_ns(timeout), args + 1, nargs - 1,
                       kwnames);
}

/* ---- shutdown ----------------------------------------------------------- */

/* shutdown(cancel_futures=True): what no worker has yet is cancelled, and
 * the cancel notified, as the stdlib's manager does when it drops them. */
void
core_cancel_pending(PoolCoreObject *core)
{
    pp_task *t;
    while ((t = pp_pop(&core->pending)) != NULL) {
        PyObject *r = future_cancel(t->future, NULL);
        PyObject *n = r ? future_set_running_or_notify_cancel(t->future, NULL) : NULL;
        if (n == NULL) {
            PyErr_WriteUnraisable(t->future);
        }
        Py_XDECREF(r);
        Py_XDECREF(n);
        task_free(t);
    }
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
    pool_shut_down(&core->base);
    if (cancel_futures) {
        core_cancel_pending(core);
    }
    core_wake(core);
    if (wait && core->io_thread != NULL) {
        PyObject *thread = Py_NewRef(core->io_thread);
        PyObject *r = PyObject_CallMethod(thread, "join", NULL);
        Py_DECREF(thread);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

/* _interrupt(grace): the `with` block was left by Ctrl-C (core_interrupt);
 * shutdown() follows. */
static PyObject *
process_pool_interrupt(PyObject *op, PyObject *arg)
{
    double grace = PyFloat_AsDouble(arg);
    if (grace == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    PoolCoreObject *core = ((ProcessPoolObject *)op)->core;
    if (core != NULL) {
        core_interrupt(core, grace);
    }
    Py_RETURN_NONE;
}

/* ---- the executor type -------------------------------------------------- */

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

/* The executor is going away: its pool finishes the accepted work, stops. */
static int
process_pool_clear(PyObject *op)
{
    ProcessPoolObject *self = (ProcessPoolObject *)op;
    if (self->core != NULL) {
        pool_shut_down(&self->core->base);
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
    return Py_NewRef(core != NULL && core->base.broken != NULL ? core->base.broken : Py_False);
}

static PyObject *
process_pool_get_shutdown_thread(PyObject *op, void *closure)
{
    (void)closure;
    PoolCoreObject *core = ((ProcessPoolObject *)op)->core;
    return PyBool_FromLong(core != NULL && core->base.phase != POOL_NEW &&
                           core->base.phase != POOL_RUNNING);
}

static PyGetSetDef process_pool_getset[] = {
    {"_processes", process_pool_get_processes, NULL, NULL, NULL},
    {"_broken", process_pool_get_broken, NULL, NULL, NULL},
    {"_shutdown_thread", process_pool_get_shutdown_thread, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef process_pool_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))process_pool_submit, METH_FASTCALL | METH_KEYWORDS,
     POOL_SUBMIT_DOC("in a worker process")},
    {"shutdown", (PyCFunction)(void (*)(void))process_pool_shutdown, METH_VARARGS | METH_KEYWORDS,
     POOL_SHUTDOWN_DOC},
    {"_setup", process_pool_setup, METH_VARARGS, "Internal: called once by __init__."},
    {"_interrupt", process_pool_interrupt, METH_O, "Internal: Ctrl-C left the with block."},
    {"_submit_timed", (PyCFunction)(void (*)(void))process_pool_submit_timed,
     METH_FASTCALL | METH_KEYWORDS, "Internal: submit() with a timeout of its own."},
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

static PyMethodDef module_functions[] = {
    {"_process_pool_io", process_pool_io, METH_VARARGS,
     "Internal: the I/O thread of a process pool."},
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
