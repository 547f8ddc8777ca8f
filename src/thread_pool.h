/* thread_pool.h — ThreadPoolExecutor's native part, shared by its two
 * files: thread_worker.c (the work queue and the worker loop) and
 * thread_pool.c (the executor: arguments, submit, shutdown, attributes).
 *
 * A WorkQueue is the pool core (pool.h) of one executor, shared with its
 * worker threads; workers hold a reference to it, not to the executor, so
 * an executor dropped without shutdown() is collected, and its workers then
 * drain the queue and exit.
 *
 * The pool's phases (pool.h): NEW until the first worker is reserved;
 * RUNNING; SHUTTING_DOWN after shutdown(), the executor's collection, or a
 * worker leaving at interpreter exit (as the stdlib's leaving workers set
 * `_shutdown`); STOPPED once the last worker left; BROKEN when an
 * initializer failed.
 *
 * Invariants:
 *   - The queue, the idle-worker stack and the counters change only with
 *     the GIL held: the GIL is the lock, so there is no internal mutex,
 *     nothing to re-initialise after fork, and no lock-order question.
 *   - A worker waits with the GIL released, parked on its own parker, after
 *     pushing itself on the idle stack; submit() pops one idle worker and
 *     unparks it.  A worker that is awake (running, or waiting for the GIL)
 *     is never woken again, so a burst of submits costs no system calls.
 *   - A task is a C struct holding fn, the argument vector and the future:
 *     no Python object is made per task beyond the Future (and, with
 *     copy_context=True, the copy of the submitter's context).
 *   - submit() accepts a task, and reserves a new worker for it, in one GIL
 *     hold without calling Python: shutdown(wait=True) waits for reserved
 *     workers to be in `_threads`, then joins them all, so it returns only
 *     after every accepted task has run.
 */
#ifndef CF_THREAD_POOL_H
#define CF_THREAD_POOL_H

#include "cfutures.h"
#include "pool.h"

typedef struct {
    cf_task link;
    PyObject *future;
    PyObject *context;          /* NULL, or the copy of the submitter's contextvars
                                 * context the call runs in (copy_context=True) */
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

typedef struct {
    cf_pool base;
    cf_tasklist tasks;
    tpool_worker *idle;             /* stack of parked workers */
    Py_ssize_t nworkers;            /* worker threads alive or reserved */
    Py_ssize_t nstarting;           /* reserved by a submit, not yet in `_threads` */
    cf_waitq none_starting;         /* shutdown(wait=True) waits for nstarting == 0 */
    int green;                      /* made while threading was monkey-patched */
    PyObject *initializer;          /* NULL or callable */
    PyObject *initargs;
} WorkQueueObject;

/* ---- thread_worker.c ---------------------------------------------------- */

tpool_task *tpool_task_new(PyObject *future, PyObject *fn, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
void tpool_task_free(tpool_task *task);

WorkQueueObject *queue_new(cf_state *st, PyObject *initializer, PyObject *initargs);
/* Accept a task: the pool must take work (pool_accepting). */
void queue_push(WorkQueueObject *q, tpool_task *task);
/* Wake one parked worker; 0 if none is parked. */
int queue_wake_one(WorkQueueObject *q);
void queue_wake_all(WorkQueueObject *q);
/* Cancel the queued tasks' futures (shutdown(cancel_futures=True)). */
void queue_cancel_all(WorkQueueObject *q);
/* A reserved worker did not start, or one started is now in `_threads`. */
void queue_worker_not_started(WorkQueueObject *q);
void queue_worker_registered(WorkQueueObject *q);
/* shutdown(wait=True): wait until no reserved worker is still starting. */
int queue_wait_none_starting(cf_state *st, WorkQueueObject *q);

/* `_cfutures._thread_worker(queue, ticket)`: the body of every worker
 * thread (pool.h: the ticket). */
PyObject *thread_worker(PyObject *module, PyObject *args);

int tpool_worker_module_init(PyObject *module, cf_state *st);

#endif /* CF_THREAD_POOL_H */
