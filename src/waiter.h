/* waiter.h — the Waiter (waiter.c), shared by wait() (futures_wait.c) and
 * the as_completed iterator (as_completed.c).
 *
 * One Waiter serves one wait() call or one as_completed iterator.  It
 * hears about futures finishing in three ways, one per kind of future:
 *   - cfutures futures: a cf_link in the future's native list; the future
 *     calls the waiter's notify() in C.  A linked link owns a reference to
 *     its future, which moves into the finished queue on notification.
 *   - concurrent.futures futures: the stdlib's own protocol — under
 *     `f._condition`, check `f._state`, append the waiter to `f._waiters`;
 *     the future then calls add_result/add_exception/add_cancelled.
 *   - anything else with the Future API: f.add_done_callback(waiter).
 * Every path ends in waiter_finished(), with the GIL held, so the counters
 * and the queue need no lock of their own; the waiting thread re-checks
 * them under the GIL after arming its parker, so no wake-up is lost.
 *
 * As in the stdlib, a future that is CANCELLED but not yet notified
 * (set_running_or_notify_cancel) is not finished for these functions.
 *
 * MODE_AS_DONE serves Executor.map(ordered=False) (executor.c): a future
 * queues up as soon as it is done -- cancel() included, as result() sees it
 * -- and every kind of future other than ours is heard through
 * add_done_callback.  Registering may go on while futures are popped, as
 * long as at most `capacity` are registered and not yet popped: the slots
 * of the links of futures that finished are reused.
 */
#ifndef CF_WAITER_H
#define CF_WAITER_H

#include "cfutures.h"

typedef enum {
    MODE_FIRST_COMPLETED,
    MODE_FIRST_EXCEPTION,
    MODE_ALL_COMPLETED,
    MODE_AS_COMPLETED,
    MODE_AS_DONE,
} wait_mode;

typedef struct {
    PyObject_HEAD
    cf_waiter base;
    wait_mode mode;
    int closed;
    int exception_seen;
    Py_ssize_t pending;         /* registered futures that have not finished */
    /* Finished futures in finishing order (strong references), with room
     * for all: every registered future finishes at most once. */
    cf_ring finished;
    cf_link *links;             /* one per registered cfutures future */
    Py_ssize_t nlinks, capacity;
    Py_ssize_t next_free;       /* where to look for a free link once all were used */
    PyObject *protocol_futures; /* set of stdlib futures we sit in `_waiters` of */
} WaiterObject;

/* A Waiter for `capacity` futures.  New reference. */
WaiterObject *waiter_new(cf_state *st, wait_mode mode, Py_ssize_t capacity);
/* Make sure `w` hears when `future` finishes (one already finished goes
 * straight into the queue).  -1 with an error. */
int waiter_register(cf_state *st, WaiterObject *w, PyObject *future);
/* Has the waiter seen what its mode waits for? */
int waiter_satisfied(WaiterObject *w);
/* Block until satisfied or `deadline` passes.  -1 with an error. */
int waiter_block(cf_state *st, WaiterObject *w, int64_t deadline);
/* Oldest finished future (new reference), or NULL if none. */
PyObject *waiter_pop_finished(WaiterObject *w);
/* A future handed out leaves the stdlib protocol at once, as in the stdlib. */
int waiter_release_yielded(WaiterObject *w, PyObject *future);
/* Unhook from every future (idempotent); the queue stays readable.  -1 if
 * leaving a stdlib future failed (the teardown still completes). */
int waiter_close(WaiterObject *w);

/* Is `future` (any kind) finished in the sense of wait()/as_completed()? */
int future_like_finished(cf_state *st, PyObject *future);
/* Does this done future count as "raised" for FIRST_EXCEPTION? */
int future_like_raised(cf_state *st, PyObject *future);

int waiter_type_init(PyObject *module, cf_state *st);

/* The module's wait() (futures_wait.c) and as_completed() (as_completed.c). */
PyObject *futures_wait(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *futures_as_completed(PyObject *module, PyObject *args, PyObject *kwargs);
int as_completed_type_init(PyObject *module, cf_state *st);

#endif /* CF_WAITER_H */
