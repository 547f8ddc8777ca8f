/* pool.h — the core both pools share: the task list, and, embedded at the
 * head of each pool's object, the pool's phase, its place in the module's
 * registry of live pools, and the errors of a pool that takes no more work.
 *
 * Phases and their transitions (pool.c, one function each):
 *
 *     NEW ──pool_start──▶ RUNNING ──pool_shut_down──▶ SHUTTING_DOWN ──pool_stopped──▶ STOPPED
 *      ▲ └──pool_shut_down──▶ STOPPED
 *      └──pool_unstart── RUNNING          RUNNING, SHUTTING_DOWN ──pool_break──▶ BROKEN
 *
 * NEW and RUNNING take work; SHUTTING_DOWN finishes what was accepted;
 * STOPPED and BROKEN are final.  A pool is RUNNING once its first workers
 * started, before the threads that serve them (which may break it) run;
 * if one of those cannot start, pool_unstart makes it NEW again for the
 * next submit to retry.  Everything here changes with the GIL held.
 */
#ifndef CF_POOL_H
#define CF_POOL_H

#include "cfutures.h"

/* ---- the task list ------------------------------------------------------ */

/* The head of every pool's task struct: a FIFO of tasks is a singly linked
 * list through it.  Touched with the GIL held. */
typedef struct cf_task {
    struct cf_task *next;
} cf_task;

typedef struct {
    cf_task *head, *tail;
    Py_ssize_t count;
} cf_tasklist;

void cf_tasklist_push(cf_tasklist *list, cf_task *task);
void cf_tasklist_push_front(cf_tasklist *list, cf_task *task);
/* The oldest task, or NULL. */
cf_task *cf_tasklist_pop(cf_tasklist *list);
/* Take `task` out if it is there; 1 if it was. */
int cf_tasklist_remove(cf_tasklist *list, cf_task *task);

/* ---- the pool's phase -------------------------------------------------- */

typedef enum {
    POOL_NEW,               /* made; no worker started yet */
    POOL_RUNNING,           /* takes work */
    POOL_SHUTTING_DOWN,     /* takes no work; finishes what it accepted */
    POOL_STOPPED,           /* all it accepted is done; its workers are gone */
    POOL_BROKEN,            /* takes no work; what it held has failed */
} pool_phase;

typedef struct cf_pool cf_pool;

/* What the module's interpreter-exit and fork hooks ask of each pool. */
typedef struct {
    /* Interpreter exit: no new work (st->interpreter_exiting is set); wind
     * down after the accepted work.  Must not block. */
    void (*python_exit)(cf_pool *pool);
    /* In the child of os.fork(): the parent's workers and threads do not
     * exist here.  Returns 1 to stay registered (the child may use the
     * pool), 0 to be forgotten. */
    int (*after_fork_child)(cf_pool *pool);
    /* cancel() of a RUNNING future marked stoppable: stop it if this pool
     * runs it.  1 if it did (the future is cancelled), 0 if the pool does
     * not run it, -1 with an exception.  NULL: the pool never stops tasks. */
    int (*cancel_running)(cf_pool *pool, PyObject *future);
} cf_pool_ops;

struct cf_pool {
    PyObject_HEAD
    pool_phase phase;
    PyObject *broken;               /* BROKEN: the message of later errors */
    const cf_pool_ops *ops;
    /* The module state's registry (NULL once the module let go of it, at
     * its teardown: a pool may outlive the module's state then, and must
     * not touch it). */
    cf_pool **registry;
    cf_pool *prev_live, *next_live;
};

/* Set up the head of a freshly allocated pool and register it. */
void pool_init(cf_state *st, cf_pool *pool, const cf_pool_ops *ops);
/* Unregister (from tp_dealloc) and drop the message. */
void pool_fini(cf_pool *pool);
/* The module's teardown: every pool forgets the registry. */
void pools_detach(cf_state *st);

void pool_start(cf_pool *pool);
void pool_unstart(cf_pool *pool);
/* No more work: NEW -> STOPPED, RUNNING -> SHUTTING_DOWN; else nothing. */
void pool_shut_down(cf_pool *pool);
void pool_stopped(cf_pool *pool);
/* -> BROKEN with `message` for later submits (the first message stays).
 * 0, or -1 with an exception if the message could not be made. */
int pool_break(cf_pool *pool, const char *message);

/* Does the pool take new work? */
int pool_accepting(cf_state *st, cf_pool *pool);
/* The stdlib's error for a submit the pool refuses: `broken_class(message)`
 * when broken, else RuntimeError "cannot schedule new futures after
 * [interpreter] shutdown".  Always returns NULL. */
PyObject *pool_raise_closed(cf_state *st, cf_pool *pool, PyObject *broken_class);

/* The docstrings both executors' submit() and shutdown() share. */
#define POOL_SUBMIT_DOC(where)                                                 \
    "submit($self, fn, /, *args, **kwargs)\n--\n\n"                            \
    "Submits a callable to be executed with the given arguments.\n\n"         \
    "Schedules the callable to be executed as fn(*args, **kwargs) " where "\n" \
    "and returns a Future instance representing the execution of the\n"       \
    "callable.\n\n"                                                            \
    "Returns:\n"                                                               \
    "    A Future representing the given call."
#define POOL_SHUTDOWN_DOC                                                      \
    "shutdown($self, /, wait=True, *, cancel_futures=False)\n--\n\n"          \
    "Clean-up the resources associated with the Executor.\n\n"                \
    "It is safe to call this method several times.  Otherwise, no other\n"    \
    "methods can be called after this one.\n\n"                               \
    "Args:\n"                                                                  \
    "    wait: If True then shutdown will not return until all running\n"     \
    "        futures have finished executing and the resources used by the\n" \
    "        executor have been reclaimed.\n"                                  \
    "    cancel_futures: If True then shutdown will cancel all pending\n"     \
    "        futures.  Futures that are completed or running will not be\n"   \
    "        cancelled."

/* ---- the threads a pool starts ----------------------------------------- */

/* threading.Thread.start() may raise (Ctrl-C in its wait) after the thread
 * was created.  A ticket, made by the starter and handed to the thread,
 * settles who owns the start: the thread claims it when it begins; a
 * starter whose start() raised abandons it — unless the thread claimed it
 * already, in which case the thread runs and the starter keeps it.  A
 * thread that finds its ticket abandoned ends at once, touching nothing. */
PyObject *pool_ticket_new(void);
/* The thread: 1 if it now owns its start, 0 if the starter gave up. */
int pool_ticket_claim(PyObject *ticket);
/* The starter, after start() raised: 1 if the thread never claimed it (it
 * will not run), 0 if it did (it runs). */
int pool_ticket_abandon(PyObject *ticket);

/* The body of a pool's thread gets `(pool, ticket)` as its arguments: check
 * the pool is one of `type`, claim the ticket.  A new reference to the
 * pool; NULL with a TypeError, or NULL and no error when the ticket was
 * abandoned (the thread ends at once). */
cf_pool *pool_of_thread_args(PyObject *args, PyTypeObject *type, const char *function);

/* The module's hooks: every live pool in turn. */
void pools_python_exit(cf_state *st);
void pools_after_fork_child(cf_state *st);
/* Ask the pools in turn to stop the running `future` (see cancel_running):
 * 1 if one did, 0 if none runs it, -1 with an exception. */
int pools_cancel_running(cf_state *st, PyObject *future);

#endif /* CF_POOL_H */
