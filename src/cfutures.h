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
    PyObject *Thread;                   /* threading.Thread */
    PyObject *DoneAndNotDoneFutures;
    PyObject *logger;                   /* logging.getLogger('concurrent.futures') */
    PyObject *Condition;                /* threading.Condition */
    PyObject *threading;                /* the threading module */
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

/* LOGGER.critical(message, exc_info=exc) on the stdlib's logger; exc may be
 * NULL (then exc_info=True).  Never fails: logging errors go to stderr. */
void cf_log_critical(cf_state *st, const char *message, PyObject *exc);

/* ---- waiting ------------------------------------------------------------ */

/* Park until `p` is unparked or `deadline` passes, with the GIL released;
 * the main thread wakes every 50 ms to run signal handlers.  GIL held on
 * entry and exit.  Returns -1 if a signal handler raised, 0 if the deadline
 * has passed, 1 otherwise (the caller re-checks what it waits for). */
int cf_park_released(cf_parker *p, int64_t deadline);

/* A timeout argument as the stdlib's waits read it: None -> CF_FOREVER,
 * <= 0 -> already passed, too large -> OverflowError. */
int cf_deadline_from_timeout(PyObject *timeout, int64_t *deadline);

/* `end_time = timeout + time.monotonic()`, as map() and as_completed()
 * compute it at their start, with the stdlib's errors for odd timeouts.
 * None -> CF_FOREVER. */
int cf_deadline_from_sum(PyObject *timeout, int64_t *deadline);

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

/* Is `executor` a ThreadPoolExecutor whose submit() is the native one? */
int tpool_has_native_submit(cf_state *st, PyObject *executor);
/* executor.submit(fn, *args, **kw) without building a call: args holds the
 * positional then the keyword values, kwnames the keywords (or NULL). */
PyObject *tpool_submit_call(cf_state *st, PyObject *executor, PyObject *fn,
                            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
/* Child side of os.fork(): forget the parent's workers. */
void tpool_after_fork_child(void);

int ppool_module_init(PyObject *module, cf_state *st);
int process_worker_module_init(PyObject *module, cf_state *st);
/* Interpreter exit: wake every process pool's I/O thread to wind down. */
void ppool_python_exit(void);
void ppool_after_fork_child(void);

#endif /* CFUTURES_H */
