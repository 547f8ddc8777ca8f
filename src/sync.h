/* sync.h — the OS primitives the waits are built on (Linux): parkers,
 * the bounded spin, the monotonic clock, main-thread identity.
 *
 * A parker is one word a thread can sleep on until another thread unparks
 * it (a futex).  Before it sleeps a thread may spin briefly (cf_spin, also
 * used on pipes).  It is cheap enough to live in a waiting thread's record,
 * so a future owns no OS object of its own.  Nothing here uses Python.
 * (The process pool's pipes, eventfd and poll are its own, in process_*.c
 * and wire.c.)
 *
 * Deadlines are absolute times on the monotonic clock, in nanoseconds;
 * CF_FOREVER means no deadline.
 */
#ifndef CF_SYNC_H
#define CF_SYNC_H

#include <Python.h>          /* first: it defines _GNU_SOURCE */
#include <stdatomic.h>
#include <stdint.h>

#define CF_FOREVER INT64_MAX

typedef struct {
    /* 0: armed, nobody asleep; 1: unparked; 2: the owner is asleep. */
    _Atomic uint32_t word;
} cf_parker;

void cf_parker_init(cf_parker *p);
void cf_parker_fini(cf_parker *p);

/* Arm the parker again before checking the condition one waits for. */
void cf_parker_arm(cf_parker *p);

/* Wake the owner (or make its next park return at once).  Takes no lock and
 * never calls into Python. */
void cf_parker_unpark(cf_parker *p);

/* Sleep until unparked, or until timeout_ns passed (CF_FOREVER: no limit), or
 * a signal arrived, after a short spin if `may_spin` (cf_spin decides; a
 * wait that already slept once will hardly end in the next microseconds).
 * Returns 1 if unparked, 0 otherwise.  Call it without the GIL. */
int cf_parker_park(cf_parker *p, int64_t timeout_ns, int may_spin);

/* Spin (without the GIL) until ready(arg) is true, for at most `budget_ns`
 * or `timeout_ns`; 1 if it became true.  Skipped on a single CPU, while
 * the machine's runnable threads, the spinner among them, leave fewer than
 * `idle_for_others` of this process's CPUs idle (0: no thread waits for a
 * CPU; 1: the side we wait for may be asleep and will need one to answer),
 * and for a while after a spinning thread was seen descheduled (contended
 * CPUs).  `ready` is called often: make it cheap. */
int cf_spin(int (*ready)(void *), void *arg, int64_t budget_ns, int64_t timeout_ns,
            int idle_for_others);

/* A thread waiting on another process (a result or a task frame): that
 * side's work comes on top of the wake-up, and it may sleep in poll or
 * read until our frame arrives, so it needs a CPU of its own. */
#define CF_SPIN_PIPE_NS (60 * 1000)
#define CF_SPIN_PIPE_IDLE 1

/* Monotonic clock, nanoseconds. */
int64_t cf_monotonic_ns(void);

/* The sooner of two wake-up times, 0 meaning none. */
static inline int64_t
cf_sooner(int64_t deadline, int64_t candidate)
{
    return candidate != 0 && (deadline == 0 || candidate < deadline) ? candidate : deadline;
}

/* poll()'s timeout for waiting until `deadline` (monotonic ns): the
 * milliseconds left, rounded up (never waking early), 0 once it passed,
 * at most INT_MAX. */
int cf_poll_ms_until(int64_t deadline);

/* Convert a timeout in seconds into an absolute deadline.  timeout <= 0
 * (or NaN) gives a deadline that has already passed. */
int64_t cf_deadline_after(double timeout_seconds);

/* A duration in seconds as nanoseconds: 0 for none (<= 0 or NaN), at least
 * 1 for any positive value, capped so that adding it to a monotonic time
 * cannot overflow. */
int64_t cf_seconds_to_ns(double seconds);

/* Is the calling thread the interpreter's main thread?  Only that thread
 * runs signal handlers, so only it needs to wake up periodically. */
int cf_is_main_thread(void);

/* Record which thread is the main thread: threading.main_thread() at import,
 * and the forking thread in the child after fork (it becomes the main one). */
void cf_set_main_thread(unsigned long ident);

#endif /* CF_SYNC_H */
