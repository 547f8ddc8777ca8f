/* future_callbacks.c — a Future's done-callbacks: add_done_callback() and
 * running them when the future finishes.
 *
 * Callbacks run in the completing thread, in the order added, outside any
 * lock; an Exception from one is logged ("exception calling callback for
 * %r") and the others still run; a BaseException propagates.  They stay in
 * `_done_callbacks` afterwards, as in the stdlib (a client may keep objects
 * alive through a callback's closure).
 */
#include "future.h"

/* LOGGER.exception('exception calling callback for %r', future) for the
 * exception being raised now, which it clears.  If logging itself raises,
 * that error stays set and -1 is returned: the stdlib's `except Exception:
 * LOGGER.exception(...)` lets it propagate too, so a RecursionError that
 * leaves no room to log is logged by a shallower caller, never dropped. */
static int
future_log_callback_error(FutureObject *self)
{
    PyObject *exc = cf_err_take();
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    int rc = st == NULL ? -1
                        : cf_log(st, "exception",
                                 Py_BuildValue("(sO)", "exception calling callback for %r", self),
                                 exc);
    Py_XDECREF(exc);
    return rc;
}

/* Callbacks run in the completing thread, and a callback may complete
 * another future, whose callbacks run inside it: a chain of futures nests C
 * calls.  Two per-thread counters keep that safe and stdlib-like:
 *   - `nesting` counts the callback levels on this thread as the stdlib's
 *     Python frames would (two per level: set_result and _invoke_callbacks),
 *     carried across the hand-off below; past sys.getrecursionlimit() a call
 *     raises RecursionError, as it would in the stdlib — it is then logged.
 *   - `c_nesting` counts the levels actually nested on the C stack; past
 *     CALLBACK_C_NESTING_MAX a future's callbacks are handed to the outermost
 *     level of this thread, which runs them once the stack has unwound.  So
 *     a chain as long as the recursion limit allows never overflows the C
 *     stack (only the order of very deep chains changes: a future's
 *     callbacks then run after its set_result() returned). */
#define CALLBACK_C_NESTING_MAX 32
#define FRAMES_PER_CALLBACK_LEVEL 2

typedef struct deferred_callbacks {
    struct deferred_callbacks *next;
    FutureObject *future;       /* strong reference */
    int nesting;                /* the level its callbacks run at */
} deferred_callbacks;

static _Thread_local int nesting;
static _Thread_local int c_nesting;
static _Thread_local deferred_callbacks *deferred_head, *deferred_tail;

/* Call fn(future).  An Exception is logged; a BaseException, or an error
 * raised while logging, propagates (-1), as in the stdlib. */
static int
future_call_callback(FutureObject *self, PyObject *fn)
{
    PyObject *r = NULL;
    if (cf_python_depth() + FRAMES_PER_CALLBACK_LEVEL * nesting > Py_GetRecursionLimit()) {
        PyErr_SetString(PyExc_RecursionError,
                        "maximum recursion depth exceeded while calling a Python object");
    }
    else {
        nesting++;
        c_nesting++;
        r = PyObject_CallOneArg(fn, (PyObject *)self);
        c_nesting--;
        nesting--;
    }
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    return future_log_callback_error(self);
}

/* The stdlib's _invoke_callbacks: every callback in `_done_callbacks`, which
 * the future keeps (a client may keep objects alive through a callback's
 * closure), iterated like a list, so one appended meanwhile runs too. */
static int
future_invoke_callbacks(FutureObject *self)
{
    PyObject *callbacks = Py_XNewRef(self->callbacks);
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && callbacks != NULL && i < PyList_GET_SIZE(callbacks); i++) {
        PyObject *fn = Py_NewRef(PyList_GET_ITEM(callbacks, i));
        rc = future_call_callback(self, fn);
        Py_DECREF(fn);
    }
    Py_XDECREF(callbacks);
    return rc;
}

/* Run the callbacks the outermost level of this thread was handed, in the
 * order they were handed over.  Every one runs; the first BaseException is
 * raised at the end. */
static int
future_run_deferred(void)
{
    PyObject *first_error = NULL;
    deferred_callbacks *d;
    while ((d = deferred_head) != NULL) {
        deferred_head = d->next;
        if (deferred_head == NULL) {
            deferred_tail = NULL;
        }
        int saved = nesting;
        nesting = d->nesting;
        if (future_invoke_callbacks(d->future) < 0) {
            PyObject *exc = cf_err_take();
            if (first_error == NULL) {
                first_error = exc;
            }
            else {
                Py_DECREF(exc);
            }
        }
        nesting = saved;
        Py_DECREF(d->future);
        PyMem_Free(d);
    }
    if (first_error != NULL) {
        cf_err_restore(first_error);
        return -1;
    }
    return 0;
}

int
future_run_callbacks(FutureObject *self)
{
    if (self->callbacks == NULL || PyList_GET_SIZE(self->callbacks) == 0) {
        return 0;
    }
    if (c_nesting >= CALLBACK_C_NESTING_MAX) {
        deferred_callbacks *d = PyMem_Malloc(sizeof(*d));
        if (d == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        d->next = NULL;
        d->future = (FutureObject *)Py_NewRef(self);
        d->nesting = nesting;
        if (deferred_tail == NULL) {
            deferred_head = d;
        }
        else {
            deferred_tail->next = d;
        }
        deferred_tail = d;
        return 0;
    }
    int rc = future_invoke_callbacks(self);
    if (c_nesting == 0 && deferred_head != NULL) {
        PyObject *exc = cf_err_take();
        int drained = future_run_deferred();
        if (exc != NULL) {
            if (drained < 0) {
                PyErr_Clear();
            }
            cf_err_restore(exc);
        }
        else {
            rc = drained;
        }
    }
    return rc;
}


static PyObject *
future_add_done_callback(PyObject *op, PyObject *fn)
{
    FutureObject *self = (FutureObject *)op;
    if (!future_is_done(self) && self->callbacks == NULL) {
        /* Allocate before checking: the allocation may run the garbage
         * collector, hence Python code, hence let the future finish. */
        PyObject *callbacks = PyList_New(0);
        if (callbacks == NULL) {
            return NULL;
        }
        if (self->callbacks == NULL) {
            self->callbacks = callbacks;
        }
        else {
            Py_DECREF(callbacks);
        }
    }
    /* Check again: it may have finished meanwhile.  From this check to the
     * append nothing can run Python code (appending only reallocates). */
    if (!future_is_done(self)) {
        if (PyList_Append(self->callbacks, fn) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (future_call_callback(self, fn) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}


/* The Python-facing add_done_callback(fn), set_result(result),
 * set_exception(exception): their argument by position or keyword. */
PyObject *
future_add_done_callback_method(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    PyObject *fn = future_one_arg(CF_QUALNAME("Future.", "add_done_callback"), "fn", args, nargs,
                                  kwnames);
    return fn == NULL ? NULL : future_add_done_callback(op, fn);
}

