/* cfutures.h — module state and the declarations the C files share.
 *
 * Version shims for CPython 3.9 – 3.13 are gathered at the top, so the rest of
 * the code is written against one API.
 */
#ifndef CFUTURES_H
#define CFUTURES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

#include "sync.h"

/* ---- version shims ------------------------------------------------------ */

#define CF_PY310_PLUS (PY_VERSION_HEX >= 0x030A0000)
#define CF_PY311_PLUS (PY_VERSION_HEX >= 0x030B0000)
#define CF_PY312_PLUS (PY_VERSION_HEX >= 0x030C0000)

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
#if PY_VERSION_HEX >= 0x030D0000
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

/* Raise `exc` again (steals the reference). */
static inline void
cf_err_restore(PyObject *exc)
{
#if CF_PY312_PLUS
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef(Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* ---- module state ------------------------------------------------------- */

typedef enum {
    CF_PENDING,
    CF_RUNNING,
    CF_CANCELLED,
    CF_CANCELLED_AND_NOTIFIED,
    CF_FINISHED,
    CF_NSTATES
} cf_future_state;

typedef struct {
    PyTypeObject *FutureType;           /* the C base of cfutures.Future */
    PyTypeObject *WaiterType;
    PyTypeObject *AsCompletedType;
    PyTypeObject *ExecutorType;         /* the C base of cfutures.Executor */
    PyTypeObject *MapIteratorType;
    PyTypeObject *WorkQueueType;
    PyTypeObject *ThreadPoolType;       /* the C base of cfutures.ThreadPoolExecutor */
    PyObject *thread_pool_submit_descr; /* ThreadPoolType.submit, to spot overrides */
    PyObject *thread_worker;            /* _cfutures._thread_worker */
    PyObject *threads_queues;           /* WeakKeyDictionary {pool thread: ...}, joined at exit */
    int interpreter_exiting;            /* set by the threading atexit hook */
    int map_cancels_popped;             /* the stdlib has _result_or_cancel (3.10+) */
    struct cf_pool *live_pools;         /* registry of pools (pool.c) */
    PyTypeObject *PoolCoreType;
    PyTypeObject *ProcessPoolType;      /* the C base of cfutures.ProcessPoolExecutor */
    PyObject *process_pool_io;          /* _cfutures._process_pool_io */
    PyObject *BrokenProcessPool;
    PyObject *ExceptionWithTraceback;   /* concurrent.futures.process's */
    PyObject *RemoteTraceback;
    PyObject *format_exception;         /* traceback.format_exception */
    PyObject *pickle_dumps;             /* ForkingPickler.dumps, as multiprocessing */
    PyObject *pickle_loads;             /* pickle.loads */
    PyObject *empty_dict;
    PyObject *public_future_class;      /* cfutures.Future, set by the package */
    PyObject *stdlib_future_class;      /* concurrent.futures.Future */
    PyObject *CancelledError;           /* the stdlib's own classes */
    PyObject *TimeoutError;
    PyObject *InvalidStateError;
    PyObject *BrokenThreadPool;
    PyObject *DoneAndNotDoneFutures;
    PyObject *logger;                   /* logging.getLogger('concurrent.futures') */
    PyObject *threading;                /* the threading module */
    PyObject *str_get_ident;            /* "get_ident", interned */
    PyObject *stdlib_wait;              /* concurrent.futures' wait() and */
    PyObject *stdlib_as_completed;      /* as_completed(), for green threads */
    PyObject *state_names[CF_NSTATES];  /* 'PENDING', ... as in the stdlib */
    PyObject *FIRST_COMPLETED;
    PyObject *FIRST_EXCEPTION;
    PyObject *ALL_COMPLETED;
} cf_state;

extern PyModuleDef cf_module_def;

static inline cf_state *
cf_state_of_module(PyObject *module)
{
    return (cf_state *)PyModule_GetState(module);
}

/* State of the module that defined `type` (or one of its bases).  Borrowed;
 * NULL with an exception set if `type` is not ours. */
static inline cf_state *
cf_state_of_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, &cf_module_def);
    return module == NULL ? NULL : cf_state_of_module(module);
}

/* The stdlib's thread and process modules' names, imported at first use,
 * as the stdlib imports its executors lazily: `import cfutures` costs no
 * more than `import concurrent.futures`.  Idempotent; -1 with an error.
 *   thread:  BrokenThreadPool, threads_queues
 *   process: the thread ones, BrokenProcessPool, ExceptionWithTraceback,
 *            RemoteTraceback, format_exception, pickle_dumps, pickle_loads */
int cf_load_thread_names(cf_state *st);
int cf_load_process_names(cf_state *st);

/* LOGGER.critical(message, exc_info=exc) on the stdlib's logger; exc may be
 * NULL (then exc_info=True).  Never fails: logging errors go to stderr. */
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

/* ---- green threads ------------------------------------------------------ */

/* Has gevent or eventlet monkey-patched threading?  Then "threads" are
 * greenlets sharing one OS thread, and a wait that blocks in C would block
 * them all: waits go through the (patched) Python primitives instead. */
int cf_threads_are_green(cf_state *st);
/* time.sleep(seconds): a cooperative pause when threads are green. */
int cf_green_sleep(double seconds);
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

/* threading.<name> as it is now (patched or not), as the stdlib looks its
 * classes up when it uses them.  New reference. */
PyObject *cf_threading_attr(cf_state *st, const char *name);

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

/* ---- waiting ------------------------------------------------------------ */

/* Park until `p` is unparked or `deadline` passes, with the GIL released;
 * the main thread wakes every 50 ms to run signal handlers.  GIL held on
 * entry and exit.  Returns -1 if a signal handler raised, 0 if the deadline
 * has passed, 1 otherwise (the caller re-checks what it waits for). */
int cf_park_released(cf_parker *p, int64_t deadline);

/* How a wait ended. */
typedef enum {
    CF_WAIT_READY,          /* what it waited for holds */
    CF_WAIT_TIMEOUT,        /* the deadline passed first */
    CF_WAIT_ERROR,          /* an exception is set (Ctrl-C: a signal handler raised) */
} cf_wait_status;

/* Arm -> check -> park, until ready(arg) holds or `deadline` passes.
 * ready() is called with the GIL held and must not call Python; whoever
 * makes it true unparks `p`.  GIL held on entry and exit. */
cf_wait_status cf_wait_until(cf_state *st, cf_parker *p, int (*ready)(void *), void *arg,
                             int64_t deadline);

/* Threads waiting for a condition that a state change under the GIL makes
 * true: the changer calls cf_waitq_wake_all.  Touched with the GIL held. */
typedef struct cf_waitq_node {
    struct cf_waitq_node *prev, *next;
    cf_parker parker;
} cf_waitq_node;

typedef struct {
    cf_waitq_node *head;
} cf_waitq;

cf_wait_status cf_waitq_wait(cf_state *st, cf_waitq *q, int (*ready)(void *), void *arg,
                             int64_t deadline);
void cf_waitq_wake_all(cf_waitq *q);

/* A timeout argument as the stdlib's waits read it: None -> CF_FOREVER,
 * <= 0 or NaN -> already passed; one the stdlib's locks refuse raises what
 * they raise (OverflowError). */
int cf_deadline_from_timeout(PyObject *timeout, int64_t *deadline);

/* `end_time = timeout + time.monotonic()`, as map() and as_completed()
 * compute it at their start (with the stdlib's errors for odd timeouts);
 * then `end_time - time.monotonic()` is what is left at each wait. */
int cf_end_time_from_timeout(PyObject *timeout, double *end_time);
double cf_remaining(double end_time);

/* A deadline `seconds` from now for a wait that must happen (seconds > 0);
 * one the stdlib's locks refuse raises what they raise. */
int cf_deadline_from_seconds(double seconds, int64_t *deadline);

/* How a future ended, as told to the waiters parked on it. */
typedef enum {
    CF_ENDED_RESULT,
    CF_ENDED_EXCEPTION,
    CF_ENDED_CANCELLED,     /* set_running_or_notify_cancel() on a cancelled future */
} cf_ending;

typedef struct cf_waiter cf_waiter;

/* A waiter's hook in one future's list of native waiters.  The future only
 * borrows links; their owner unlinks them before it lets them go. */
typedef struct cf_link {
    struct cf_link *prev;
    struct cf_link *next;
    cf_waiter *waiter;
    PyObject *future;       /* borrowed; NULL when not linked */
} cf_link;

struct cf_waiter {
    cf_parker parker;
    /* result()/exception() also wake on cancel(); wait()/as_completed()
     * only once the cancel is notified, as in the stdlib. */
    int wakes_on_cancel;
    /* Called with the GIL held, outside any lock; must not call Python. */
    void (*notify)(cf_waiter *self, PyObject *future, cf_ending ending);
};

/* ---- the Future --------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *result;           /* NULL reads as None */
    PyObject *exception;        /* NULL reads as None */
    PyObject *callbacks;        /* NULL, or the list behind `_done_callbacks` */
    PyObject *py_waiters;       /* NULL, or the list behind `_waiters` */
    PyObject *condition;        /* NULL until someone asks for `_condition` */
    cf_link *waiters;           /* native waiters parked on this future */
    unsigned char state;        /* cf_future_state */
    unsigned char condition_foreign;    /* `_condition` was set from outside */
} FutureObject;

/* Instances of the public class are by far the most common: test that first. */
#define Future_Check(st, op)                                              \
    ((PyObject *)Py_TYPE(op) == (st)->public_future_class ||              \
     PyObject_TypeCheck((op), (st)->FutureType))

int future_module_init(PyObject *module, cf_state *st);
/* Make `cls` (the package's public Future) the class C code instantiates. */
int future_adopt_public_class(cf_state *st, PyObject *cls);
/* A new pending cfutures.Future. */
PyObject *future_new_public(cf_state *st);

/* The Future's methods, for executors to call on their own futures. */
PyObject *future_cancel(PyObject *future, PyObject *unused);
PyObject *future_set_running_or_notify_cancel(PyObject *future, PyObject *unused);
PyObject *future_set_result(PyObject *future, PyObject *result);
PyObject *future_set_exception(PyObject *future, PyObject *exception);
PyObject *future_result(PyObject *future, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames);
int waiters_module_init(PyObject *module, cf_state *st);

/* Hook `link` (owned by `waiter`) into `future`'s list.  GIL held. */
void future_link_waiter(FutureObject *future, cf_link *link, cf_waiter *waiter);
/* Take `link` out of its future's list if it is still there.  GIL held. */
void future_unlink_waiter(cf_link *link);

/* Is the future done as far as wait()/as_completed() are concerned?
 * (CANCELLED without notification is not, as in the stdlib.) */
static inline int
future_is_finished(FutureObject *f)
{
    return f->state == CF_FINISHED || f->state == CF_CANCELLED_AND_NOTIFIED;
}

/* ---- executors ---------------------------------------------------------- */

int executor_module_init(PyObject *module, cf_state *st);
int tpool_module_init(PyObject *module, cf_state *st);

/* Is `bound` (executor.submit as looked up) the native submit of our
 * ThreadPoolExecutor, bound to `executor`? */
int tpool_is_native_submit(cf_state *st, PyObject *executor, PyObject *bound);
/* executor.submit(fn, *args, **kw) without building a call: args holds the
 * positional then the keyword values, kwnames the keywords (or NULL). */
PyObject *tpool_submit_call(cf_state *st, PyObject *executor, PyObject *fn,
                            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
/* Child side of os.fork(): forget the parent's workers. */
void tpool_after_fork_child(void);

int ppool_module_init(PyObject *module, cf_state *st);
int process_worker_module_init(PyObject *module, cf_state *st);


#endif /* CFUTURES_H */
