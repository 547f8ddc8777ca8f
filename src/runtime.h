/* runtime.h — what every C file may use (runtime.c): version shims for
 * CPython 3.9 - 3.13, error helpers, the one logging helper, the one
 * argument parser, the one ring buffer, entering the stdlib's `_condition`,
 * generator-like iterators, green threads, and the stdlib names imported at
 * first use.
 *
 * The process-wide statics of the extension, and why each is one (the
 * module declares it does not support several interpreters, so one copy of
 * each suffices):
 *   sync.c        main_thread_ident      the thread that runs signal handlers
 *                 spin_blocked_until     contention seen by any thread backs
 *                                        off every spinner
 *                 cpus                   the CPUs it may use (one: never spin)
 *                 runnable_read_at, runnable_seen: the machine's
 *                                        runnable threads, read once per ms
 *                                        for every spinner
 *   future_callbacks.c  nesting, c_nesting, deferred_head/tail:
 *                 per thread (_Thread_local): how deep done-callbacks nest on
 *                 this thread, and the callbacks handed to its outermost level
 * Everything else lives in the module state (cfutures.h).
 */
#ifndef CF_RUNTIME_H
#define CF_RUNTIME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

typedef struct cf_state cf_state;

/* ---- version shims ------------------------------------------------------ */

#define CF_PY310_PLUS (PY_VERSION_HEX >= 0x030A0000)
#define CF_PY311_PLUS (PY_VERSION_HEX >= 0x030B0000)
#define CF_PY312_PLUS (PY_VERSION_HEX >= 0x030C0000)
#define CF_PY313_PLUS (PY_VERSION_HEX >= 0x030D0000)

#if !CF_PY310_PLUS
static inline PyObject *
cf_newref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
#define Py_NewRef(o) cf_newref((PyObject *)(o))
#define Py_XNewRef(o) ((o) == NULL ? NULL : cf_newref((PyObject *)(o)))
#endif

#if !CF_PY311_PLUS
PyObject *cf_type_get_module_by_def(PyTypeObject *type, PyModuleDef *def);
#define PyType_GetModuleByDef cf_type_get_module_by_def
#endif

/* The qualified name that 3.10+ puts in argument errors ("Cls.meth"). */
#if CF_PY310_PLUS
#define CF_QUALNAME(cls, name) cls name
#else
#define CF_QUALNAME(cls, name) name
#endif

/* The referent of a weak reference as a new reference, or NULL if it is dead
 * (PyWeakref_GetObject is deprecated from 3.13). */
static inline PyObject *
cf_weakref_get(PyObject *ref)
{
#if CF_PY313_PLUS
    PyObject *obj = NULL;
    if (PyWeakref_GetRef(ref, &obj) < 0) {
        PyErr_Clear();
    }
    return obj;
#else
    PyObject *obj = PyWeakref_GetObject(ref);
    return obj == NULL || obj == Py_None ? NULL : Py_NewRef(obj);
#endif
}

/* The depth of Python frames on this thread (for the recursion limit). */
static inline int
cf_python_depth(void)
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

/* ---- errors ------------------------------------------------------------- */

/* The error indicator as one object: PyErr_GetRaisedException on 3.12+,
 * PyErr_Fetch (deprecated there) before.  New reference, or NULL. */
static inline PyObject *
cf_err_take(void)
{
#if CF_PY312_PLUS
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise `exc` again (steals the reference; NULL: nothing to raise). */
static inline void
cf_err_restore(PyObject *exc)
{
    if (exc == NULL) {
        return;
    }
#if CF_PY312_PLUS
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef(Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Release the result of a call made for its effect: 0, or -1 if it failed
 * (NULL).  Steals `result`. */
static inline int
cf_consume(PyObject *result)
{
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* `cls(message)` with `cause` as its __cause__ (stolen; may be NULL).  New
 * reference, or NULL with an error. */
PyObject *cf_error_with_cause(PyObject *cls, const char *message, PyObject *cause);

/* ---- logging ------------------------------------------------------------ */

/* The stdlib's logger (`concurrent.futures`): LOGGER.<level>(*args,
 * exc_info=exc_info).  args is a tuple (the message and its %-arguments),
 * stolen (NULL: an error making it, returned); exc_info NULL: none given.
 * 0, or -1 with the error logging raised (the stdlib's `except Exception:
 * LOGGER...` lets such an error propagate: callers decide). */
int cf_log(cf_state *st, const char *level, PyObject *args, PyObject *exc_info);

/* LOGGER.critical(message, exc_info=exc) (NULL: exc_info=True); never
 * fails: an error while logging goes to stderr. */
void cf_log_critical(cf_state *st, const char *message, PyObject *exc);

/* ---- arguments ---------------------------------------------------------- */

/* The arguments of a METH_FASTCALL | METH_KEYWORDS method, taken as the
 * Python method `qualname(self, names...)` takes them: each positional or
 * by keyword, the first `nrequired` required (at most 8 names).  values[]
 * gets borrowed references; those not given keep what the caller put
 * there (the defaults).  -1 with the TypeError a Python method gives. */
int cf_parse_method_args(const char *qualname, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames, const char *const *names, Py_ssize_t nnames,
                         Py_ssize_t nrequired, PyObject **values);

/* ---- a ring of objects -------------------------------------------------- */

/* A growable FIFO of strong references (futures, mostly). */
typedef struct {
    PyObject **items;
    Py_ssize_t capacity, head, count;
} cf_ring;

/* Room for `capacity` items: pushes up to that never allocate (so never
 * fail).  -1 on no memory. */
int cf_ring_reserve(cf_ring *r, Py_ssize_t capacity);
/* Append `item` (stolen; released on failure).  -1 on no memory. */
int cf_ring_push(cf_ring *r, PyObject *item);
/* The oldest or the newest item (new reference), or NULL if empty. */
PyObject *cf_ring_pop_oldest(cf_ring *r);
PyObject *cf_ring_pop_newest(cf_ring *r);
/* The i-th oldest item, borrowed. */
static inline PyObject *
cf_ring_at(cf_ring *r, Py_ssize_t i)
{
    return r->items[(r->head + i) % r->capacity];
}
/* Release every item and the storage. */
void cf_ring_clear(cf_ring *r);

/* ---- the stdlib's `_condition` ------------------------------------------ */

/* `condition.acquire()`: a new reference to the entered condition, or NULL
 * with the error. */
PyObject *cf_condition_enter(PyObject *condition);
/* `condition.notify_all()` (if `notify`) and `release()`, stealing the
 * reference, keeping an error that is already set (that one wins).  0, or
 * -1 with an error set. */
int cf_condition_exit(PyObject *condition, int notify);

/* ---- C iterators that call back into Python ----------------------------- */

/* The stdlib's map() and as_completed() return generators.  A generator
 * refuses a second next() or close() while one runs — from another thread,
 * or re-entered from its own input or a callback — with this error, and so
 * do our iterators: a call in progress keeps its state to itself. */
static inline int
cf_generator_enter(int *running)
{
    if (*running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return -1;
    }
    *running = 1;
    return 0;
}

/* An error leaving a generator's body: StopIteration becomes RuntimeError
 * (PEP 479), so a task raising StopIteration cannot end map() early. */
void cf_generator_error_exit(void);

/* ---- green threads ------------------------------------------------------ */

/* Has gevent or eventlet monkey-patched threading?  Then "threads" are
 * greenlets sharing one OS thread, and a wait that blocks in C would block
 * them all: waits go through the (patched) Python primitives instead. */
int cf_threads_are_green(cf_state *st);
/* time.sleep(seconds): a cooperative pause when threads are green. */
int cf_green_sleep(double seconds);
/* threading.<name> as it is now (patched or not), as the stdlib looks its
 * classes up when it uses them.  New reference. */
PyObject *cf_threading_attr(cf_state *st, const char *name);

/* ---- threads ----------------------------------------------------------- */

/* t.join() for every thread of `threads` (any iterable: a snapshot is
 * taken, as joining lets other code run).  0, or -1 with the first error. */
int cf_join_threads(PyObject *threads);

/* ---- the stdlib's names, imported at first use -------------------------- */

/* The stdlib's thread and process modules' names, imported at first use,
 * as the stdlib imports its executors lazily: `import cfutures` costs no
 * more than `import concurrent.futures`.  Idempotent; -1 with an error.
 *   thread:  BrokenThreadPool, threads_queues
 *   process: the thread ones, BrokenProcessPool, ExceptionWithTraceback,
 *            RemoteTraceback, format_exception, pickle_dumps, pickle_loads */
int cf_load_thread_names(cf_state *st);
int cf_load_process_names(cf_state *st);

/* Borrowed attribute `name` of module `modname`, stored as a new reference
 * in *slot (released first).  0, or -1 with the import error. */
int cf_import_into(PyObject **slot, const char *modname, const char *name);

#endif /* CF_RUNTIME_H */
