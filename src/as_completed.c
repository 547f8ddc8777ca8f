/* as_completed.c — as_completed(fs, timeout=None): an iterator that behaves
 * as the stdlib's generator (re-entry refused, StopIteration rules, its
 * `finally` on close and collection), yielding first the futures finished at
 * its start, then each as its Waiter hears of it (waiter.h).
 */
#include "waiter.h"

typedef struct {
    PyObject_HEAD
    PyObject *fs_arg;           /* the argument, until the first next() */
    PyObject *timeout;
    int started;
    int exhausted;
    int running;                /* a next() or close() is under way */
    double end_time;            /* timeout + time.monotonic() at the start */
    Py_ssize_t total;           /* distinct futures */
    Py_ssize_t unfinished;      /* registered futures not yet handed out */
    PyObject *finished_first;   /* list of futures finished at the start */
    WaiterObject *waiter;
} AsCompletedObject;

PyObject *
futures_as_completed(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"fs", "timeout", NULL};
    cf_state *st = cf_state_of_module(module);
    if (cf_threads_are_green(st)) {
        return PyObject_Call(st->stdlib_as_completed, args, kwargs);
    }
    PyObject *fs_arg, *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:as_completed", kwlist, &fs_arg,
                                     &timeout)) {
        return NULL;
    }
    AsCompletedObject *self = PyObject_GC_New(AsCompletedObject, st->AsCompletedType);
    if (self == NULL) {
        return NULL;
    }
    self->fs_arg = Py_NewRef(fs_arg);
    self->timeout = Py_NewRef(timeout);
    self->started = self->exhausted = self->running = 0;
    self->end_time = 0;
    self->total = self->unfinished = 0;
    self->finished_first = NULL;
    self->waiter = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* What the stdlib generator does before its first yield. */
static int
as_completed_start(AsCompletedObject *self)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st == NULL) {
        return -1;
    }
    if (self->timeout != Py_None && cf_end_time_from_timeout(self->timeout, &self->end_time) < 0) {
        return -1;
    }
    int rc = -1;
    PyObject *future = NULL, *it = NULL;
    PyObject *fs = PySet_New(self->fs_arg);
    Py_CLEAR(self->fs_arg);
    if (fs == NULL) {
        return -1;
    }
    self->total = PySet_GET_SIZE(fs);
    self->finished_first = PyList_New(0);
    self->waiter = waiter_new(st, MODE_AS_COMPLETED, self->total);
    if (self->finished_first == NULL || self->waiter == NULL ||
        (it = PyObject_GetIter(fs)) == NULL) {
        goto done;
    }
    while ((future = PyIter_Next(it)) != NULL) {
        int finished = future_like_finished(st, future);
        if (finished < 0) {
            goto done;
        }
        if (finished) {
            if (PyList_Append(self->finished_first, future) < 0) {
                goto done;
            }
        }
        else {
            if (waiter_register(st, self->waiter, future) < 0) {
                goto done;
            }
            self->unfinished++;
        }
        Py_CLEAR(future);
    }
    rc = PyErr_Occurred() ? -1 : 0;
done:
    Py_XDECREF(future);
    Py_XDECREF(it);
    Py_DECREF(fs);
    return rc;
}

/* Tear down after the last future, an error or close(). */
static int
as_completed_finish(AsCompletedObject *self)
{
    self->exhausted = 1;
    Py_CLEAR(self->finished_first);
    Py_CLEAR(self->fs_arg);
    int rc = self->waiter != NULL ? waiter_close(self->waiter) : 0;
    Py_CLEAR(self->waiter);
    return rc;
}

/* Wait for the next future to finish, as the stdlib's loop does: the time
 * left is `end_time - time.monotonic()`; below zero it is a TimeoutError.
 * 0 when one may be ready, -1 with an exception. */
static int
as_completed_wait(AsCompletedObject *self)
{
    int64_t deadline = CF_FOREVER;
    if (self->timeout != Py_None) {
        double remaining = cf_remaining(self->end_time);
        if (remaining < 0) {
            cf_state *st = cf_state_of_type(Py_TYPE(self));
            if (st != NULL) {
                PyErr_Format(st->TimeoutError, "%zd (of %zd) futures unfinished",
                             self->unfinished, self->total);
            }
            return -1;
        }
        if (!(remaining > 0)) {
            /* 0 or NaN: look once more without waiting, as the stdlib does,
             * but let the threads that complete futures run meanwhile. */
            Py_BEGIN_ALLOW_THREADS
            Py_END_ALLOW_THREADS
            return PyErr_CheckSignals();
        }
        if (cf_deadline_from_seconds(remaining, &deadline) < 0) {
            return -1;
        }
    }
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    return st == NULL ? -1 : waiter_block(st, self->waiter, deadline);
}

/* One step of the generator: the next future, NULL at the end (no
 * exception) or on error. */
static PyObject *
as_completed_step(AsCompletedObject *self)
{
    if (self->exhausted) {
        return NULL;
    }
    if (!self->started) {
        self->started = 1;
        if (as_completed_start(self) < 0) {
            goto error;
        }
    }
    Py_ssize_t nfirst = PyList_GET_SIZE(self->finished_first);
    if (nfirst > 0) {
        PyObject *future = Py_NewRef(PyList_GET_ITEM(self->finished_first, nfirst - 1));
        if (PyList_SetSlice(self->finished_first, nfirst - 1, nfirst, NULL) < 0) {
            Py_DECREF(future);
            goto error;
        }
        return future;
    }
    WaiterObject *w = self->waiter;
    for (;;) {
        if (self->unfinished == 0) {
            as_completed_finish(self);
            return NULL;
        }
        PyObject *future = waiter_pop_finished(w);
        if (future != NULL) {
            self->unfinished--;
            if (waiter_release_yielded(w, future) < 0) {
                Py_DECREF(future);
                goto error;
            }
            return future;
        }
        if (as_completed_wait(self) < 0) {
            goto error;
        }
    }

error:
    {
        /* Like a generator that raised: it is finished for good. */
        PyObject *exc = cf_err_take();
        if (as_completed_finish(self) < 0) {
            PyErr_Clear();
        }
        cf_err_restore(exc);
        cf_generator_error_exit();
    }
    return NULL;
}

static PyObject *
as_completed_next(PyObject *op)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    if (cf_generator_enter(&self->running) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    PyObject *future = as_completed_step(self);
    self->running = 0;
    Py_DECREF(self);
    return future;
}

static PyObject *
as_completed_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    AsCompletedObject *self = (AsCompletedObject *)op;
    if (cf_generator_enter(&self->running) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    int rc = as_completed_finish(self);
    self->running = 0;
    Py_DECREF(self);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static void
as_completed_finalize(PyObject *op)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    if (self->exhausted || self->waiter == NULL) {
        return;
    }
    PyObject *exc = cf_err_take();
    if (as_completed_finish(self) < 0) {
        PyErr_WriteUnraisable(op);
    }
    if (exc != NULL) {
        cf_err_restore(exc);
    }
}

static int
as_completed_traverse(PyObject *op, visitproc visit, void *arg)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->fs_arg);
    Py_VISIT(self->timeout);
    Py_VISIT(self->finished_first);
    Py_VISIT(self->waiter);
    return 0;
}

static int
as_completed_clear(PyObject *op)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    Py_CLEAR(self->fs_arg);
    Py_CLEAR(self->timeout);
    Py_CLEAR(self->finished_first);
    Py_CLEAR(self->waiter);
    return 0;
}

static void
as_completed_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    if (PyObject_CallFinalizerFromDealloc(op) < 0) {
        return;                 /* resurrected */
    }
    PyObject_GC_UnTrack(op);
    as_completed_clear(op);
    PyObject_GC_Del(op);
    Py_DECREF(type);
}

static PyMethodDef as_completed_methods[] = {
    {"close", as_completed_close, METH_NOARGS,
     "Stop iterating and stop listening to the futures not yet handed out."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot as_completed_slots[] = {
    {Py_tp_doc, "Iterator over futures as they complete; see as_completed()."},
    {Py_tp_dealloc, as_completed_dealloc},
    {Py_tp_finalize, as_completed_finalize},
    {Py_tp_traverse, as_completed_traverse},
    {Py_tp_clear, as_completed_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, as_completed_next},
    {Py_tp_methods, as_completed_methods},
    {0, NULL},
};

static PyType_Spec as_completed_spec = {
    .name = "cfutures._cfutures._AsCompletedIterator",
    .basicsize = sizeof(AsCompletedObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = as_completed_slots,
};

int
as_completed_type_init(PyObject *module, cf_state *st)
{
    st->AsCompletedType =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &as_completed_spec, NULL);
    return st->AsCompletedType == NULL ? -1 : 0;
}
