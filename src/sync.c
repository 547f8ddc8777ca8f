/* sync.c — parkers, the monotonic clock and main-thread identity.
 *
 * Invariants: nothing here calls into Python or needs the GIL, except
 * cf_is_main_thread/cf_set_main_thread which only read the thread id.
 * A parker's word moves 0 -> 2 (owner goes to sleep) and {0,2} -> 1 (unpark);
 * the owner re-arms it (-> 0) before it checks what it waits for, so an
 * unpark that lands between the check and the sleep is never lost.
 */
#include <Python.h>          /* first: it defines _GNU_SOURCE, which syscall() needs */
#include "pythread.h"

#include <errno.h>
#include <sched.h>
#include <math.h>
#include <time.h>

#include "cfutures.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

static unsigned long main_thread_ident;

void
cf_set_main_thread(unsigned long ident)
{
    main_thread_ident = ident;
}

int
cf_is_main_thread(void)
{
    return PyThread_get_thread_ident() == main_thread_ident;
}

int64_t
cf_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
cf_deadline_after(double timeout_seconds)
{
    int64_t now = cf_monotonic_ns();
    if (!(timeout_seconds > 0)) {
        return now - 1;
    }
    double ns = timeout_seconds * 1e9;
    if (ns >= (double)(CF_FOREVER - now)) {
        return CF_FOREVER;
    }
    return now + (int64_t)ns;
}

#ifdef __linux__

static long
futex(_Atomic uint32_t *word, int op, uint32_t value, const struct timespec *timeout)
{
    return syscall(SYS_futex, (uint32_t *)word, op, value, timeout, NULL, 0);
}

void
cf_parker_init(cf_parker *p)
{
    atomic_init(&p->word, 0);
}

void
cf_parker_fini(cf_parker *p)
{
    (void)p;
}

void
cf_parker_arm(cf_parker *p)
{
    atomic_store(&p->word, 0);
}

void
cf_parker_unpark(cf_parker *p)
{
    /* The system call is only needed when the owner is actually asleep. */
    if (atomic_exchange(&p->word, 1) == 2) {
        futex(&p->word, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
}

/* How long a parker spins before it sleeps.  A wake-up from another CPU
 * costs ~20 us through the kernel here; a hand-off seen while spinning costs
 * well under one.  Bounded, so a long wait burns almost nothing. */
#define CF_SPIN_NS (20 * 1000)

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spinning only pays when the thread that will unpark us can run on another
 * CPU at the same time. */
static int
may_use_several_cpus(void)
{
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        return CPU_COUNT(&set) > 1;
    }
#endif
    return 1;
}

/* A burst of pauses or a sched_yield() that took this long means another
 * thread had our CPU: the CPUs are contended.  Then a spin rarely pays, and
 * it costs the partner thread the scheduler's wake-up preference — a whole
 * time slice behind whatever else runs.  So after seeing that, no parker
 * spins for CF_SPIN_BACKOFF_NS; one detection per window is the price. */
#define CF_DESCHEDULED_NS (50 * 1000)
#define CF_SPIN_BACKOFF_NS (200 * 1000 * 1000)
static _Atomic int64_t spin_blocked_until;

static int
descheduled(int64_t before, int64_t after)
{
    if (after - before <= CF_DESCHEDULED_NS) {
        return 0;
    }
    atomic_store_explicit(&spin_blocked_until, after + CF_SPIN_BACKOFF_NS, memory_order_relaxed);
    return 1;
}

int
cf_spin(int (*ready)(void *), void *arg, int64_t budget_ns, int64_t timeout_ns)
{
    static int spin_allowed = -1;
    if (spin_allowed < 0) {
        spin_allowed = may_use_several_cpus();
    }
    int64_t start = cf_monotonic_ns();
    if (!spin_allowed || timeout_ns <= 0 ||
        start < atomic_load_explicit(&spin_blocked_until, memory_order_relaxed)) {
        return 0;
    }
    int64_t limit = timeout_ns < budget_ns ? timeout_ns : budget_ns;
    int64_t last = start;
    for (;;) {
        for (int i = 0; i < 32; i++) {
            if (ready(arg)) {
                return 1;
            }
            cpu_relax();
        }
        int64_t now = cf_monotonic_ns();
        if (descheduled(last, now) || now - start >= limit) {
            return 0;
        }
        sched_yield();
        last = cf_monotonic_ns();
        if (descheduled(now, last)) {
            return 0;
        }
    }
}

static int
parker_unparked(void *arg)
{
    return atomic_load_explicit(&((cf_parker *)arg)->word, memory_order_acquire) == 1;
}

int
cf_parker_park(cf_parker *p, int64_t timeout_ns)
{
    if (cf_spin(parker_unparked, p, CF_SPIN_NS, timeout_ns)) {
        return 1;
    }
    uint32_t expected = 0;
    if (!atomic_compare_exchange_strong(&p->word, &expected, 2)) {
        return 1;                       /* unparked before we slept */
    }
    struct timespec ts, *tsp = NULL;
    if (timeout_ns != CF_FOREVER) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    /* One sleep only: the caller re-checks its condition and its deadline, so
     * EINTR, a timeout and a spurious wake all simply return. */
    futex(&p->word, FUTEX_WAIT_PRIVATE, 2, tsp);
    expected = 2;
    if (atomic_compare_exchange_strong(&p->word, &expected, 0)) {
        return 0;                       /* nobody unparked us */
    }
    return 1;
}

#else /* portable fallback: mutex + condition variable */

void
cf_parker_init(cf_parker *p)
{
    atomic_init(&p->word, 0);
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->cond, NULL);
}

void
cf_parker_fini(cf_parker *p)
{
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mutex);
}

void
cf_parker_arm(cf_parker *p)
{
    atomic_store(&p->word, 0);
}

void
cf_parker_unpark(cf_parker *p)
{
    pthread_mutex_lock(&p->mutex);
    atomic_store(&p->word, 1);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mutex);
}

int
cf_parker_park(cf_parker *p, int64_t timeout_ns)
{
    int woken;
    pthread_mutex_lock(&p->mutex);
    if (atomic_load(&p->word) != 1) {
        if (timeout_ns == CF_FOREVER) {
            pthread_cond_wait(&p->cond, &p->mutex);
        }
        else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t end = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + timeout_ns;
            ts.tv_sec = (time_t)(end / 1000000000);
            ts.tv_nsec = (long)(end % 1000000000);
            pthread_cond_timedwait(&p->cond, &p->mutex, &ts);
        }
    }
    woken = atomic_load(&p->word) == 1;
    pthread_mutex_unlock(&p->mutex);
    return woken;
}

#endif

/* ---- parking with the GIL released ---------------------------------- */

/* Main-thread waits wake this often to run signal handlers (Ctrl-C). */
#define CF_SIGNAL_SLICE_NS (50 * 1000 * 1000)

int
cf_park_released(cf_parker *p, int64_t deadline)
{
    int64_t now = cf_monotonic_ns();
    if (deadline != CF_FOREVER && now >= deadline) {
        return 0;
    }
    int64_t slice = deadline == CF_FOREVER ? CF_FOREVER : deadline - now;
    if (cf_is_main_thread() && slice > CF_SIGNAL_SLICE_NS) {
        slice = CF_SIGNAL_SLICE_NS;
    }
    Py_BEGIN_ALLOW_THREADS
    cf_parker_park(p, slice);
    Py_END_ALLOW_THREADS
    if (PyErr_CheckSignals() < 0) {
        return -1;
    }
    return 1;
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
    int timed_out = 0;
    for (;;) {
        cf_parker_arm(p);
        if (ready(arg)) {
            return CF_WAIT_READY;
        }
        if (timed_out) {
            return CF_WAIT_TIMEOUT;
        }
        int parked = cf_park_released(p, deadline);
        if (parked < 0) {
            return CF_WAIT_ERROR;
        }
        timed_out = parked == 0;
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
