/* thread_pool.c — the work queue, the worker loop and ThreadPoolExecutor.
 *
 * A WorkQueue is shared by one executor and its worker threads; workers hold
 * a reference to it, not to the executor, so an executor dropped without
 * shutdown() is collected, and its workers then drain the queue and exit.
 *
 * Invariants:
 *   - The queue, the idle-worker stack and every flag change only with the
 *     GIL held: the GIL is the lock, so there is no internal mutex, nothing
 *     to re-initialise after fork, and no lock-order question.
 *   - A worker waits with the GIL released, parked on its own parker, after
 *     pushing itself on the idle stack; submit() pops one idle worker and
 *     unparks it.  A worker that is awake (running, or waiting for the GIL)
 *     is never woken again, so a burst of submits costs no system calls.
 *   - A task is a C struct holding fn, the argument vector and the future:
 *     no Python object is made per task beyond the Future.
 *   - A worker exits when the queue is empty and its executor was shut down
 *     or collected, or the interpreter is exiting.
 */
#include "cfutures.h"
#include "pool.h"

#include <math.h>

typedef struct tpool_task {
    struct tpool_task *next;
    PyObject *future;
    PyObject *fn;
    PyObject *kwnames;          /* NULL or a tuple of keyword names */
    Py_ssize_t nargs;           /* positional arguments */
    PyObject *args[1];          /* nargs positional, then the keyword values */
} tpool_task;

typedef struct tpool_worker {
    struct tpool_worker *next_idle;
    cf_parker parker;
    PyObject *green_event;          /* green threads: a threading.Event instead */
    int idle;
} tpool_worker;

typedef struct WorkQueueObject {
    PyObject_HEAD
    tpool_task *head, *tail;
    tpool_worker *idle;             /* stack of parked workers */
    Py_ssize_t nworkers;            /* worker threads alive or starting */
    Py_ssize_t nstarting;           /* started by a submit, not yet in `_threads` */
    cf_waitq none_starting;         /* shutdown(wait=True) waits for nstarting == 0 */
    int green;                      /* made while threading was monkey-patched */
    int shutdown;                   /* the executor was shut down */
    int owner_gone;                 /* the executor was collected */
    PyObject *broken;               /* NULL, or the BrokenThreadPool message */
    PyObject *initializer;          /* NULL or callable */
    PyObject *initargs;
    /* Every live queue, for interpreter exit and fork. */
    struct WorkQueueObject *prev_live, *next_live;
} WorkQueueObject;

typedef struct {
    PyObject_HEAD                   /* _cfutures.Executor has no fields */
    WorkQueueObject *queue;
    PyObject *max_workers;          /* as given (or computed) */
    Py_ssize_t max_workers_n;
    PyObject *threads;              /* set of threading.Thread, as `_threads` */
    PyObject *thread_name_prefix;
    Py_ssize_t threads_named;       /* <prefix>_<n>: n of the next worker */
    PyObject *shutdown_lock;        /* `_shutdown_lock`: ours needs none, but
                                     * subclasses (gevent's) take it */
} ThreadPoolObject;

/* Live queues; touched with the GIL held only. */
static WorkQueueObject *live_queues;

/* ---- tasks -------------------------------------------------------------- */

static tpool_task *
task_new(PyObject *future, PyObject *fn, PyObject *const *args, Py_ssize_t nargs,
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
    task->next = NULL;
    task->future = Py_NewRef(future);
    task->fn = Py_NewRef(fn);
    task->kwnames = nkw ? Py_NewRef(kwnames) : NULL;
    task->nargs = nargs;
    for (Py_ssize_t i = 0; i < total; i++) {
        task->args[i] = Py_NewRef(args[i]);
    }
    return task;
}

static void
task_free(tpool_task *task)
{
    Py_ssize_t total = task->nargs + (task->kwnames ? PyTuple_GET_SIZE(task->kwnames) : 0);
    for (Py_ssize_t i = 0; i < total; i++) {
        Py_DECREF(task->args[i]);
    }
    Py_XDECREF(task->kwnames);
    Py_DECREF(task->fn);
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
    PyObject *result = PyObject_Vectorcall(task->fn, task->args, (size_t)task->nargs,
                                           task->kwnames);
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
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* ---- the queue ---------------------------------------------------------- */

static void
queue_push(WorkQueueObject *q, tpool_task *task)
{
    if (q->tail == NULL) {
        q->head = q->tail = task;
    }
    else {
        q->tail->next = task;
        q->tail = task;
    }
}

static tpool_task *
queue_pop(WorkQueueObject *q)
{
    tpool_task *task = q->head;
    if (task != NULL) {
        q->head = task->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
    }
    return task;
}

/* Wake one parked worker; 0 if none is parked. */
static int
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
    PyObject *r = PyObject_CallMethod(w->green_event, "set", NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable(w->green_event);
    }
    Py_XDECREF(r);
    if (exc != NULL) {
        cf_err_restore(exc);
    }
    return 1;
}

/* Sleep until queue_wake_one picks this worker.  GIL held on entry and
 * exit, released meanwhile; with green threads, a cooperative wait. */
static void
worker_park(tpool_worker *self)
{
    if (self->green_event == NULL) {
        cf_parker_arm(&self->parker);
        Py_BEGIN_ALLOW_THREADS
        cf_parker_park(&self->parker, CF_FOREVER);
        Py_END_ALLOW_THREADS
        return;
    }
    PyObject *r = PyObject_CallMethod(self->green_event, "wait", NULL);
    PyObject *cleared = r ? PyObject_CallMethod(self->green_event, "clear", NULL) : NULL;
    if (cleared == NULL) {
        PyErr_WriteUnraisable(self->green_event);
    }
    Py_XDECREF(r);
    Py_XDECREF(cleared);
}

static void
queue_wake_all(WorkQueueObject *q)
{
    while (queue_wake_one(q)) {
    }
}

/* Futures of queued tasks get `how`: cancel (shutdown(cancel_futures=True),
 * fork child) or the BrokenThreadPool error (failed initializer). */
static int
queue_drain(WorkQueueObject *q, PyObject *error)
{
    int rc = 0;
    tpool_task *task;
    while ((task = queue_pop(q)) != NULL) {
        PyObject *r = error == NULL ? future_cancel(task->future, NULL)
                                    : future_set_exception(task->future, error);
        if (r == NULL) {
            if (rc == 0) {
                rc = -1;
                PyErr_WriteUnraisable(task->future);
            }
            PyErr_Clear();
        }
        Py_XDECREF(r);
        task_free(task);
    }
    return rc;
}

static int
queue_traverse(PyObject *op, visitproc visit, void *arg)
{
    WorkQueueObject *q = (WorkQueueObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(q->broken);
    Py_VISIT(q->initializer);
    Py_VISIT(q->initargs);
    for (tpool_task *t = q->head; t != NULL; t = t->next) {
        Py_ssize_t total = t->nargs + (t->kwnames ? PyTuple_GET_SIZE(t->kwnames) : 0);
        Py_VISIT(t->future);
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
        task_free(task);
    }
    Py_CLEAR(q->broken);
    Py_CLEAR(q->initializer);
    Py_CLEAR(q->initargs);
    return 0;
}

static void
queue_dealloc(PyObject *op)
{
    WorkQueueObject *q = (WorkQueueObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (q->prev_live != NULL) {
        q->prev_live->next_live = q->next_live;
    }
    else if (live_queues == q) {
        live_queues = q->next_live;
    }
    if (q->next_live != NULL) {
        q->next_live->prev_live = q->prev_live;
    }
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

static WorkQueueObject *
queue_new(cf_state *st, PyObject *initializer, PyObject *initargs)
{
    WorkQueueObject *q = PyObject_GC_New(WorkQueueObject, st->WorkQueueType);
    if (q == NULL) {
        return NULL;
    }
    q->head = q->tail = NULL;
    q->idle = NULL;
    q->nworkers = q->nstarting = 0;
    q->none_starting.head = NULL;
    q->shutdown = q->owner_gone = 0;
    q->broken = NULL;
    q->initializer = initializer == Py_None ? NULL : Py_NewRef(initializer);
    q->initargs = Py_NewRef(initargs);
    q->green = cf_threads_are_green(st);
    q->prev_live = NULL;
    q->next_live = live_queues;
    if (live_queues != NULL) {
        live_queues->prev_live = q;
    }
    live_queues = q;
    PyObject_GC_Track(q);
    return q;
}

/* ---- the worker --------------------------------------------------------- */

/* The initializer failed: the pool is broken for good. */
static void
queue_initializer_failed(cf_state *st, WorkQueueObject *q)
{
    if (q->broken == NULL) {
        q->broken = PyUnicode_FromString(
            "A thread initializer failed, the thread pool is not usable anymore");
        if (q->broken == NULL) {
            PyErr_WriteUnraisable(NULL);
            return;
        }
    }
    PyObject *error = PyObject_CallOneArg(st->BrokenThreadPool, q->broken);
    if (error == NULL) {
        PyErr_WriteUnraisable(NULL);
        return;
    }
    queue_drain(q, error);
    Py_DECREF(error);
}

static int
worker_should_exit(cf_state *st, WorkQueueObject *q)
{
    return q->head == NULL && (q->shutdown || q->owner_gone || st->interpreter_exiting);
}

/* Let other threads have the GIL now and then: tasks that are C functions
 * never pass through the eval loop, which would otherwise do it for us. */
#define YIELD_EVERY_NS (5 * 1000 * 1000)

/* The body of every worker thread: `_cfutures._thread_worker(queue)`. */
static PyObject *
thread_worker(PyObject *module, PyObject *arg)
{
    cf_state *st = cf_state_of_module(module);
    if (!PyObject_TypeCheck(arg, st->WorkQueueType)) {
        PyErr_SetString(PyExc_TypeError, "_thread_worker() expects a _WorkQueue");
        return NULL;
    }
    WorkQueueObject *q = (WorkQueueObject *)Py_NewRef(arg);
    if (q->initializer != NULL) {
        /* `initializer(*initargs)`: any iterable, unpacked by each worker. */
        PyObject *initargs = PySequence_Tuple(q->initargs);
        PyObject *r = initargs ? PyObject_Call(q->initializer, initargs, NULL) : NULL;
        Py_XDECREF(initargs);
        if (r == NULL) {
            PyObject *exc = cf_err_take();
            cf_log_critical(st, "Exception in initializer:", exc);
            Py_XDECREF(exc);
            queue_initializer_failed(st, q);
            q->nworkers--;
            Py_DECREF(q);
            Py_RETURN_NONE;
        }
        Py_DECREF(r);
    }
    /* On the heap, not the stack: if the interpreter ends this thread while
     * it re-takes the GIL at exit, the idle stack must not point into it. */
    tpool_worker *self = PyMem_Malloc(sizeof(tpool_worker));
    if (self == NULL) {
        q->nworkers--;
        Py_DECREF(q);
        return PyErr_NoMemory();
    }
    self->idle = 0;
    self->next_idle = NULL;
    self->green_event = NULL;
    cf_parker_init(&self->parker);
    PyObject *event_class = q->green ? cf_threading_attr(st, "Event") : NULL;
    if (q->green && (event_class == NULL ||
                     (self->green_event = PyObject_CallNoArgs(event_class)) == NULL)) {
        Py_XDECREF(event_class);
        PyMem_Free(self);
        q->nworkers--;
        Py_DECREF(q);
        return NULL;
    }
    Py_XDECREF(event_class);

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
            task_free(task);
            if ((++ran & 63) == 0 && cf_monotonic_ns() - last_yield > YIELD_EVERY_NS) {
                Py_BEGIN_ALLOW_THREADS
                Py_END_ALLOW_THREADS
                last_yield = cf_monotonic_ns();
            }
            continue;
        }
        if (worker_should_exit(st, q)) {
            break;
        }
        if (!self->idle) {
            self->idle = 1;
            self->next_idle = q->idle;
            q->idle = self;
        }
        worker_park(self);
        last_yield = cf_monotonic_ns();
    }
    /* Leave the idle stack if we are still on it. */
    for (tpool_worker **link = &q->idle; *link != NULL; link = &(*link)->next_idle) {
        if (*link == self) {
            *link = self->next_idle;
            break;
        }
    }
    cf_parker_fini(&self->parker);
    Py_XDECREF(self->green_event);
    PyMem_Free(self);
    q->nworkers--;
    q->shutdown = 1;            /* as the stdlib's leaving workers do */
    /* Others may be parked with nothing left to do: let them see it too. */
    if (worker_should_exit(st, q)) {
        queue_wake_all(q);
    }
    Py_DECREF(q);
    Py_RETURN_NONE;
}

/* ---- ThreadPoolExecutor ------------------------------------------------- */

static Py_ssize_t thread_pool_counter;      /* names ThreadPoolExecutor-<k> */

static PyObject *
default_max_workers(void)
{
    /* min(32, (os.process_cpu_count() or 1) + 4); cpu_count before 3.13 */
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL) {
        return NULL;
    }
    const char *name = PyObject_HasAttrString(os, "process_cpu_count") ? "process_cpu_count"
                                                                       : "cpu_count";
    PyObject *count = PyObject_CallMethod(os, name, NULL);
    Py_DECREF(os);
    if (count == NULL) {
        return NULL;
    }
    long n = count == Py_None ? 1 : PyLong_AsLong(count);
    Py_DECREF(count);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 1) {
        n = 1;
    }
    return PyLong_FromLong(n + 4 < 32 ? n + 4 : 32);
}

/* The most threads `num_threads < max_workers` admits: the stdlib takes any
 * number (2.5 allows 3 threads, inf any count).  -1 on error. */
static Py_ssize_t
worker_limit(PyObject *max_workers)
{
    if (PyLong_Check(max_workers)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(max_workers, &overflow);
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
        return overflow > 0 || n > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)n;
    }
    double x = PyFloat_AsDouble(max_workers);
    if (x == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    x = ceil(x);
    return x >= (double)PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)x;
}

static int
thread_pool_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_workers", "thread_name_prefix", "initializer", "initargs", NULL};
    ThreadPoolObject *self = (ThreadPoolObject *)op;
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    PyObject *max_workers = Py_None, *prefix = NULL, *initializer = Py_None, *initargs = NULL;
    if (st == NULL || !PyArg_ParseTupleAndKeywords(args, kwargs, "|OOOO:ThreadPoolExecutor",
                                                   kwlist, &max_workers, &prefix, &initializer,
                                                   &initargs) ||
        cf_load_thread_names(st) < 0) {
        return -1;
    }
    if (self->queue != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ThreadPoolExecutor.__init__() called twice");
        return -1;
    }
    max_workers = max_workers == Py_None ? default_max_workers() : Py_NewRef(max_workers);
    if (max_workers == NULL) {
        return -1;
    }
    PyObject *zero = PyLong_FromLong(0);
    int invalid = zero ? PyObject_RichCompareBool(max_workers, zero, Py_LE) : -1;
    Py_XDECREF(zero);
    if (invalid != 0) {
        if (invalid > 0) {
            PyErr_SetString(PyExc_ValueError, "max_workers must be greater than 0");
        }
        Py_DECREF(max_workers);
        return -1;
    }
    Py_ssize_t n = worker_limit(max_workers);
    if (n == -1) {
        Py_DECREF(max_workers);
        return -1;
    }
    if (initializer != Py_None && !PyCallable_Check(initializer)) {
        Py_DECREF(max_workers);
        PyErr_SetString(PyExc_TypeError, "initializer must be a callable");
        return -1;
    }
    int has_prefix = prefix != NULL ? PyObject_IsTrue(prefix) : 0;
    if (has_prefix < 0) {
        Py_DECREF(max_workers);
        return -1;
    }
    self->thread_name_prefix = has_prefix ? Py_NewRef(prefix)
                                          : PyUnicode_FromFormat("ThreadPoolExecutor-%zd",
                                                                 thread_pool_counter++);
    PyObject *lock_class = cf_threading_attr(st, "Lock");
    self->shutdown_lock = lock_class ? PyObject_CallNoArgs(lock_class) : NULL;
    Py_XDECREF(lock_class);
    if (self->shutdown_lock == NULL) {
        Py_DECREF(max_workers);
        return -1;
    }
    self->max_workers = max_workers;
    self->max_workers_n = n;
    self->threads = PySet_New(NULL);
    PyObject *empty = initargs == NULL ? PyTuple_New(0) : NULL;
    self->queue = queue_new(st, initializer, initargs != NULL ? initargs : empty);
    Py_XDECREF(empty);
    if (self->thread_name_prefix == NULL || self->threads == NULL || self->queue == NULL) {
        return -1;
    }
    return 0;
}

/* Start the worker thread reserved by the caller (counted in nworkers and
 * nstarting): the stdlib's _adjust_thread_count.  Starting runs Python code
 * and lets other threads run; the reservation keeps them from starting one
 * too many, and keeps shutdown(wait=True) waiting until the thread is in
 * `_threads`, where it joins it. */
static int
thread_pool_start_worker(cf_state *st, ThreadPoolObject *self)
{
    WorkQueueObject *q = (WorkQueueObject *)Py_NewRef(self->queue);
    int rc = -1;
    PyObject *name = PyUnicode_FromFormat("%S_%zd", self->thread_name_prefix,
                                          self->threads_named++);
    PyObject *args = name ? PyTuple_Pack(1, (PyObject *)q) : NULL;
    PyObject *kwargs = args ? Py_BuildValue("{sOsOsO}", "name", name, "target",
                                            st->thread_worker, "args", args)
                            : NULL;
    PyObject *noargs = kwargs ? PyTuple_New(0) : NULL;
    PyObject *thread_class = noargs ? cf_threading_attr(st, "Thread") : NULL;
    PyObject *thread = thread_class ? PyObject_Call(thread_class, noargs, kwargs) : NULL;
    PyObject *started = thread ? PyObject_CallMethod(thread, "start", NULL) : NULL;
    Py_XDECREF(thread_class);
    if (started == NULL) {
        q->nworkers--;              /* it never ran */
    }
    else if (PySet_Add(self->threads, thread) == 0 &&
             PyObject_SetItem(st->threads_queues, thread, (PyObject *)q) == 0) {
        rc = 0;
    }
    q->nstarting--;
    if (q->nstarting == 0) {
        cf_waitq_wake_all(&q->none_starting);
    }
    Py_XDECREF(started);
    Py_XDECREF(thread);
    Py_XDECREF(name);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(noargs);
    Py_DECREF(q);
    return rc;
}

/* Does the pool take new work? */
static int
queue_accepting(cf_state *st, WorkQueueObject *q)
{
    return q->broken == NULL && !q->shutdown && !st->interpreter_exiting;
}

static PyObject *
thread_pool_raise_closed(cf_state *st, ThreadPoolObject *self)
{
    if (self->queue->broken != NULL) {
        PyErr_SetObject(st->BrokenThreadPool, self->queue->broken);
    }
    else if (self->queue->shutdown) {
        PyErr_SetString(PyExc_RuntimeError, "cannot schedule new futures after shutdown");
    }
    else {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after interpreter shutdown");
    }
    return NULL;
}

PyObject *
tpool_submit_call(cf_state *st, PyObject *op, PyObject *fn, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    ThreadPoolObject *self = (ThreadPoolObject *)op;
    WorkQueueObject *q = self->queue;
    if (q == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ThreadPoolExecutor.__init__() was not called");
        return NULL;
    }
    if (!queue_accepting(st, q)) {
        return thread_pool_raise_closed(st, self);
    }
    PyObject *future = future_new_public(st);
    tpool_task *task = future ? task_new(future, fn, args, nargs, kwnames) : NULL;
    if (task == NULL) {
        Py_XDECREF(future);
        return NULL;
    }
    /* Accept: the allocation may have run the garbage collector, hence
     * Python code, hence a shutdown; look again.  From this check to the
     * push, and to the reservation of a new worker, nothing can run Python
     * code, so shutdown(wait=True) sees every task it must wait for. */
    if (!queue_accepting(st, q)) {
        task_free(task);
        Py_DECREF(future);
        return thread_pool_raise_closed(st, self);
    }
    queue_push(q, task);
    /* Idle workers are reused before new threads start. */
    if (queue_wake_one(q) || q->nworkers >= self->max_workers_n) {
        return future;
    }
    q->nworkers++;
    q->nstarting++;
    if (thread_pool_start_worker(st, self) < 0) {
        Py_DECREF(future);
        return NULL;
    }
    return future;
}

/* submit(fn, /, *args, **kwargs) */
static PyObject *
thread_pool_submit(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    if (st == NULL) {
        return NULL;
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, CF_QUALNAME("ThreadPoolExecutor.", "submit")
                        "() missing 1 required positional argument: 'fn'");
        return NULL;
    }
    return tpool_submit_call(st, op, args[0], args + 1, nargs - 1, kwnames);
}

int
tpool_is_native_submit(cf_state *st, PyObject *executor, PyObject *bound)
{
    (void)st;
    return PyCFunction_Check(bound) && PyCFunction_GET_SELF(bound) == executor &&
           PyCFunction_GET_FUNCTION(bound) == (PyCFunction)(void (*)(void))thread_pool_submit;
}

/* t.join() for every thread in `threads` (any iterable: a snapshot is taken,
 * as joining lets other code run). */
static int
join_threads(PyObject *threads)
{
    PyObject *snapshot = PySequence_List(threads);
    if (snapshot == NULL) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(snapshot); i++) {
        PyObject *r = PyObject_CallMethod(PyList_GET_ITEM(snapshot, i), "join", NULL);
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_DECREF(snapshot);
    return rc;
}

static int
queue_none_starting(void *arg)
{
    return ((WorkQueueObject *)arg)->nstarting == 0;
}

/* shutdown(wait=True, *, cancel_futures=False) */
static PyObject *
thread_pool_shutdown(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"wait", "cancel_futures", NULL};
    ThreadPoolObject *self = (ThreadPoolObject *)op;
    int wait = 1, cancel_futures = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p$p:shutdown", kwlist, &wait,
                                     &cancel_futures)) {
        return NULL;
    }
    WorkQueueObject *q = self->queue;
    if (q == NULL) {
        Py_RETURN_NONE;
    }
    q->shutdown = 1;
    if (cancel_futures && queue_drain(q, NULL) < 0) {
        PyErr_Clear();
    }
    queue_wake_all(q);
    if (!wait) {
        Py_RETURN_NONE;
    }
    /* Workers that submits are starting run accepted tasks too: once they
     * are in `_threads`, joining them all waits for every accepted task. */
    Py_INCREF(q);
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    cf_wait_status status = st == NULL ? CF_WAIT_ERROR
                                       : cf_waitq_wait(st, &q->none_starting, queue_none_starting,
                                                       q, CF_FOREVER);
    Py_DECREF(q);
    if (status == CF_WAIT_ERROR || join_threads(self->threads) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
thread_pool_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    return type->tp_alloc(type, 0);
}

static int
thread_pool_traverse(PyObject *op, visitproc visit, void *arg)
{
    ThreadPoolObject *self = (ThreadPoolObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->queue);
    Py_VISIT(self->max_workers);
    Py_VISIT(self->threads);
    Py_VISIT(self->thread_name_prefix);
    Py_VISIT(self->shutdown_lock);
    return 0;
}

/* The executor is going away: its workers finish the queue, then exit. */
static void
thread_pool_release_queue(ThreadPoolObject *self)
{
    if (self->queue != NULL) {
        self->queue->owner_gone = 1;
        queue_wake_all(self->queue);
        Py_CLEAR(self->queue);
    }
}

static int
thread_pool_clear(PyObject *op)
{
    ThreadPoolObject *self = (ThreadPoolObject *)op;
    thread_pool_release_queue(self);
    Py_CLEAR(self->max_workers);
    Py_CLEAR(self->threads);
    Py_CLEAR(self->thread_name_prefix);
    Py_CLEAR(self->shutdown_lock);
    return 0;
}

static void
thread_pool_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    thread_pool_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}

/* ---- the stdlib's attributes -------------------------------------------- */

static PyObject *
thread_pool_get_shutdown(PyObject *op, void *closure)
{
    (void)closure;
    WorkQueueObject *q = ((ThreadPoolObject *)op)->queue;
    return PyBool_FromLong(q != NULL && q->shutdown);
}

static PyObject *
thread_pool_get_broken(PyObject *op, void *closure)
{
    (void)closure;
    WorkQueueObject *q = ((ThreadPoolObject *)op)->queue;
    return Py_NewRef(q != NULL && q->broken != NULL ? q->broken : Py_False);
}

static PyObject *
thread_pool_get_initializer(PyObject *op, void *closure)
{
    (void)closure;
    WorkQueueObject *q = ((ThreadPoolObject *)op)->queue;
    return Py_NewRef(q != NULL && q->initializer != NULL ? q->initializer : Py_None);
}

static PyObject *
thread_pool_get_initargs(PyObject *op, void *closure)
{
    (void)closure;
    WorkQueueObject *q = ((ThreadPoolObject *)op)->queue;
    return Py_NewRef(q != NULL ? q->initargs : Py_None);
}

static PyGetSetDef thread_pool_getset[] = {
    {"_shutdown", thread_pool_get_shutdown, NULL, NULL, NULL},
    {"_broken", thread_pool_get_broken, NULL, NULL, NULL},
    {"_initializer", thread_pool_get_initializer, NULL, NULL, NULL},
    {"_initargs", thread_pool_get_initargs, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef thread_pool_members[] = {
    {"_max_workers", T_OBJECT, offsetof(ThreadPoolObject, max_workers), READONLY, NULL},
    {"_threads", T_OBJECT, offsetof(ThreadPoolObject, threads), READONLY, NULL},
    {"_thread_name_prefix", T_OBJECT, offsetof(ThreadPoolObject, thread_name_prefix), READONLY,
     NULL},
    {"_shutdown_lock", T_OBJECT, offsetof(ThreadPoolObject, shutdown_lock), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef thread_pool_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))thread_pool_submit, METH_FASTCALL | METH_KEYWORDS,
     "submit($self, fn, /, *args, **kwargs)\n--\n\n"
     "Submits a callable to be executed with the given arguments.\n\n"
     "Schedules the callable to be executed as fn(*args, **kwargs) and returns\n"
     "a Future instance representing the execution of the callable.\n\n"
     "Returns:\n"
     "    A Future representing the given call."},
    {"shutdown", (PyCFunction)(void (*)(void))thread_pool_shutdown, METH_VARARGS | METH_KEYWORDS,
     "shutdown($self, /, wait=True, *, cancel_futures=False)\n--\n\n"
     "Clean-up the resources associated with the Executor.\n\n"
     "It is safe to call this method several times.  Otherwise, no other\n"
     "methods can be called after this one.\n\n"
     "Args:\n"
     "    wait: If True then shutdown will not return until all running\n"
     "        futures have finished executing and the resources used by the\n"
     "        executor have been reclaimed.\n"
     "    cancel_futures: If True then shutdown will cancel all pending\n"
     "        futures.  Futures that are completed or running will not be\n"
     "        cancelled."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot thread_pool_slots[] = {
    {Py_tp_doc, "ThreadPoolExecutor(max_workers=None, thread_name_prefix='', initializer=None, "
                "initargs=())\n--\n\nThe native part of cfutures.ThreadPoolExecutor."},
    {Py_tp_new, thread_pool_new},
    {Py_tp_init, thread_pool_init},
    {Py_tp_dealloc, thread_pool_dealloc},
    {Py_tp_traverse, thread_pool_traverse},
    {Py_tp_clear, thread_pool_clear},
    {Py_tp_methods, thread_pool_methods},
    {Py_tp_members, thread_pool_members},
    {Py_tp_getset, thread_pool_getset},
    {0, NULL},
};

static PyType_Spec thread_pool_spec = {
    .name = "cfutures._cfutures.ThreadPoolExecutor",
    .basicsize = sizeof(ThreadPoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = thread_pool_slots,
};

/* ---- interpreter exit and fork ------------------------------------------ */

/* Registered with threading._register_atexit, as the stdlib's _python_exit
 * (both of them): no new work; thread workers and process pools finish what
 * is queued; their threads are joined. */
static PyObject *
thread_pool_python_exit(PyObject *module, PyObject *unused)
{
    (void)unused;
    cf_state *st = cf_state_of_module(module);
    st->interpreter_exiting = 1;
    for (WorkQueueObject *q = live_queues; q != NULL; q = q->next_live) {
        queue_wake_all(q);
    }
    pools_python_exit(st);
    if (st->threads_queues != NULL && join_threads(st->threads_queues) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* In the child after fork: no worker survived.  Queued tasks belong to the
 * parent, which runs them; the child drops its copies without running them
 * or their callbacks (a forked child — a process pool's worker, say — must
 * not act on the parent's behalf).  New submits start new workers. */
void
tpool_after_fork_child(void)
{
    for (WorkQueueObject *q = live_queues; q != NULL; q = q->next_live) {
        tpool_task *task;
        q->idle = NULL;             /* their records belong to dead threads */
        q->nworkers = q->nstarting = 0;
        q->none_starting.head = NULL;
        while ((task = queue_pop(q)) != NULL) {
            task_free(task);
        }
    }
}

static PyMethodDef module_functions[] = {
    {"_thread_worker", thread_worker, METH_O, "Internal: the loop of a worker thread."},
    {"_thread_pool_python_exit", thread_pool_python_exit, METH_NOARGS,
     "Internal: stop and join every pool's workers at interpreter exit."},
    {NULL, NULL, 0, NULL},
};

int
tpool_module_init(PyObject *module, cf_state *st)
{
    st->WorkQueueType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &queue_spec, NULL);
    if (st->WorkQueueType == NULL) {
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, (PyObject *)st->ExecutorType);    /* 3.9 wants a tuple */
    st->ThreadPoolType =
        bases ? (PyTypeObject *)PyType_FromModuleAndSpec(module, &thread_pool_spec, bases) : NULL;
    Py_XDECREF(bases);
    if (st->ThreadPoolType == NULL || PyModule_AddType(module, st->ThreadPoolType) < 0 ||
        PyModule_AddFunctions(module, module_functions) < 0) {
        return -1;
    }
    st->thread_pool_submit_descr = PyObject_GetAttrString((PyObject *)st->ThreadPoolType, "submit");
    st->thread_worker = PyObject_GetAttrString(module, "_thread_worker");
    if (st->thread_pool_submit_descr == NULL || st->thread_worker == NULL) {
        return -1;
    }
    /* Join the workers before the interpreter joins its non-daemon threads. */
    PyObject *exit_hook = PyObject_GetAttrString(module, "_thread_pool_python_exit");
    PyObject *r = exit_hook ? PyObject_CallMethod(st->threading, "_register_atexit", "O",
                                                  exit_hook)
                            : NULL;
    Py_XDECREF(exit_hook);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}
