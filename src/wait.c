/* wait.c — waiting with the GIL released: arm -> check -> park, until a
 * condition holds, a deadline passes or a signal handler raises; threads
 * waiting together for a condition (cf_waitq); timeouts as the stdlib's
 * locks read them.
 *
 * The condition is checked with the GIL held after arming the parker, and
 * whoever makes it true unparks with the GIL held, so no wake-up is lost.
 * The main thread wakes every 50 ms to run signal handlers (Ctrl-C).  With
 * green threads (gevent, eventlet) a wait pauses cooperatively instead.
 */
#include "cfutures.h"

#include <math.h>

/* Main-thread waits wake this often to run signal handlers (Ctrl-C). */
#define CF_SIGNAL_SLICE_NS (50 * 1000 * 1000)

/* How one park ended. */
typedef enum {
    PARK_AWOKE,             /* unparked, or the slice ended: look again */
    PARK_DEADLINE,          /* the deadline had passed */
    PARK_SIGNAL_RAISED,     /* a signal handler raised (Ctrl-C) */
} park_status;

/* Park once with the GIL released, at most until `deadline` (the main
 * thread a slice at a time), then run the signal handlers.  Only the first
 * park of a wait spins: the main thread wakes every slice, and a wait that
 * lasted a slice will hardly end in the next microseconds. */
static park_status
park_released(cf_parker *p, int64_t deadline, int first)
{
    int64_t now = cf_monotonic_ns();
    if (deadline != CF_FOREVER && now >= deadline) {
        return PARK_DEADLINE;
    }
    int64_t slice = deadline == CF_FOREVER ? CF_FOREVER : deadline - now;
    if (cf_is_main_thread() && slice > CF_SIGNAL_SLICE_NS) {
        slice = CF_SIGNAL_SLICE_NS;
    }
    Py_BEGIN_ALLOW_THREADS
    cf_parker_park(p, slice, first);
    Py_END_ALLOW_THREADS
    return PyErr_CheckSignals() < 0 ? PARK_SIGNAL_RAISED : PARK_AWOKE;
}

/* Green threads: poll, pausing cooperatively, ever longer up to 20 ms.
 * Only the rare internal waits come here; the hot ones (a future's
 * result(), a pool's idle workers) have exact green paths of their own. */
static cf_wait_status
wait_until_green(int (*ready)(void *), void *arg, int64_t deadline)
{
    double pause = 0.0005;
    for (;;) {
        if (ready(arg)) {
            return CF_WAIT_READY;
        }
        int64_t now = cf_monotonic_ns();
        if (deadline != CF_FOREVER && now >= deadline) {
            return CF_WAIT_TIMEOUT;
        }
        double left = deadline == CF_FOREVER ? pause : (double)(deadline - now) / 1e9;
        if (cf_green_sleep(left < pause ? left : pause) < 0) {
            return CF_WAIT_ERROR;
        }
        pause = pause * 2 < 0.02 ? pause * 2 : 0.02;
    }
}

cf_wait_status
cf_wait_until(cf_state *st, cf_parker *p, int (*ready)(void *), void *arg, int64_t deadline)
{
    if (cf_threads_are_green(st)) {
        return wait_until_green(ready, arg, deadline);
    }
    for (int first = 1;; first = 0) {
        cf_parker_arm(p);
        if (ready(arg)) {
            return CF_WAIT_READY;
        }
        switch (park_released(p, deadline, first)) {
        case PARK_DEADLINE:
            return CF_WAIT_TIMEOUT;
        case PARK_SIGNAL_RAISED:
            return CF_WAIT_ERROR;
        case PARK_AWOKE:
            break;
        }
    }
}

cf_wait_status
cf_waitq_wait(cf_state *st, cf_waitq *q, int (*ready)(void *), void *arg, int64_t deadline)
{
    /* On the heap: a thread ended by interpreter finalization while it
     * re-takes the GIL must not leave the list pointing into its stack. */
    cf_waitq_node *node = PyMem_Malloc(sizeof(*node));
    if (node == NULL) {
        PyErr_NoMemory();
        return CF_WAIT_ERROR;
    }
    cf_parker_init(&node->parker);
    node->prev = NULL;
    node->next = q->head;
    if (q->head != NULL) {
        q->head->prev = node;
    }
    q->head = node;
    cf_wait_status status = cf_wait_until(st, &node->parker, ready, arg, deadline);
    if (node->prev != NULL) {
        node->prev->next = node->next;
    }
    else {
        q->head = node->next;
    }
    if (node->next != NULL) {
        node->next->prev = node->prev;
    }
    cf_parker_fini(&node->parker);
    PyMem_Free(node);
    return status;
}

void
cf_waitq_wake_all(cf_waitq *q)
{
    for (cf_waitq_node *node = q->head; node != NULL; node = node->next) {
        cf_parker_unpark(&node->parker);
    }
}

/* A wait of `seconds` that the stdlib's lock would refuse: raise what
 * `lock.acquire(True, seconds)` raises (its text differs between versions
 * and with the size), by asking a fresh lock.  0 if it accepts after all. */
static int
raise_if_lock_refuses(PyObject *seconds)
{
    PyObject *thread = PyImport_ImportModule("_thread");
    PyObject *lock = thread ? PyObject_CallMethod(thread, "allocate_lock", NULL) : NULL;
    PyObject *acquired = lock ? PyObject_CallMethod(lock, "acquire", "OO", Py_True, seconds)
                              : NULL;
    Py_XDECREF(thread);
    Py_XDECREF(lock);
    if (acquired == NULL) {
        return -1;
    }
    Py_DECREF(acquired);
    return 0;
}

/* Seconds too many for the stdlib's locks (threading.TIMEOUT_MAX). */
static int
beyond_timeout_max(double seconds)
{
    return seconds > (double)PY_TIMEOUT_MAX / 1e6;
}

int
cf_deadline_from_timeout(PyObject *timeout, int64_t *deadline)
{
    if (timeout == NULL || timeout == Py_None) {
        *deadline = CF_FOREVER;
        return 0;
    }
    /* `timeout > 0` first, as threading.Condition.wait does: it gives the
     * stdlib's TypeError for a non-number and treats NaN like 0. */
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        return -1;
    }
    int positive = PyObject_RichCompareBool(timeout, zero, Py_GT);
    Py_DECREF(zero);
    if (positive < 0) {
        return -1;
    }
    if (!positive) {
        *deadline = cf_monotonic_ns() - 1;
        return 0;
    }
    double seconds = PyFloat_AsDouble(timeout);
    if (seconds == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();                      /* an int beyond any double */
        seconds = HUGE_VAL;
    }
    if (beyond_timeout_max(seconds) && raise_if_lock_refuses(timeout) < 0) {
        return -1;
    }
    *deadline = cf_deadline_after(seconds);
    return 0;
}

int
cf_end_time_from_timeout(PyObject *timeout, double *end_time)
{
    PyObject *now = PyFloat_FromDouble((double)cf_monotonic_ns() / 1e9);
    PyObject *end = now == NULL ? NULL : PyNumber_Add(timeout, now);
    Py_XDECREF(now);
    double seconds = end == NULL ? -1.0 : PyFloat_AsDouble(end);
    Py_XDECREF(end);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *end_time = seconds;
    return 0;
}

double
cf_remaining(double end_time)
{
    return end_time - (double)cf_monotonic_ns() / 1e9;
}

int
cf_deadline_from_seconds(double seconds, int64_t *deadline)
{
    if (beyond_timeout_max(seconds)) {
        PyObject *value = PyFloat_FromDouble(seconds);
        int refused = value == NULL ? -1 : raise_if_lock_refuses(value);
        Py_XDECREF(value);
        if (refused < 0) {
            return -1;
        }
    }
    *deadline = cf_deadline_after(seconds);
    return 0;
}
