/* process_pool.h — the parent side of ProcessPoolExecutor, shared by its
 * three files: process_pool.c (the executor: submit, shutdown, start,
 * hooks), process_workers.c (worker slots and tasks: dispatch, results,
 * breaking) and process_io.c (the I/O thread).
 *
 * A task is in exactly one place from the moment submit() accepts it until
 * its future is completed or cancelled: the pool's pending list, the hands
 * of one thread that is pickling it (counted in `npickling`), or one
 * worker's list.  The pool stops only when all three are empty; breaking it
 * fails the lists, and a pickler fails its own task when it sees the break.
 * That is the whole of "accepted => completes".
 *
 * Worker slots, one state each (process_workers.c, one function per arrow):
 *
 *   EMPTY ──worker_begin_start──▶ STARTING ──worker_started──▶ IDLE
 *     ▲                              └──worker_start_failed──▶ EMPTY
 *     │    IDLE ──worker_take, worker_append──▶ BUSY ──worker_maybe_idle──▶ IDLE
 *     │    BUSY ──worker_leaving (its last answer: max_tasks_per_child,
 *     │          max_memory_per_child)──▶ LEAVING
 *     │    IDLE ──worker_dismiss (shutdown: EXIT frame)──▶ LEAVING
 *     │    BUSY ──worker_stop_alone (its task timed out or was cancelled
 *     │          while running: SIGTERM, SIGKILL at kill_at)──▶ STOPPING
 *     │    IDLE, BUSY, LEAVING, STOPPING ──worker_ended (end of file on its
 *     │          result pipe)──▶ EXITED if it was LEAVING with nothing in
 *     │          hand or STOPPING, else DEAD (a crash)
 *     │    IDLE, BUSY, LEAVING ──worker_stop (the pool breaks: SIGTERM)──▶ DEAD
 *     └──worker_reap── EXITED, DEAD
 *
 * Only IDLE and BUSY workers take tasks.  A worker is BUSY while it holds a
 * task or a task is being pickled for it (`nreserved`).  A DEAD worker
 * breaks the pool, unless the pool isolates crashes: then only the task it
 * was running fails (WorkerDied) and the slot is refilled.
 *
 * A task the pool may stop (a timeout, cancel_running, isolate_crashes) is
 * alone in its worker: nothing is queued behind it, so stopping the worker
 * stops that task and no other, and the worker reports when it starts it
 * (the timeout's clock starts then).
 */
#ifndef CF_PROCESS_POOL_H
#define CF_PROCESS_POOL_H

#include "cfutures.h"
#include "pool.h"
#include "wire.h"

#include <sys/uio.h>

/* Tasks in flight per worker.  Besides the running one, a worker holds at
 * most about PP_QUEUED_NS of predicted work in its pipe: enough to never
 * idle between short tasks, and to batch writes and reads, while a long task
 * never has much waiting behind it when another worker falls free.  For
 * tiny tasks (~5 us each) the I/O thread's round, ~50-100 us on a busy
 * machine, is what a worker must bridge: 32 (8 before) cut the parent's
 * and the workers' CPU per task by ~15-20% (map of 20k tiny tasks). */
#define PP_DEPTH_MAX 32
#define PP_QUEUED_NS (1000 * 1000)
#define PP_PIPE_SIZE (1 << 20)
#define PP_MAX_IOV 64
/* How long a stopped worker may take to end before it is killed. */
#define PP_TERMINATE_GRACE_S 2.0
/* After Ctrl-C, how long running tasks may take to end before their
 * workers are stopped. */
#define PP_INTERRUPT_GRACE_S 0.5
/* A task ended by KeyboardInterrupt means Ctrl-C reached the process group:
 * the main thread gets this long to act on its own before more work goes
 * to the worker that fell free. */
#define PP_INTERRUPT_HOLD_NS ((int64_t)500 * 1000 * 1000)

typedef struct {
    cf_task link;
    PyObject *future;
    PyObject *call;                 /* (fn, args, kwargs) until pickled */
    PyObject *fn;                   /* the callable, to name it if its worker dies */
    Py_buffer payload;              /* the pickled call, once dispatched */
    int shared;                     /* its big parts are in shared memory (shm.h) */
    int split;                      /* a split call (shm.h) */
    int shm_fd;                     /* their memfd until sent to the worker; -1 */
    int64_t dispatched_at;          /* monotonic ns */
    int64_t timeout_ns;             /* how long it may run; 0: no limit */
    int64_t started_at;             /* monotonic ns of its STARTED frame; 0: not yet */
    unsigned char header[WIRE_HEADER_SIZE];
} pp_task;

typedef enum {
    WORKER_EMPTY,
    WORKER_STARTING,
    WORKER_IDLE,
    WORKER_BUSY,
    WORKER_LEAVING,
    WORKER_STOPPING,
    WORKER_EXITED,
    WORKER_DEAD,
} worker_state;

typedef struct {
    worker_state state;
    unsigned generation;            /* bumped at each start: a slot reused */
    PyObject *process;              /* multiprocessing.Process, from IDLE on */
    int task_fd, result_fd;         /* our ends; -1 when closed */
    int shm_sock;                   /* our end of the socket memfds pass over; -1 */
    cf_tasklist tasks;              /* written or to write, in that order */
    Py_ssize_t nreserved;           /* being pickled for it by some thread */
    Py_ssize_t assigned;            /* tasks ever given (max_tasks_per_child) */
    int64_t last_result_at;         /* monotonic ns of its latest result */
    pp_task *unsent;                /* first task not wholly written, or NULL */
    size_t unsent_offset;           /* bytes of it (header + payload) written */
    int writing;                    /* the I/O thread writes to task_fd, GIL released */
    int64_t kill_at;                /* STOPPING: SIGKILL at this monotonic ns; 0: sent */
    wire_inbox inbox;               /* the I/O thread's partial frame */
} pp_worker;

typedef struct {
    cf_pool base;
    PyObject *spawn;                /* cfutures.process._spawn_worker */
    PyObject *context, *initializer, *initargs;
    Py_ssize_t max_tasks_per_child; /* 0: no limit */
    int64_t task_timeout_ns;        /* task_timeout; 0: none */
    int isolate_crashes;            /* a dead worker fails its task only */
    int cancel_running;             /* cancel() stops a running task */
    Py_ssize_t max_memory;          /* max_memory_per_child in bytes; 0: none */
    PyObject *dumps;                /* pickles calls: ForkingPickler's or cloudpickle's */
    PyObject *worker_died;          /* cfutures.process._worker_died */
    int start_on_demand;            /* not fork: a worker starts when needed */
    pp_worker *workers;
    Py_ssize_t nslots;              /* max_workers */
    cf_tasklist pending;            /* accepted, no worker has them yet */
    Py_ssize_t npickling;           /* tasks some thread is pickling */
    PyObject *processes;            /* {pid: Process}, the stdlib's `_processes` */
    PyObject *io_thread;
    int wake_fd;                    /* eventfd that wakes the I/O thread; -1 before start */
    /* core_wake writes to wake_fd only when the I/O thread sleeps (or is
     * about to): it sets `wake_asked`, then looks at `io_asleep`; the I/O
     * thread sets `io_asleep`, then looks at `wake_asked` before it blocks
     * (both sequentially consistent: one of them sees the other). */
    _Atomic int wake_asked;
    _Atomic int io_asleep;
    int green;                      /* made while threading was monkey-patched */
    Py_ssize_t next_worker;         /* round-robin start for dispatch */
    int64_t mean_task_ns;           /* moving mean service time; -1: none yet */
    int64_t abandon_at;             /* after Ctrl-C: break the pool then; 0: never */
    int64_t hold_until;             /* a task ended by Ctrl-C: no dispatch till then */
} PoolCoreObject;

/* The pool's options make it stop or replace workers on its own. */
static inline int
core_replaces_workers(PoolCoreObject *core)
{
    return core->task_timeout_ns != 0 || core->isolate_crashes || core->cancel_running ||
           core->max_memory != 0 || core->max_tasks_per_child != 0;
}

/* Is `task` one the pool may stop (alone in its worker, start reported)? */
static inline int
task_stoppable(PoolCoreObject *core, int64_t timeout_ns)
{
    return timeout_ns != 0 || core->isolate_crashes || core->cancel_running;
}

extern const char PP_BROKEN_POOL[];
extern const char PP_BROKEN_FUTURE[];

/* ---- process_workers.c -------------------------------------------------- */

/* Free a task no list holds any more. */
void task_free(pp_task *task);

/* The task lists hold pp_tasks (cf_task is their head). */
static inline pp_task *
pp_first(cf_tasklist *list)
{
    return (pp_task *)list->head;
}

static inline pp_task *
pp_next(pp_task *task)
{
    return (pp_task *)task->link.next;
}

static inline pp_task *
pp_pop(cf_tasklist *list)
{
    return (pp_task *)cf_tasklist_pop(list);
}

void core_wake(PoolCoreObject *core);
Py_ssize_t core_count(PoolCoreObject *core, worker_state state);

/* Start a worker in an EMPTY slot, returning with it IDLE (0) or EMPTY again
 * (-1, exception set).  Runs Python code: other threads run meanwhile. */
int worker_start(cf_state *st, PoolCoreObject *core, Py_ssize_t i);
/* Start one more worker if pending work has no worker to go to.  0, or -1
 * with the start's exception. */
int core_start_if_needed(cf_state *st, PoolCoreObject *core);

/* Give pending tasks to workers with room, pickling each in this thread.
 * With `may_raise` (the thread of a submit() call), a BaseException that
 * is not an Exception (Ctrl-C) raised while pickling is returned (-1) for
 * the caller to raise, and its task is cancelled; otherwise every pickling
 * error lands on its future. */
int core_dispatch(cf_state *st, PoolCoreObject *core, int may_raise);
/* Write what fits without blocking, with the GIL held. */
void worker_write_now(PoolCoreObject *core, pp_worker *w);
/* The unsent bytes of `w` as iovecs (at most PP_MAX_IOV). */
int worker_unsent_iov(pp_worker *w, struct iovec *iov);
/* `written` more bytes went out: move the unsent cursor. */
void worker_advance(pp_worker *w, size_t written);

/* An answered task, out of its worker's list, whose future is not yet
 * completed: the I/O thread completes a round's answers after it has given
 * the workers more work, just before it lets go of the GIL, so the thread
 * waiting for them finds the GIL free and the workers are not kept waiting
 * for Python code.  Such a task is in none of the three places, so it is
 * settled before the pool may count itself drained. */
typedef struct {
    pp_task *task;
    PyObject *value;                /* its result or exception */
    int is_error;
} pp_settled;

/* A frame arrived from `w` (payload: malloc'd, freed here): its oldest task
 * started, or its answer.  With `settled` NULL the answer completes its
 * future now; else it goes into `*settled` (1 returned) for task_settle. */
int worker_answered(cf_state *st, PoolCoreObject *core, pp_worker *w, unsigned char *payload,
                    size_t length, uint32_t kind, uint32_t flags, pp_settled *settled);
/* Complete the future of an answered task and free the task. */
void task_settle(pp_settled *settled);
/* Its result pipe reached end of file (after every frame was applied). */
void worker_ended(pp_worker *w);
/* The pool breaks (or a start is undone): SIGTERM, DEAD; worker_reap next. */
void worker_stop(pp_worker *w);
/* Shutdown: tell an IDLE worker to exit and close its task pipe. */
void worker_dismiss(pp_worker *w);
/* process.terminate() or .kill() (`method`); an error (it just ended) is
 * ignored. */
void process_signal(PyObject *process, const char *method);
/* process.join(timeout), `timeout` < 0: no limit.  0 if it ended, 1 if it
 * still runs. */
int process_join(PyObject *process, double timeout);
/* Join an EXITED or DEAD worker's process, close its fds: EMPTY again.
 * `grace` < 0: wait as long as it takes; else terminate, then kill, after
 * that many seconds each. */
void worker_reap(PoolCoreObject *core, pp_worker *w, double grace);

/* The I/O thread, after each round, at `now` (monotonic ns): time out tasks
 * that ran too long, kill STOPPING workers whose grace is over.  The
 * monotonic ns of the next such deadline, or 0 if none. */
int64_t core_enforce_deadlines(cf_state *st, PoolCoreObject *core, int64_t now);
/* Ctrl-C ends the work: no more work, what no worker has is cancelled, and
 * the pool breaks (stopping its workers) `grace` seconds from now unless
 * the running tasks are done by then. */
void core_interrupt(PoolCoreObject *core, double grace);
/* `cancel()` of a running future of this pool (cancel_running): stop the
 * worker running it.  1 if it was cancelled, 0 if the pool does not run
 * it, -1 with an exception. */
int core_cancel_running(cf_state *st, PoolCoreObject *core, PyObject *future);
/* A DEAD worker (a crash): isolate it (fail its task, refill the slot) or
 * break the pool, in either case naming the worker and its task. */
void core_settle_crash(cf_state *st, PoolCoreObject *core, pp_worker *w);

/* A worker died, or the I/O thread failed: fail everything the pool holds,
 * stop every worker (bounded), BROKEN.  `cause` (may be NULL) becomes the
 * __cause__ of the futures' error. */
void core_break(cf_state *st, PoolCoreObject *core, PyObject *cause);
/* Replace workers that left (max_tasks_per_child) while work remains,
 * also during shutdown; start more on demand. */
void core_replace_leavers(cf_state *st, PoolCoreObject *core);
/* Has everything accepted been answered, with nobody pickling or starting? */
int core_drained(PoolCoreObject *core);

/* ---- process_pool.c ----------------------------------------------------- */

/* shutdown(cancel_futures=True): cancel what no worker has yet. */
void core_cancel_pending(PoolCoreObject *core);

/* ---- process_io.c ------------------------------------------------------- */

/* `_cfutures._process_pool_io(core, ticket)`: the body of the pool's I/O
 * thread (pool.h: the ticket). */
PyObject *process_pool_io(PyObject *module, PyObject *args);

#endif /* CF_PROCESS_POOL_H */
