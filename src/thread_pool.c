/* thread_pool.c — ThreadPoolExecutor's native part: _setup (the package's
 * __init__ checks the arguments, as the stdlib does, then calls it),
 * submit, shutdown and the stdlib's attributes.  The queue and the workers
 * are thread_worker.c's; the invariants are in thread_pool.h.
 */
#include "thread_pool.h"

#include <math.h>

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
    int copy_context;               /* each task runs in a copy of its submitter's
                                     * contextvars context (an extension) */
} ThreadPoolObject;

/* ---- setting up --------------------------------------------------------- */

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

/* _setup(max_workers, thread_name_prefix, initializer, initargs,
 * copy_context=False): the arguments as the package's __init__ checked and
 * completed them. */
static PyObject *
thread_pool_setup(PyObject *op, PyObject *args)
{
    ThreadPoolObject *self = (ThreadPoolObject *)op;
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    PyObject *max_workers, *prefix, *initializer, *initargs;
    int copy_context = 0;
    if (st == NULL ||
        !PyArg_ParseTuple(args, "OOOO|p:_setup", &max_workers, &prefix, &initializer, &initargs,
                          &copy_context) ||
        cf_load_thread_names(st) < 0) {
        return NULL;
    }
    if (self->queue != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ThreadPoolExecutor.__init__() called twice");
        return NULL;
    }
    Py_ssize_t n = worker_limit(max_workers);
    if (n == -1) {
        return NULL;
    }
    PyObject *lock_class = cf_threading_attr(st, "Lock");
    self->shutdown_lock = lock_class ? PyObject_CallNoArgs(lock_class) : NULL;
    Py_XDECREF(lock_class);
    self->max_workers = Py_NewRef(max_workers);
    self->max_workers_n = n;
    self->copy_context = copy_context;
    self->thread_name_prefix = Py_NewRef(prefix);
    self->threads = PySet_New(NULL);
    self->queue = queue_new(st, initializer, initargs);
    if (self->shutdown_lock == NULL || self->threads == NULL || self->queue == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- submit ------------------------------------------------------------- */

/* Start the worker thread reserved by the caller (counted in nworkers and
 * nstarting): the stdlib's _adjust_thread_count.  Starting runs Python code
 * and lets other threads run; the reservation keeps them from starting one
 * too many, and keeps shutdown(wait=True) waiting until the thread is in
 * `_threads`, where it joins it. */
static int
thread_pool_start_worker(cf_state *st, ThreadPoolObject *self)
{
    WorkQueueObject *q = (WorkQueueObject *)Py_NewRef(self->queue);
    PyObject *name = PyUnicode_FromFormat("%S_%zd", self->thread_name_prefix,
                                          self->threads_named++);
    PyObject *ticket = name ? pool_ticket_new() : NULL;
    PyObject *kwargs = ticket ? Py_BuildValue("{sOsOs(OO)}", "name", name, "target",
                                              st->thread_worker, "args", (PyObject *)q, ticket)
                              : NULL;
    PyObject *noargs = kwargs ? PyTuple_New(0) : NULL;
    PyObject *thread_class = noargs ? cf_threading_attr(st, "Thread") : NULL;
    PyObject *thread = thread_class ? PyObject_Call(thread_class, noargs, kwargs) : NULL;
    int rc = thread == NULL ? -1 : cf_consume(PyObject_CallMethod(thread, "start", NULL));
    /* start() may raise (Ctrl-C) with the thread running: it is ours then. */
    if (thread == NULL || (rc < 0 && pool_ticket_abandon(ticket))) {
        queue_worker_not_started(q);
    }
    else {
        PyObject *exc = cf_err_take();
        if (PySet_Add(self->threads, thread) < 0 ||
            PyObject_SetItem(st->threads_queues, thread, (PyObject *)q) < 0) {
            PyErr_WriteUnraisable(thread);
        }
        cf_err_restore(exc);
        queue_worker_registered(q);
    }
    Py_XDECREF(thread_class);
    Py_XDECREF(thread);
    Py_XDECREF(name);
    Py_XDECREF(ticket);
    Py_XDECREF(kwargs);
    Py_XDECREF(noargs);
    Py_DECREF(q);
    return rc;
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
    if (!pool_accepting(st, &q->base)) {
        return pool_raise_closed(st, &q->base, st->BrokenThreadPool);
    }
    PyObject *future = future_new_public(st);
    tpool_task *task = future ? tpool_task_new(future, fn, args, nargs, kwnames) : NULL;
    if (task != NULL && self->copy_context &&
        (task->context = PyContext_CopyCurrent()) == NULL) {
        tpool_task_free(task);
        task = NULL;
    }
    if (task == NULL) {
        Py_XDECREF(future);
        return NULL;
    }
    /* Accept: the allocation may have run the garbage collector, hence
     * Python code, hence a shutdown; look again.  From this check to the
     * push, and to the reservation of a new worker, nothing can run Python
     * code, so shutdown(wait=True) sees every task it must wait for. */
    if (!pool_accepting(st, &q->base)) {
        tpool_task_free(task);
        Py_DECREF(future);
        return pool_raise_closed(st, &q->base, st->BrokenThreadPool);
    }
    queue_push(q, task);
    /* Idle workers are reused before new threads start. */
    if (queue_wake_one(q) || q->nworkers >= self->max_workers_n) {
        return future;
    }
    if (q->base.phase == POOL_NEW) {
        pool_start(&q->base);
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

/* ---- shutdown ----------------------------------------------------------- */

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
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    if (q == NULL || st == NULL) {
        return st == NULL ? NULL : Py_NewRef(Py_None);
    }
    pool_shut_down(&q->base);
    if (q->base.phase == POOL_SHUTTING_DOWN && q->nworkers == 0) {
        pool_stopped(&q->base);
    }
    if (cancel_futures) {
        queue_cancel_all(q);
    }
    queue_wake_all(q);
    /* Workers that submits are starting run accepted tasks too: once they
     * are in `_threads`, joining them all waits for every accepted task. */
    if (wait && (queue_wait_none_starting(st, q) < 0 || cf_join_threads(self->threads) < 0)) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- the executor type -------------------------------------------------- */

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
static int
thread_pool_clear(PyObject *op)
{
    ThreadPoolObject *self = (ThreadPoolObject *)op;
    if (self->queue != NULL) {
        pool_shut_down(&self->queue->base);
        queue_wake_all(self->queue);
        Py_CLEAR(self->queue);
    }
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
    return PyBool_FromLong(q != NULL && (q->base.phase == POOL_SHUTTING_DOWN ||
                                         q->base.phase == POOL_STOPPED));
}

static PyObject *
thread_pool_get_broken(PyObject *op, void *closure)
{
    (void)closure;
    WorkQueueObject *q = ((ThreadPoolObject *)op)->queue;
    return Py_NewRef(q != NULL && q->base.broken != NULL ? q->base.broken : Py_False);
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
     POOL_SUBMIT_DOC("on a worker thread")},
    {"shutdown", (PyCFunction)(void (*)(void))thread_pool_shutdown, METH_VARARGS | METH_KEYWORDS,
     POOL_SHUTDOWN_DOC},
    {"_setup", thread_pool_setup, METH_VARARGS, "Internal: called once by __init__."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot thread_pool_slots[] = {
    {Py_tp_doc, "ThreadPoolExecutor(max_workers=None, thread_name_prefix='', initializer=None, "
                "initargs=(), *, copy_context=False)\n--\n\n"
                "The native part of cfutures.ThreadPoolExecutor."},
    {Py_tp_new, thread_pool_new},
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


int
tpool_module_init(PyObject *module, cf_state *st)
{
    if (tpool_worker_module_init(module, st) < 0) {
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, (PyObject *)st->ExecutorType);    /* 3.9 wants a tuple */
    st->ThreadPoolType =
        bases ? (PyTypeObject *)PyType_FromModuleAndSpec(module, &thread_pool_spec, bases) : NULL;
    Py_XDECREF(bases);
    return st->ThreadPoolType == NULL || PyModule_AddType(module, st->ThreadPoolType) < 0 ? -1
                                                                                          : 0;
}
