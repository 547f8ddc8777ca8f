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
 * Callbacks are future_callbacks.c's; repr and the private attributes
 * future_attrs.c's.
 */
#include "future.h"
#include "pool.h"

#include <stddef.h>

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

/* Enter `_condition` if it exists: a new reference to the entered
 * condition, a new reference to None if there is none, NULL on error.  The
 * acquire may block, with the GIL released like any lock acquire. */
static PyObject *
future_enter_condition(FutureObject *self)
{
    return self->condition == NULL ? Py_NewRef(Py_None) : cf_condition_enter(self->condition);
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
    return cf_condition_exit(condition, notify);
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

/* ---- errors ------------------------------------------------------------- */

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

/* Green threads, or a `_condition` that someone else put there (futurist's
 * GreenFuture sets an eventlet one): wait through the condition, as the
 * stdlib's result() does.  Every state change notifies it. */
static int
future_wait_done_by_condition(FutureObject *self, PyObject *timeout)
{
    PyObject *existing = future_get_condition((PyObject *)self, NULL);
    PyObject *condition = existing ? cf_condition_enter(existing) : NULL;
    Py_XDECREF(existing);
    if (condition == NULL) {
        return -1;
    }
    int rc = 0;
    if (!future_is_done(self)) {
        rc = cf_consume(PyObject_CallMethod(condition, "wait", "O", timeout ? timeout : Py_None));
    }
    return cf_condition_exit(condition, 0) < 0 || rc < 0 ? -1 : 0;
}

static int
future_done_ready(void *arg)
{
    return future_is_done((FutureObject *)arg);
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
    Py_INCREF(self);
    cf_wait_status status = cf_wait_until(st, &w->waiter.parker, future_done_ready, self, deadline);
    future_unlink_waiter(&w->link);
    cf_parker_fini(&w->waiter.parker);
    PyMem_Free(w);
    Py_DECREF(self);
    return status == CF_WAIT_ERROR ? -1 : 0;
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
    self->stoppable = 0;
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
        int ask_pools = self->state == CF_RUNNING && self->stoppable;
        if (future_exit_condition(condition, 0) < 0) {
            return NULL;
        }
        if (ask_pools) {
            /* Outside the condition: the pool calls Python code. */
            cf_state *st = cf_state_of_type(Py_TYPE(self));
            int stopped = st == NULL ? -1 : pools_cancel_running(st, op);
            return stopped < 0 ? NULL : PyBool_FromLong(stopped);
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

PyObject *
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

int
future_cancel_running(PyObject *op)
{
    FutureObject *self = (FutureObject *)op;
    PyObject *condition = future_enter_condition(self);
    if (condition == NULL) {
        return -1;
    }
    if (self->state != CF_RUNNING) {
        return future_exit_condition(condition, 0) < 0 ? -1 : 0;
    }
    self->state = CF_CANCELLED_AND_NOTIFIED;
    future_wake_waiters(self, CF_ENDED_CANCELLED, 0);
    int told = future_tell_py_waiters(self, "add_cancelled");
    if (future_exit_condition(condition, 1) < 0 || told < 0 || future_run_callbacks(self) < 0) {
        return -1;
    }
    return 1;
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
    PyObject *args = id ? Py_BuildValue("(sOO)", "Future %s in unexpected state: %s", id,
                                        st->state_names[self->state])
                        : NULL;
    Py_XDECREF(id);
    if (cf_log(st, "critical", args, NULL) < 0) {
        return NULL;
    }
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
