/* future.c — the Future type and its waiter protocol.
 *
 * State lives in the struct and changes only with the GIL held.  A state
 * change, the detaching of the native waiters it wakes, and the reading of
 * what it must tell them happen in one GIL hold without calling Python, so a
 * waiter that checked the state under the GIL can never miss its wake-up.
 *
 * The stdlib's private protocol is spoken too, because concurrent.futures'
 * own wait()/as_completed() and code in the wild use it: `_state`, `_result`,
 * `_exception` read and write; `_waiters` is a list whose members get
 * add_result/add_exception/add_cancelled; `_condition` is a
 * threading.Condition created the first time someone asks for it.  Once it
 * exists every state change holds it, exactly as the stdlib's methods do, so
 * the stdlib's "check the state, then install a waiter" under that condition
 * stays atomic.  A future nobody asked that of never allocates one.
 *
 * Callbacks run in the completing thread and stay in `_done_callbacks`
 * afterwards, as in the stdlib; long chains of futures completing each
 * other from their callbacks never overflow the C stack (see below).
 */
#include "cfutures.h"

#include <stddef.h>

static const char *const state_descriptions[CF_NSTATES] = {
    "pending", "running", "cancelled", "cancelled", "finished",
};

static inline int
future_is_cancelled(FutureObject *self)
{
    return self->state == CF_CANCELLED || self->state == CF_CANCELLED_AND_NOTIFIED;
}

static inline int
future_is_done(FutureObject *self)
{
    return future_is_cancelled(self) || self->state == CF_FINISHED;
}

/* The name `obj.__class__.__name__` would give: tp_name after its last dot. */
static const char *
type_short_name(PyTypeObject *type)
{
    const char *dot = strrchr(type->tp_name, '.');
    return dot == NULL ? type->tp_name : dot + 1;
}

/* ---- native waiter list ------------------------------------------------- */

void
future_link_waiter(FutureObject *future, cf_link *link, cf_waiter *waiter)
{
    link->waiter = waiter;
    link->future = (PyObject *)future;
    link->prev = NULL;
    link->next = future->waiters;
    if (future->waiters != NULL) {
        future->waiters->prev = link;
    }
    future->waiters = link;
}

void
future_unlink_waiter(cf_link *link)
{
    FutureObject *future = (FutureObject *)link->future;
    if (future == NULL) {
        return;
    }
    if (link->prev != NULL) {
        link->prev->next = link->next;
    }
    else {
        future->waiters = link->next;
    }
    if (link->next != NULL) {
        link->next->prev = link->prev;
    }
    link->prev = link->next = NULL;
    link->future = NULL;
}

/* Wake the native waiters that this ending concerns and unlink them.  A plain
 * cancel() wakes only result()/exception() waiters; the rest stay until the
 * cancel is notified.  Calls no Python code. */
static void
future_wake_waiters(FutureObject *self, cf_ending ending, int plain_cancel)
{
    cf_link *link = self->waiters;
    while (link != NULL) {
        cf_link *next = link->next;
        cf_waiter *waiter = link->waiter;
        if (!plain_cancel || waiter->wakes_on_cancel) {
            future_unlink_waiter(link);
            waiter->notify(waiter, (PyObject *)self, ending);
        }
        link = next;
    }
}

/* ---- the `_condition` and `_waiters` protocol --------------------------- */

/* Enter `_condition` if it exists.  Returns a new reference to the entered
 * condition, a new reference to None if there is none, NULL on error.  The
 * acquire may block, with the GIL released like any lock acquire. */
static PyObject *
future_enter_condition(FutureObject *self)
{
    if (self->condition == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *condition = Py_NewRef(self->condition);
    PyObject *entered = PyObject_CallMethod(condition, "acquire", NULL);
    if (entered == NULL) {
        Py_DECREF(condition);
        return NULL;
    }
    Py_DECREF(entered);
    return condition;
}

/* Leave what future_enter_condition entered (stealing the reference),
 * notifying its waiters first if asked.  Keeps an error already set. */
static int
future_exit_condition(PyObject *condition, int notify)
{
    if (condition == Py_None) {
        Py_DECREF(condition);
        return 0;
    }
    PyObject *pending_error = cf_err_take();
    int failed = 0;
    if (notify && pending_error == NULL) {
        PyObject *r = PyObject_CallMethod(condition, "notify_all", NULL);
        failed |= r == NULL;
        Py_XDECREF(r);
    }
    PyObject *released = PyObject_CallMethod(condition, "release", NULL);
    failed |= released == NULL;
    Py_XDECREF(released);
    Py_DECREF(condition);
    if (pending_error != NULL) {
        if (failed) {
            PyErr_Clear();
        }
        cf_err_restore(pending_error);
        return -1;
    }
    return failed ? -1 : 0;
}

/* Call method `name` of every object in `_waiters` with this future, as the
 * stdlib does (under `_condition` when it exists). */
static int
future_tell_py_waiters(FutureObject *self, const char *name)
{
    if (self->py_waiters == NULL) {
        return 0;
    }
    PyObject *waiters = Py_NewRef(self->py_waiters);
    int rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiters); i++) {
        PyObject *waiter = Py_NewRef(PyList_GET_ITEM(waiters, i));
        PyObject *r = PyObject_CallMethod(waiter, name, "O", self);
        Py_DECREF(waiter);
        if (r == NULL) {
            rc = -1;
            break;
        }
        Py_DECREF(r);
    }
    Py_DECREF(waiters);
    return rc;
}

/* ---- callbacks and logging ---------------------------------------------- */

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
    PyObject *args = NULL, *kwargs = NULL, *method = NULL, *r = NULL;
    if (st == NULL) {
        goto done;
    }
    args = Py_BuildValue("(sO)", "exception calling callback for %r", self);
    kwargs = args == NULL ? NULL : Py_BuildValue("{sO}", "exc_info", exc);
    method = kwargs == NULL ? NULL : PyObject_GetAttrString(st->logger, "exception");
    r = method == NULL ? NULL : PyObject_Call(method, args, kwargs);
done:
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(method);
    Py_XDECREF(exc);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
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

/* The depth of Python frames on this thread. */
static int
python_depth(void)
{
    PyThreadState *ts = PyThreadState_Get();
#if CF_PY312_PLUS
    return ts->py_recursion_limit - ts->py_recursion_remaining;
#elif CF_PY311_PLUS
    return ts->recursion_limit - ts->recursion_remaining;
#else
    return ts->recursion_depth;
#endif
}

/* Call fn(future).  An Exception is logged; a BaseException, or an error
 * raised while logging, propagates (-1), as in the stdlib. */
static int
future_call_callback(FutureObject *self, PyObject *fn)
{
    PyObject *r = NULL;
    if (python_depth() + FRAMES_PER_CALLBACK_LEVEL * nesting > Py_GetRecursionLimit()) {
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

/* The future just finished: run its callbacks now, or, deep in a chain of
 * callbacks, hand them to the outermost level of this thread. */
static int
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

/* ---- errors ------------------------------------------------------------- */

static PyObject *
future_state_name(FutureObject *self)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    return st == NULL ? NULL : Py_NewRef(st->state_names[self->state]);
}

/* InvalidStateError('{state}: {future!r}') */
static void
future_raise_invalid_state(FutureObject *self)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st == NULL) {
        return;
    }
    PyObject *message = PyUnicode_FromFormat("%U: %R", st->state_names[self->state], self);
    if (message != NULL) {
        PyErr_SetObject(st->InvalidStateError, message);
        Py_DECREF(message);
    }
}

static PyObject *
future_raise_simple(FutureObject *self, size_t which)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st != NULL) {
        PyErr_SetNone(*(PyObject **)((char *)st + which));
    }
    return NULL;
}

#define RAISE_CANCELLED(self) future_raise_simple((self), offsetof(cf_state, CancelledError))
#define RAISE_TIMEOUT(self) future_raise_simple((self), offsetof(cf_state, TimeoutError))

/* `raise self._exception`, with Python's rules for what may be raised. */
static PyObject *
future_raise_exception(PyObject *exc)
{
    if (PyExceptionInstance_Check(exc)) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    }
    else if (PyExceptionClass_Check(exc)) {
        PyErr_SetNone(exc);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
    return NULL;
}

/* ---- waiting ------------------------------------------------------------ */

static void
result_waiter_notify(cf_waiter *waiter, PyObject *future, cf_ending ending)
{
    (void)future;
    (void)ending;
    cf_parker_unpark(&waiter->parker);
}

/* Wait until the future is done (cancelled counts) or the timeout passes.
 * Returns 0, or -1 with an exception (bad timeout, Ctrl-C).
 *
 * The waiter lives on the heap, not the stack: a daemon thread that re-takes
 * the GIL while the interpreter finalizes is ended by CPython right there,
 * and the future must not be left pointing into a dead thread's stack (the
 * few bytes leak instead). */
static PyObject *future_get_condition(PyObject *op, void *closure);

/* Green threads, or a `_condition` that someone else put there (futurist's
 * GreenFuture sets an eventlet one): wait through the condition, as the
 * stdlib's result() does.  Every state change notifies it. */
static int
future_wait_done_by_condition(FutureObject *self, PyObject *timeout)
{
    PyObject *condition = future_get_condition((PyObject *)self, NULL);
    PyObject *entered = condition ? PyObject_CallMethod(condition, "acquire", NULL) : NULL;
    if (entered == NULL) {
        Py_XDECREF(condition);
        return -1;
    }
    Py_DECREF(entered);
    PyObject *waited = Py_NewRef(Py_None);
    if (!future_is_done(self)) {
        Py_DECREF(waited);
        waited = PyObject_CallMethod(condition, "wait", "O", timeout ? timeout : Py_None);
    }
    return future_exit_condition(condition, 0) < 0 || cf_consume(waited) < 0 ? -1 : 0;
}

static int
future_wait_done(FutureObject *self, PyObject *timeout)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st == NULL) {
        return -1;
    }
    if (self->condition_foreign || cf_threads_are_green(st)) {
        return future_wait_done_by_condition(self, timeout);
    }
    int64_t deadline;
    if (cf_deadline_from_timeout(timeout, &deadline) < 0) {
        return -1;
    }
    struct {
        cf_waiter waiter;
        cf_link link;
    } *w = PyMem_Malloc(sizeof(*w));
    if (w == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->waiter.wakes_on_cancel = 1;
    w->waiter.notify = result_waiter_notify;
    cf_parker_init(&w->waiter.parker);
    future_link_waiter(self, &w->link, &w->waiter);

    int rc = 0, timed_out = 0;
    Py_INCREF(self);
    for (;;) {
        cf_parker_arm(&w->waiter.parker);
        if (future_is_done(self) || timed_out) {
            break;
        }
        int parked = cf_park_released(&w->waiter.parker, deadline);
        if (parked < 0) {
            rc = -1;
            break;
        }
        timed_out = parked == 0;
    }
    future_unlink_waiter(&w->link);
    cf_parker_fini(&w->waiter.parker);
    PyMem_Free(w);
    Py_DECREF(self);
    return rc;
}

/* ---- type slots --------------------------------------------------------- */

static PyObject *
future_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    return type->tp_alloc(type, 0);
}

/* Back to a fresh pending future, as the stdlib's __init__ does. */
static void
future_reset(FutureObject *self)
{
    self->state = CF_PENDING;
    Py_CLEAR(self->result);
    Py_CLEAR(self->exception);
    Py_CLEAR(self->callbacks);
    Py_CLEAR(self->py_waiters);
    Py_CLEAR(self->condition);
    self->condition_foreign = 0;
}

static int
future_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
#if CF_PY310_PLUS
#define INIT_NAME "Future.__init__()"
#else
#define INIT_NAME "__init__()"
#endif
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        PyDict_Next(kwargs, &pos, &key, &value);
        PyErr_Format(PyExc_TypeError, INIT_NAME " got an unexpected keyword argument '%S'", key);
        return -1;
    }
    if (PyTuple_GET_SIZE(args) > 0) {
        PyErr_Format(PyExc_TypeError, INIT_NAME " takes 1 positional argument but %zd were given",
                     PyTuple_GET_SIZE(args) + 1);
        return -1;
    }
#undef INIT_NAME
    FutureObject *self = (FutureObject *)op;
    if (self->state != CF_PENDING || self->result || self->exception || self->callbacks ||
        self->py_waiters || self->condition) {
        future_reset(self);
    }
    return 0;
}

/* `Future()` for the public class, without type_call's generic __new__ and
 * __init__ look-ups: a fresh object already is a pending future.  Set on the
 * public class only (tp_vectorcall is not inherited), so user subclasses
 * keep the generic path and their own __init__. */
static PyObject *
future_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs == 0 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0)) {
        return ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 0);
    }
    /* Arguments are an error; let the generic path report it in its words. */
    PyObject *tuple = PyTuple_New(nargs);
    PyObject *kwargs = NULL, *result = NULL;
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    }
    if (kwnames != NULL && (kwargs = PyDict_New()) == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; kwnames != NULL && i < PyTuple_GET_SIZE(kwnames); i++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
            goto done;
        }
    }
    result = PyType_Type.tp_call(type, tuple, kwargs);
done:
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

PyObject *
future_new_public(cf_state *st)
{
    PyTypeObject *type = (PyTypeObject *)st->public_future_class;
    return type->tp_alloc(type, 0);
}

/* Called once by the package with its public Future class. */
int
future_adopt_public_class(cf_state *st, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, st->FutureType)) {
        PyErr_SetString(PyExc_TypeError, "expected a subclass of _cfutures.Future");
        return -1;
    }
    Py_XSETREF(st->public_future_class, Py_NewRef(cls));
    ((PyTypeObject *)cls)->tp_vectorcall = future_vectorcall;
    return 0;
}

static int
future_traverse(PyObject *op, visitproc visit, void *arg)
{
    FutureObject *self = (FutureObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->result);
    Py_VISIT(self->exception);
    Py_VISIT(self->callbacks);
    Py_VISIT(self->py_waiters);
    Py_VISIT(self->condition);
    return 0;
}

static int
future_clear(PyObject *op)
{
    future_reset((FutureObject *)op);
    return 0;
}

static void
future_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    future_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyObject *
future_repr(PyObject *op)
{
    FutureObject *self = (FutureObject *)op;
    const char *name = type_short_name(Py_TYPE(op));
    const char *state = state_descriptions[self->state];
    if (self->state != CF_FINISHED) {
        return PyUnicode_FromFormat("<%s at %p state=%s>", name, op, state);
    }
    int raised = self->exception != NULL ? PyObject_IsTrue(self->exception) : 0;
    if (raised < 0) {
        return NULL;
    }
    if (raised) {
        return PyUnicode_FromFormat("<%s at %p state=%s raised %s>", name, op, state,
                                    type_short_name(Py_TYPE(self->exception)));
    }
    PyObject *result = self->result != NULL ? self->result : Py_None;
    return PyUnicode_FromFormat("<%s at %p state=%s returned %s>", name, op, state,
                                type_short_name(Py_TYPE(result)));
}

/* ---- public methods ----------------------------------------------------- */

PyObject *
future_cancel(PyObject *op, PyObject *unused)
{
    (void)unused;
    FutureObject *self = (FutureObject *)op;
    PyObject *condition = future_enter_condition(self);
    if (condition == NULL) {
        return NULL;
    }
    if (self->state == CF_RUNNING || self->state == CF_FINISHED || future_is_cancelled(self)) {
        int was_cancelled = future_is_cancelled(self);
        if (future_exit_condition(condition, 0) < 0) {
            return NULL;
        }
        return PyBool_FromLong(was_cancelled);
    }
    self->state = CF_CANCELLED;
    future_wake_waiters(self, CF_ENDED_CANCELLED, 1);
    if (future_exit_condition(condition, 1) < 0 || future_run_callbacks(self) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
future_cancelled(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(future_is_cancelled((FutureObject *)op));
}

static PyObject *
future_running(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(((FutureObject *)op)->state == CF_RUNNING);
}

static PyObject *
future_done(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(future_is_done((FutureObject *)op));
}

/* The outcome of a finished future: its result, or its exception raised.
 * Like the stdlib, an exception that is false-y counts as no exception. */
static PyObject *
future_finished_result(FutureObject *self)
{
    if (self->exception != NULL) {
        int raised = PyObject_IsTrue(self->exception);
        if (raised < 0) {
            return NULL;
        }
        if (raised) {
            return future_raise_exception(self->exception);
        }
    }
    return Py_NewRef(self->result != NULL ? self->result : Py_None);
}

static PyObject *
future_finished_exception(FutureObject *self)
{
    return Py_NewRef(self->exception != NULL ? self->exception : Py_None);
}

/* Shared by result() and exception(): wait, then report through `outcome`. */
static PyObject *
future_wait_for_outcome(FutureObject *self, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, const char *qualname,
                        PyObject *(*outcome)(FutureObject *))
{
    if (self->state == CF_FINISHED && nargs <= 1 && kwnames == NULL) {
        return outcome(self);               /* the common, fast case */
    }
    static const char *const names[] = {"timeout"};
    PyObject *timeout = Py_None;
    if (cf_parse_method_args(qualname, args, nargs, kwnames, names, 1, 0, &timeout) < 0) {
        return NULL;
    }
    if (!future_is_done(self) && future_wait_done(self, timeout) < 0) {
        return NULL;
    }
    if (future_is_cancelled(self)) {
        return RAISE_CANCELLED(self);
    }
    if (self->state == CF_FINISHED) {
        return outcome(self);
    }
    return RAISE_TIMEOUT(self);
}

PyObject *
future_result(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return future_wait_for_outcome((FutureObject *)op, args, nargs, kwnames,
                                   CF_QUALNAME("Future.", "result"),
                                   future_finished_result);
}

static PyObject *
future_exception(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return future_wait_for_outcome((FutureObject *)op, args, nargs, kwnames,
                                   CF_QUALNAME("Future.", "exception"),
                                   future_finished_exception);
}

/* The one argument of `qualname(self, name)`, positional or by keyword;
 * NULL with the TypeError otherwise.  Borrowed. */
static PyObject *
future_one_arg(const char *qualname, const char *name, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    if (nargs == 1 && kwnames == NULL) {
        return args[0];                     /* the common, fast case */
    }
    const char *const names[] = {name};
    PyObject *value = NULL;
    return cf_parse_method_args(qualname, args, nargs, kwnames, names, 1, 1, &value) < 0
               ? NULL
               : value;
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

PyObject *
future_set_running_or_notify_cancel(PyObject *op, PyObject *unused)
{
    (void)unused;
    FutureObject *self = (FutureObject *)op;
    PyObject *condition = future_enter_condition(self);
    if (condition == NULL) {
        return NULL;
    }
    if (self->state == CF_CANCELLED) {
        self->state = CF_CANCELLED_AND_NOTIFIED;
        future_wake_waiters(self, CF_ENDED_CANCELLED, 0);
        int told = future_tell_py_waiters(self, "add_cancelled");
        /* No notify_all: cancel() already woke everyone who waits on it. */
        if (future_exit_condition(condition, 0) < 0 || told < 0) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    if (self->state == CF_PENDING) {
        self->state = CF_RUNNING;
        if (future_exit_condition(condition, 0) < 0) {
            return NULL;
        }
        Py_RETURN_TRUE;
    }
    if (future_exit_condition(condition, 0) < 0) {
        return NULL;
    }
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st == NULL) {
        return NULL;
    }
    PyObject *id = PyLong_FromVoidPtr(self);
    PyObject *r = id == NULL ? NULL
                             : PyObject_CallMethod(st->logger, "critical", "sOO",
                                                   "Future %s in unexpected state: %s", id,
                                                   st->state_names[self->state]);
    Py_XDECREF(id);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    PyErr_SetString(PyExc_RuntimeError, "Future in unexpected state");
    return NULL;
}

/* set_result() and set_exception(): `value` is the result or the exception. */
static PyObject *
future_finish(FutureObject *self, PyObject *value, int is_exception)
{
    PyObject *condition = future_enter_condition(self);
    if (condition == NULL) {
        return NULL;
    }
    if (future_is_done(self)) {
        future_raise_invalid_state(self);
        future_exit_condition(condition, 0);
        return NULL;
    }
    /* Old values (only there if someone assigned _result/_exception by hand)
     * are released last: their destructors may run Python code. */
    PyObject *old = is_exception ? self->exception : self->result;
    PyObject *stored = value == Py_None ? NULL : Py_NewRef(value);
    if (is_exception) {
        self->exception = stored;
    }
    else {
        self->result = stored;
    }
    self->state = CF_FINISHED;
    future_wake_waiters(self, is_exception ? CF_ENDED_EXCEPTION : CF_ENDED_RESULT, 0);
    int told = future_tell_py_waiters(self, is_exception ? "add_exception" : "add_result");
    int rc = future_exit_condition(condition, told == 0);
    Py_XDECREF(old);
    if (rc < 0 || future_run_callbacks(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
future_set_result(PyObject *op, PyObject *result)
{
    return future_finish((FutureObject *)op, result, 0);
}

PyObject *
future_set_exception(PyObject *op, PyObject *exception)
{
    return future_finish((FutureObject *)op, exception, 1);
}

/* The Python-facing add_done_callback(fn), set_result(result),
 * set_exception(exception): their argument by position or keyword. */
static PyObject *
future_add_done_callback_method(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    PyObject *fn = future_one_arg(CF_QUALNAME("Future.", "add_done_callback"), "fn", args, nargs,
                                  kwnames);
    return fn == NULL ? NULL : future_add_done_callback(op, fn);
}

static PyObject *
future_set_result_method(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *result = future_one_arg(CF_QUALNAME("Future.", "set_result"), "result", args,
                                      nargs, kwnames);
    return result == NULL ? NULL : future_set_result(op, result);
}

static PyObject *
future_set_exception_method(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    PyObject *exception = future_one_arg(CF_QUALNAME("Future.", "set_exception"), "exception",
                                         args, nargs, kwnames);
    return exception == NULL ? NULL : future_set_exception(op, exception);
}

/* asyncio (3.15+) reads a finished future through this in one call. */
static PyObject *
future_get_snapshot(PyObject *op, PyObject *unused)
{
    (void)unused;
    FutureObject *self = (FutureObject *)op;
    if (self->state == CF_FINISHED) {
        return Py_BuildValue("(OOOO)", Py_True, Py_False,
                             self->result ? self->result : Py_None,
                             self->exception ? self->exception : Py_None);
    }
    if (future_is_cancelled(self)) {
        return Py_BuildValue("(OOOO)", Py_True, Py_True, Py_None, Py_None);
    }
    return Py_BuildValue("(OOOO)", Py_False, Py_False, Py_None, Py_None);
}

/* ---- attributes of the stdlib's private protocol ------------------------ */

static PyObject *
future_get_state(PyObject *op, void *closure)
{
    (void)closure;
    return future_state_name((FutureObject *)op);
}

static int
future_set_state(PyObject *op, PyObject *value, void *closure)
{
    (void)closure;
    FutureObject *self = (FutureObject *)op;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _state");
        return -1;
    }
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    if (st == NULL) {
        return -1;
    }
    for (int i = 0; i < CF_NSTATES; i++) {
        int equal = PyObject_RichCompareBool(value, st->state_names[i], Py_EQ);
        if (equal < 0) {
            return -1;
        }
        if (equal) {
            self->state = (unsigned char)i;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown future state: %R", value);
    return -1;
}

/* _result and _exception: the field's offset is the closure. */
static PyObject *
future_get_field(PyObject *op, void *offset)
{
    PyObject *value = *(PyObject **)((char *)op + (size_t)offset);
    return Py_NewRef(value != NULL ? value : Py_None);
}

static int
future_set_field(PyObject *op, PyObject *value, void *offset)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete this attribute");
        return -1;
    }
    PyObject **slot = (PyObject **)((char *)op + (size_t)offset);
    Py_XSETREF(*slot, value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

/* _waiters and _done_callbacks: lists created the first time they are read. */
static PyObject *
future_get_list(PyObject *op, void *offset)
{
    PyObject **slot = (PyObject **)((char *)op + (size_t)offset);
    if (*slot == NULL) {
        PyObject *list = PyList_New(0);     /* may run Python code (the GC) */
        if (list == NULL) {
            return NULL;
        }
        if (*slot == NULL) {
            *slot = list;
        }
        else {
            Py_DECREF(list);
        }
    }
    return Py_NewRef(*slot);
}

static int
future_set_list(PyObject *op, PyObject *value, void *offset)
{
    if (value == NULL || !PyList_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "this attribute must be a list");
        return -1;
    }
    PyObject **slot = (PyObject **)((char *)op + (size_t)offset);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

static PyObject *
future_get_condition(PyObject *op, void *closure)
{
    (void)closure;
    FutureObject *self = (FutureObject *)op;
    if (self->condition == NULL) {
        cf_state *st = cf_state_of_type(Py_TYPE(op));
        /* threading.Condition as it is now: a green one once patched. */
        PyObject *condition_class = st == NULL ? NULL : cf_threading_attr(st, "Condition");
        PyObject *condition = condition_class ? PyObject_CallNoArgs(condition_class) : NULL;
        Py_XDECREF(condition_class);
        if (condition == NULL) {
            return NULL;
        }
        /* Creating it ran Python code: another thread may have won. */
        if (self->condition == NULL) {
            self->condition = condition;
        }
        else {
            Py_DECREF(condition);
        }
    }
    return Py_NewRef(self->condition);
}

static int
future_set_condition(PyObject *op, PyObject *value, void *closure)
{
    (void)closure;
    FutureObject *self = (FutureObject *)op;
    Py_XSETREF(self->condition, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    self->condition_foreign = self->condition != NULL;
    return 0;
}

#define FIELD(name) ((void *)offsetof(FutureObject, name))

static PyGetSetDef future_getset[] = {
    {"_state", future_get_state, future_set_state, NULL, NULL},
    {"_result", future_get_field, future_set_field, NULL, FIELD(result)},
    {"_exception", future_get_field, future_set_field, NULL, FIELD(exception)},
    {"_waiters", future_get_list, future_set_list, NULL, FIELD(py_waiters)},
    {"_done_callbacks", future_get_list, future_set_list, NULL, FIELD(callbacks)},
    {"_condition", future_get_condition, future_set_condition, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define FASTCALL_KW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef future_methods[] = {
    {"cancel", future_cancel, METH_NOARGS,
     "cancel($self, /)\n--\n\n"
     "Cancel the future if possible.\n\n"
     "Returns True if the future was cancelled, False otherwise.  A future cannot\n"
     "be cancelled if it is running or has already completed."},
    {"cancelled", future_cancelled, METH_NOARGS,
     "cancelled($self, /)\n--\n\nReturn True if the future was cancelled."},
    {"running", future_running, METH_NOARGS,
     "running($self, /)\n--\n\nReturn True if the future is currently executing."},
    {"done", future_done, METH_NOARGS,
     "done($self, /)\n--\n\nReturn True if the future was cancelled or finished executing."},
    {"result", FASTCALL_KW(future_result),
     "result($self, /, timeout=None)\n--\n\n"
     "Return the result of the call that the future represents.\n\n"
     "Args:\n"
     "    timeout: The number of seconds to wait for the result if the future\n"
     "        isn't done.  If None, then there is no limit on the wait time.\n\n"
     "Returns:\n"
     "    The result of the call that the future represents.\n\n"
     "Raises:\n"
     "    CancelledError: If the future was cancelled.\n"
     "    TimeoutError: If the future didn't finish executing before the given\n"
     "        timeout.\n"
     "    Exception: If the call raised then that exception will be raised."},
    {"exception", FASTCALL_KW(future_exception),
     "exception($self, /, timeout=None)\n--\n\n"
     "Return the exception raised by the call that the future represents.\n\n"
     "Args:\n"
     "    timeout: The number of seconds to wait for the exception if the\n"
     "        future isn't done.  If None, then there is no limit on the wait\n"
     "        time.\n\n"
     "Returns:\n"
     "    The exception raised by the call that the future represents or None\n"
     "    if the call completed without raising.\n\n"
     "Raises:\n"
     "    CancelledError: If the future was cancelled.\n"
     "    TimeoutError: If the future didn't finish executing before the given\n"
     "        timeout."},
    {"add_done_callback", FASTCALL_KW(future_add_done_callback_method),
     "add_done_callback($self, /, fn)\n--\n\n"
     "Attach a callable that will be called when the future finishes.\n\n"
     "Args:\n"
     "    fn: A callable that will be called with this future as its only\n"
     "        argument when the future completes or is cancelled.  The callable\n"
     "        will always be called by a thread in the same process in which it\n"
     "        was added.  If the future has already completed or been cancelled\n"
     "        then the callable will be called immediately.  These callables are\n"
     "        called in the order that they were added."},
    {"set_running_or_notify_cancel", future_set_running_or_notify_cancel, METH_NOARGS,
     "set_running_or_notify_cancel($self, /)\n--\n\n"
     "Mark the future as running or process any cancel notifications.\n\n"
     "Should only be used by Executor implementations and unit tests.\n\n"
     "Returns False if the future was cancelled (the waiters are told so), True\n"
     "if it is now running; RuntimeError if it was already running or done."},
    {"set_result", FASTCALL_KW(future_set_result_method),
     "set_result($self, /, result)\n--\n\n"
     "Sets the return value of work associated with the future.\n\n"
     "Should only be used by Executor implementations and unit tests."},
    {"set_exception", FASTCALL_KW(future_set_exception_method),
     "set_exception($self, /, exception)\n--\n\n"
     "Sets the result of the future as being the given exception.\n\n"
     "Should only be used by Executor implementations and unit tests."},
    {"_get_snapshot", future_get_snapshot, METH_NOARGS,
     "_get_snapshot($self, /)\n--\n\nReturn (done, cancelled, result, exception) in one step."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot future_slots[] = {
    {Py_tp_doc, "Future()\n--\n\nRepresents the result of an asynchronous computation."},
    {Py_tp_new, future_new},
    {Py_tp_init, future_init},
    {Py_tp_dealloc, future_dealloc},
    {Py_tp_traverse, future_traverse},
    {Py_tp_clear, future_clear},
    {Py_tp_repr, future_repr},
    {Py_tp_methods, future_methods},
    {Py_tp_getset, future_getset},
    {0, NULL},
};

static PyType_Spec future_spec = {
    .name = "cfutures._cfutures.Future",
    .basicsize = sizeof(FutureObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = future_slots,
};

int
future_module_init(PyObject *module, cf_state *st)
{
    st->FutureType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &future_spec, NULL);
    if (st->FutureType == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->FutureType);
}
