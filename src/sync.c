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
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
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

int
cf_poll_ms_until(int64_t deadline)
{
    int64_t left = deadline - cf_monotonic_ns();
    if (left <= 0) {
        return 0;
    }
    int64_t ms = (left + 999999) / 1000000;
    return ms < INT_MAX ? (int)ms : INT_MAX;
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

/* How many CPUs this process may run on (at its first spin). */
static int
usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        return CPU_COUNT(&set);
    }
    return 2;
}

/* A spin takes a CPU for as long as it lasts: it only pays while no other
 * thread waits for one.  With two process workers busy on two CPUs, a
 * parent thread spinning for their results would take CPU time from them,
 * and a yield does not always give it back (a thread that slept long has
 * the scheduler's preference over a busy one).  The kernel counts the
 * runnable threads of the whole machine at every moment: the fourth field
 * of /proc/loadavg ("3/145"), not the load averages, which follow it over
 * minutes.  Reading it costs ~2 us, so a process reads it at most once per
 * CF_RUNNABLE_STALE_NS, and every spinner of the process uses that reading:
 * a spin starts only while the runnable threads (the spinner among them)
 * leave the CPUs this process may use idle enough (cf_spin's
 * idle_for_others).  Without /proc, spins are left to the descheduling
 * back-off below. */
#define CF_RUNNABLE_STALE_NS (1000 * 1000)
static _Atomic int64_t runnable_read_at;
static _Atomic int runnable_seen;

/* The machine's runnable threads now (or -1 if unknown).  Opened and
 * closed each time (at most once a CF_RUNNABLE_STALE_NS): a descriptor kept
 * open would be one more the process holds, and one a fork child's
 * clean-up could close and reuse under it. */
static int
read_runnable(void)
{
    char text[128];
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : pread(fd, text, sizeof(text) - 1, 0);
    if (fd >= 0) {
        close(fd);
    }
    if (n <= 0) {
        return -1;
    }
    text[n] = '\0';
    char *field = text;
    for (int k = 0; k < 3 && field != NULL; k++) {
        field = strchr(field, ' ');
        field = field != NULL ? field + 1 : NULL;
    }
    return field != NULL ? atoi(field) : -1;
}

/* May a spin start at `now` and leave `idle` CPUs to others? */
static int
cpu_to_spare(int64_t now, int cpus, int idle)
{
    int64_t read_at = atomic_load_explicit(&runnable_read_at, memory_order_relaxed);
    if (now - read_at > CF_RUNNABLE_STALE_NS) {
        atomic_store_explicit(&runnable_read_at, now, memory_order_relaxed);
        atomic_store_explicit(&runnable_seen, read_runnable(), memory_order_relaxed);
    }
    int runnable = atomic_load_explicit(&runnable_seen, memory_order_relaxed);
    return runnable < 0 || runnable + idle <= cpus;
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
cf_spin(int (*ready)(void *), void *arg, int64_t budget_ns, int64_t timeout_ns,
        int idle_for_others)
{
    static int cpus = -1;
    if (cpus < 0) {
        cpus = usable_cpus();
    }
    int64_t start = cf_monotonic_ns();
    /* One CPU: the thread we wait for cannot run while we spin. */
    if (cpus < 2 || timeout_ns <= 0 ||
        start < atomic_load_explicit(&spin_blocked_until, memory_order_relaxed) ||
        !cpu_to_spare(start, cpus, idle_for_others)) {
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
cf_parker_park(cf_parker *p, int64_t timeout_ns, int may_spin)
{
    /* Whoever unparks us usually runs already: no CPU to keep for it. */
    if (may_spin && cf_spin(parker_unparked, p, CF_SPIN_NS, timeout_ns, 0)) {
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
