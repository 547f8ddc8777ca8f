/* cfutures.h — the module state and the declarations the C files share:
 * the Future's struct and its waiter protocol, and each file's entry points.
 * What every file may use is in runtime.h (shims, helpers), sync.h (OS
 * primitives) and wait.h (waiting with the GIL released).
 */
#ifndef CFUTURES_H
#define CFUTURES_H

#include "runtime.h"
#include "sync.h"
#include "wait.h"

/* ---- module state ------------------------------------------------------- */

typedef enum {
    CF_PENDING,
    CF_RUNNING,
    CF_CANCELLED,
    CF_CANCELLED_AND_NOTIFIED,
    CF_FINISHED,
    CF_NSTATES
} cf_future_state;

struct cf_state {
    PyTypeObject *FutureType;           /* the C base of cfutures.Future */
    PyTypeObject *WaiterType;
    PyTypeObject *AsCompletedType;
    PyTypeObject *ExecutorType;         /* the C base of cfutures.Executor */
    PyTypeObject *MapIteratorType;
    PyTypeObject *WorkQueueType;
    PyTypeObject *ThreadPoolType;       /* the C base of cfutures.ThreadPoolExecutor */
    PyObject *thread_worker;            /* _cfutures._thread_worker */
    PyObject *threads_queues;           /* WeakKeyDictionary {pool thread: ...}, joined at exit */
    int interpreter_exiting;            /* set by the threading atexit hook */
    int exit_interrupted;               /* ... for an uncaught KeyboardInterrupt */
    int map_cancels_popped;             /* the stdlib has _result_or_cancel (3.10+) */
    struct cf_pool *live_pools;         /* registry of pools (pool.c) */
    PyTypeObject *PoolCoreType;
    PyTypeObject *ProcessPoolType;      /* the C base of cfutures.ProcessPoolExecutor */
    PyObject *process_pool_io;          /* _cfutures._process_pool_io */
    PyObject *BrokenProcessPool;
    PyObject *ExceptionWithTraceback;   /* concurrent.futures.process's */
    PyObject *RemoteTraceback;
    PyObject *format_exception;         /* traceback.format_exception */
    PyObject *pickle_dumps;             /* cfutures.process._forking_dumps */
    PyObject *pickle_loads;             /* pickle.loads */
    /* shm.c's choice of pickler: pickle.dumps for what ForkingPickler
     * pickles alike, checked against ForkingPickler's class as loaded. */
    PyObject *plain_dumps;              /* _pickle.dumps */
    PyObject *ForkingPickler;           /* multiprocessing.reduction's */
    PyObject *CPickler;                 /* _pickle.Pickler, its base */
    PyObject *forking_names;            /* ('__init__', '_extra_reducers', '_copyreg_dispatch_table') */
    PyObject *forking_values;           /* ... their values in its class dict at load */
    Py_ssize_t forking_dict_size;       /* the size of that dict at load */
    PyObject *builtin_import;           /* builtins.__import__ at load */
    PyObject *extension_registry;       /* copyreg._extension_registry */
    PyObject *split_pickles;            /* parent: {function: (its pickle, module
                                         * name, qualname, module)} (shm.c) */
    PyObject *split_callables;          /* worker: {function pickle: (function,
                                         * module name, qualname, module)} */
    PyTypeObject *SharedMappingType;    /* shm.c: a received memfd, mapped */
    struct shm_cache *shm_cache;        /* shm.c: segments kept for reuse */
    PyObject *pickle_protocol;          /* 5 */
    PyObject *kwnames_buffer_callback;  /* ("buffer_callback",) */
    PyObject *kwnames_buffers;          /* ("buffers",) */
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
    PyObject *str_dot;                  /* ".", interned */
    PyObject *stdlib_wait;              /* concurrent.futures' wait() and */
    PyObject *stdlib_as_completed;      /* as_completed(), for green threads */
    PyObject *state_names[CF_NSTATES];  /* 'PENDING', ... as in the stdlib */
    PyObject *FIRST_COMPLETED;
    PyObject *FIRST_EXCEPTION;
    PyObject *ALL_COMPLETED;
};

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
    /* Its pool may stop it while it runs (ProcessPoolExecutor's
     * cancel_running): cancel() of the RUNNING future asks the pools. */
    unsigned char stoppable;
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
/* RUNNING -> CANCELLED_AND_NOTIFIED, for a pool that stopped the task: the
 * waiters wake and the callbacks run.  1, 0 if the future was not RUNNING
 * (left alone), -1 with an exception. */
int future_cancel_running(PyObject *future);
PyObject *future_set_running_or_notify_cancel(PyObject *future, PyObject *unused);
PyObject *future_set_result(PyObject *future, PyObject *result);
PyObject *future_set_exception(PyObject *future, PyObject *exception);
PyObject *future_result(PyObject *future, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames);

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

int ppool_module_init(PyObject *module, cf_state *st);
int process_worker_module_init(PyObject *module, cf_state *st);


#endif /* CFUTURES_H */
