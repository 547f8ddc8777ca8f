/* wait.h — waiting with the GIL released (wait.c): one arm -> check -> park
 * loop for every wait (a future's result(), wait(), as_completed(),
 * shutdown), threads waiting together for a condition, and timeouts read
 * as the stdlib's locks read them.
 */
#ifndef CF_WAIT_H
#define CF_WAIT_H

#include "sync.h"

typedef struct cf_state cf_state;

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

#endif /* CF_WAIT_H */
