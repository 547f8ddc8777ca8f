/* sync.c — the OS primitives: futex parkers, the bounded spin, the
 * monotonic clock and main-thread identity.  Linux only.
 *
 * Invariants: nothing here calls into Python or needs the GIL (the main
 * thread's identity is a plain thread id).
 * A parker's word moves 0 -> 2 (owner goes to sleep) and {0,2} -> 1 (unpark);
 * the owner re-arms it (-> 0) before it checks what it waits for, so an
 * unpark that lands between the check and the sleep is never lost.
 */
#include "sync.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

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

int64_t
cf_seconds_to_ns(double seconds)
{
    if (!(seconds > 0)) {
        return 0;
    }
    double ns = seconds * 1e9;
    if (ns >= (double)(CF_FOREVER / 4)) {
        return CF_FOREVER / 4;
    }
    return ns < 1 ? 1 : (int64_t)ns;
}

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
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        return CPU_COUNT(&set) > 1;
    }
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
