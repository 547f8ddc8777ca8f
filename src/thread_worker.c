/* thread_worker.c — a thread pool's work queue and the loop of its worker
 * threads.  The invariants are in thread_pool.h.
 */
#include "thread_pool.h"

/* ---- tasks -------------------------------------------------------------- */

tpool_task *
tpool_task_new(PyObject *future, PyObject *fn, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    Py_ssize_t total = nargs + nkw;
    tpool_task *task = PyMem_Malloc(sizeof(tpool_task) + (size_t)(total > 0 ? total - 1 : 0) *
                                                             sizeof(PyObject *));
    if (task == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    task->link.next = NULL;
    task->future = Py_NewRef(future);
    task->context = NULL;
    task->fn = Py_NewRef(fn);
    task->kwnames = nkw ? Py_NewRef(kwnames) : NULL;
    task->nargs = nargs;
    for (Py_ssize_t i = 0; i < total; i++) {
        task->args[i] = Py_NewRef(args[i]);
    }
    return task;
}

void
tpool_task_free(tpool_task *task)
{
    Py_ssize_t total = task->nargs + (task->kwnames ? PyTuple_GET_SIZE(task->kwnames) : 0);
    for (Py_ssize_t i = 0; i < total; i++) {
        Py_DECREF(task->args[i]);
    }
    Py_XDECREF(task->kwnames);
    Py_DECREF(task->fn);
    Py_XDECREF(task->context);
    Py_DECREF(task->future);
    PyMem_Free(task);
}

/* _WorkItem.run(): the call's outcome lands on the future. */
static int
task_run(tpool_task *task)
{
    PyObject *go = future_set_running_or_notify_cancel(task->future, NULL);
    if (go != Py_True) {
        Py_XDECREF(go);
        return go == NULL ? -1 : 0;         /* cancelled: nothing to run */
    }
    Py_DECREF(go);
    PyObject *result = NULL;
    /* copy_context=True: the call, and only the call, runs in the context
     * copied at submit(), as contextvars.Context.run() would run it; the
     * future's callbacks run in the worker's own, as without it. */
    if (task->context == NULL || PyContext_Enter(task->context) == 0) {
        result = PyObject_Vectorcall(task->fn, task->args, (size_t)task->nargs, task->kwnames);
        if (task->context != NULL && PyContext_Exit(task->context) < 0) {
            Py_CLEAR(result);
        }
    }
    PyObject *done;
    if (result == NULL) {
        PyObject *exc = cf_err_take();      /* BaseException too, as the stdlib */
        done = future_set_exception(task->future, exc);
        Py_DECREF(exc);
    }
    else {
        done = future_set_result(task->future, result);
        Py_DECREF(result);
    }
    return cf_consume(done);
}

/* ---- the queue ---------------------------------------------------------- */

void
queue_push(WorkQueueObject *q, tpool_task *task)
{
    cf_tasklist_push(&q->tasks, &task->link);
}

static tpool_task *
queue_pop(WorkQueueObject *q)
{
    return (tpool_task *)cf_tasklist_pop(&q->tasks);
}

int
queue_wake_one(WorkQueueObject *q)
{
    tpool_worker *w = q->idle;
    if (w == NULL) {
        return 0;
    }
    q->idle = w->next_idle;
    w->idle = 0;
    if (w->green_event == NULL) {
        cf_parker_unpark(&w->parker);
        return 1;
    }
    PyObject *exc = cf_err_take();          /* wakers may have one pending */
    if (cf_consume(PyObject_CallMethod(w->green_event, "set", NULL)) < 0) {
        PyErr_WriteUnraisable(w->green_event);
    }
    cf_err_restore(exc);
    return 1;
}

void
queue_wake_all(WorkQueueObject *q)
{
    while (queue_wake_one(q)) {
    }
}

/* Every queued task's future gets `error` (a failed initializer); NULL:
 * cancelled (shutdown(cancel_futures=True), as the stdlib: cancel only). */
static void
queue_drain(WorkQueueObject *q, PyObject *error)
{
    tpool_task *task;
    while ((task = queue_pop(q)) != NULL) {
        PyObject *r = error == NULL ? future_cancel(task->future, NULL)
                                    : future_set_exception(task->future, error);
        if (cf_consume(r) < 0) {
            PyErr_WriteUnraisable(task->future);
        }
        tpool_task_free(task);
    }
}

void
queue_cancel_all(WorkQueueObject *q)
{
    queue_drain(q, NULL);
}

void
queue_worker_not_started(WorkQueueObject *q)
{
    q->nworkers--;
    queue_worker_registered(q);
}

void
queue_worker_registered(WorkQueueObject *q)
{
    q->nstarting--;
    if (q->nstarting == 0) {
        cf_waitq_wake_all(&q->none_starting);
    }
}

static int
queue_none_starting(void *arg)
{
    return ((WorkQueueObject *)arg)->nstarting == 0;
}

int
queue_wait_none_starting(cf_state *st, WorkQueueObject *q)
{
    Py_INCREF(q);
    cf_wait_status status = cf_waitq_wait(st, &q->none_starting, queue_none_starting, q,
                                          CF_FOREVER);
    Py_DECREF(q);
    return status == CF_WAIT_ERROR ? -1 : 0;
}

/* ---- the queue object: its pool-core hooks and type --------------------- */

static void
queue_python_exit(cf_pool *pool)
{
    cf_state *st = cf_state_of_type(Py_TYPE(pool));
    if (st != NULL && st->exit_interrupted) {
        queue_cancel_all((WorkQueueObject *)pool);     /* Ctrl-C: only what runs finishes */
    }
    PyErr_Clear();
    queue_wake_all((WorkQueueObject *)pool);
}

/* In the child after fork: no worker survived.  Queued tasks belong to the
 * parent, which runs them; the child drops its copies without running them
 * or their callbacks (a forked child — a process pool's worker, say — must
 * not act on the parent's behalf): their futures stay pending there.  New
 * submits start new workers. */
static int
queue_after_fork_child(cf_pool *pool)
{
    WorkQueueObject *q = (WorkQueueObject *)pool;
    tpool_task *task;
    q->idle = NULL;             /* their records belong to dead threads */
    q->nworkers = q->nstarting = 0;
    q->none_starting.head = NULL;
    while ((task = queue_pop(q)) != NULL) {
        tpool_task_free(task);
    }
    return 1;
}

static const cf_pool_ops queue_ops = {
    .python_exit = queue_python_exit,
    .after_fork_child = queue_after_fork_child,
};

static int
queue_traverse(PyObject *op, visitproc visit, void *arg)
{
    WorkQueueObject *q = (WorkQueueObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(q->base.broken);
    Py_VISIT(q->initializer);
    Py_VISIT(q->initargs);
    for (cf_task *link = q->tasks.head; link != NULL; link = link->next) {
        tpool_task *t = (tpool_task *)link;
        Py_ssize_t total = t->nargs + (t->kwnames ? PyTuple_GET_SIZE(t->kwnames) : 0);
        Py_VISIT(t->future);
        Py_VISIT(t->context);
        Py_VISIT(t->fn);
        for (Py_ssize_t i = 0; i < total; i++) {
            Py_VISIT(t->args[i]);
        }
    }
    return 0;
}

static int
queue_clear(PyObject *op)
{
    WorkQueueObject *q = (WorkQueueObject *)op;
    tpool_task *task;
    while ((task = queue_pop(q)) != NULL) {
        tpool_task_free(task);
    }
    Py_CLEAR(q->initializer);
    Py_CLEAR(q->initargs);
    return 0;
}

static void
queue_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    pool_fini(&((WorkQueueObject *)op)->base);
    queue_clear(op);
    PyObject_GC_Del(op);
    Py_DECREF(type);
}

static PyType_Slot queue_slots[] = {
    {Py_tp_doc, "Internal: the tasks and idle workers of one ThreadPoolExecutor."},
    {Py_tp_dealloc, queue_dealloc},
    {Py_tp_traverse, queue_traverse},
    {Py_tp_clear, queue_clear},
    {0, NULL},
};

static PyType_Spec queue_spec = {
    .name = "cfutures._cfutures._WorkQueue",
    .basicsize = sizeof(WorkQueueObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = queue_slots,
};

WorkQueueObject *
queue_new(cf_state *st, PyObject *initializer, PyObject *initargs)
{
    WorkQueueObject *q = PyObject_GC_New(WorkQueueObject, st->WorkQueueType);
    if (q == NULL) {
        return NULL;
    }
    pool_init(st, &q->base, &queue_ops);
    q->tasks = (cf_tasklist){NULL, NULL, 0};
    q->idle = NULL;
    q->nworkers = q->nstarting = 0;
    q->none_starting.head = NULL;
    q->green = cf_threads_are_green(st);
    q->initializer = initializer == Py_None ? NULL : Py_NewRef(initializer);
    q->initargs = Py_NewRef(initargs);
    PyObject_GC_Track(q);
    return q;
}

/* ---- the worker --------------------------------------------------------- */

/* `initializer(*initargs)` (any iterable, unpacked by each worker).  A
 * failure is logged and breaks the pool for good: queued futures and later
 * submits get BrokenThreadPool.  -1 if it failed. */
static int
worker_initialize(cf_state *st, WorkQueueObject *q)
{
    if (q->initializer == NULL) {
        return 0;
    }
    PyObject *initargs = PySequence_Tuple(q->initargs);
    PyObject *r = initargs ? PyObject_Call(q->initializer, initargs, NULL) : NULL;
    Py_XDECREF(initargs);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    PyObject *exc = cf_err_take();
    cf_log_critical(st, "Exception in initializer:", exc);
    Py_XDECREF(exc);
    if (q->base.phase != POOL_BROKEN &&
        pool_break(&q->base, "A thread initializer failed, the thread pool is not usable "
                             "anymore") < 0) {
        PyErr_WriteUnraisable(NULL);
        return -1;
    }
    PyObject *error = PyObject_CallOneArg(st->BrokenThreadPool, q->base.broken);
    if (error == NULL) {
        PyErr_WriteUnraisable(NULL);
        return -1;
    }
    queue_drain(q, error);
    Py_DECREF(error);
    return -1;
}

/* A worker's record, on the heap, not the stack: if the interpreter ends
 * this thread while it re-takes the GIL at exit, the idle stack must not
 * point into it.  NULL with an error. */
static tpool_worker *
worker_new(cf_state *st, WorkQueueObject *q)
{
    tpool_worker *self = PyMem_Calloc(1, sizeof(tpool_worker));
    if (self == NULL) {
        return (tpool_worker *)PyErr_NoMemory();
    }
    cf_parker_init(&self->parker);
    if (q->green) {
        PyObject *event_class = cf_threading_attr(st, "Event");
        self->green_event = event_class ? PyObject_CallNoArgs(event_class) : NULL;
        Py_XDECREF(event_class);
        if (self->green_event == NULL) {
            PyMem_Free(self);
            return NULL;
        }
    }
    return self;
}

/* Sleep until queue_wake_one picks this worker.  GIL held on entry and
 * exit, released meanwhile; with green threads, a cooperative wait. */
static void
worker_park(tpool_worker *self)
{
    if (self->green_event == NULL) {
        cf_parker_arm(&self->parker);
        Py_BEGIN_ALLOW_THREADS
        cf_parker_park(&self->parker, CF_FOREVER, 1);
        Py_END_ALLOW_THREADS
        return;
    }
    PyObject *r = PyObject_CallMethod(self->green_event, "wait", NULL);
    if (cf_consume(r) < 0 ||
        cf_consume(PyObject_CallMethod(self->green_event, "clear", NULL)) < 0) {
        PyErr_WriteUnraisable(self->green_event);
    }
}

static int
worker_should_exit(cf_state *st, WorkQueueObject *q)
{
    return q->tasks.head == NULL &&
           (q->base.phase != POOL_RUNNING || st->interpreter_exiting);
}

/* Let other threads have the GIL now and then: tasks that are C functions
 * never pass through the eval loop, which would otherwise do it for us. */
#define YIELD_EVERY_NS (5 * 1000 * 1000)

/* Run tasks until the queue is empty and the pool winds down. */
static void
worker_serve(cf_state *st, WorkQueueObject *q, tpool_worker *self)
{
    int64_t last_yield = cf_monotonic_ns();
    unsigned ran = 0;
    for (;;) {
        tpool_task *task = queue_pop(q);
        if (task != NULL) {
            if (task_run(task) < 0) {
                /* The stdlib's worker would die here; keep serving instead. */
                PyObject *exc = cf_err_take();
                cf_log_critical(st, "Exception in worker", exc);
                Py_XDECREF(exc);
            }
            tpool_task_free(task);
            if ((++ran & 63) == 0 && cf_monotonic_ns() - last_yield > YIELD_EVERY_NS) {
                Py_BEGIN_ALLOW_THREADS
                Py_END_ALLOW_THREADS
                last_yield = cf_monotonic_ns();
            }
            continue;
        }
        if (worker_should_exit(st, q)) {
            return;
        }
        if (!self->idle) {
            self->idle = 1;
            self->next_idle = q->idle;
            q->idle = self;
        }
        worker_park(self);
        last_yield = cf_monotonic_ns();
    }
}

/* The worker leaves: off the idle stack, the pool winds down (as the
 * stdlib's leaving workers set `_shutdown`), and stops with the last one. */
static void
worker_leave(cf_state *st, WorkQueueObject *q, tpool_worker *self)
{
    if (self != NULL) {
        for (tpool_worker **link = &q->idle; *link != NULL; link = &(*link)->next_idle) {
            if (*link == self) {
                *link = self->next_idle;
                break;
            }
        }
        cf_parker_fini(&self->parker);
        Py_XDECREF(self->green_event);
        PyMem_Free(self);
    }
    q->nworkers--;
    pool_shut_down(&q->base);
    if (q->nworkers == 0 && q->base.phase == POOL_SHUTTING_DOWN) {
        pool_stopped(&q->base);
    }
    /* Others may be parked with nothing left to do: let them see it too. */
    if (worker_should_exit(st, q)) {
        queue_wake_all(q);
    }
}

PyObject *
thread_worker(PyObject *module, PyObject *args)
{
    cf_state *st = cf_state_of_module(module);
    WorkQueueObject *q =
        (WorkQueueObject *)pool_of_thread_args(args, st->WorkQueueType, "_thread_worker");
    if (q == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);    /* its start was given up */
    }
    tpool_worker *self = NULL;
    if (worker_initialize(st, q) == 0 && (self = worker_new(st, q)) != NULL) {
        worker_serve(st, q, self);
    }
    PyObject *exc = cf_err_take();
    worker_leave(st, q, self);
    Py_DECREF(q);
    if (exc != NULL) {
        cf_err_restore(exc);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef worker_functions[] = {
    {"_thread_worker", thread_worker, METH_VARARGS, "Internal: the loop of a worker thread."},
    {NULL, NULL, 0, NULL},
};

int
tpool_worker_module_init(PyObject *module, cf_state *st)
{
    st->WorkQueueType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &queue_spec, NULL);
    if (st->WorkQueueType == NULL || PyModule_AddFunctions(module, worker_functions) < 0) {
        return -1;
    }
    st->thread_worker = PyObject_GetAttrString(module, "_thread_worker");
    return st->thread_worker == NULL ? -1 : 0;
}
