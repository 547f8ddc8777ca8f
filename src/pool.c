/* pool.c — the pool core: the task list, phase transitions, the registry
 * of live pools, and the errors of a pool that takes no more work.  See
 * pool.h for the phase diagram.  Everything here runs with the GIL held.
 */
#include "pool.h"

#include <assert.h>

/* ---- the task list ------------------------------------------------------ */

void
cf_tasklist_push(cf_tasklist *list, cf_task *task)
{
    task->next = NULL;
    if (list->tail == NULL) {
        list->head = task;
    }
    else {
        list->tail->next = task;
    }
    list->tail = task;
    list->count++;
}

void
cf_tasklist_push_front(cf_tasklist *list, cf_task *task)
{
    task->next = list->head;
    list->head = task;
    if (list->tail == NULL) {
        list->tail = task;
    }
    list->count++;
}

cf_task *
cf_tasklist_pop(cf_tasklist *list)
{
    cf_task *task = list->head;
    if (task != NULL) {
        list->head = task->next;
        if (list->head == NULL) {
            list->tail = NULL;
        }
        list->count--;
        task->next = NULL;
    }
    return task;
}

int
cf_tasklist_remove(cf_tasklist *list, cf_task *task)
{
    cf_task *prev = NULL;
    for (cf_task *t = list->head; t != NULL; prev = t, t = t->next) {
        if (t != task) {
            continue;
        }
        if (prev == NULL) {
            list->head = t->next;
        }
        else {
            prev->next = t->next;
        }
        if (list->tail == t) {
            list->tail = prev;
        }
        list->count--;
        t->next = NULL;
        return 1;
    }
    return 0;
}

/* ---- the pool's phase -------------------------------------------------- */

void
pool_init(cf_state *st, cf_pool *pool, const cf_pool_ops *ops)
{
    pool->phase = POOL_NEW;
    pool->broken = NULL;
    pool->ops = ops;
    pool->registry = &st->live_pools;
    pool->prev_live = NULL;
    pool->next_live = st->live_pools;
    if (st->live_pools != NULL) {
        st->live_pools->prev_live = pool;
    }
    st->live_pools = pool;
}

/* Take `pool` out of the registry if it is there. */
static void
pool_unregister(cf_pool *pool)
{
    if (pool->registry == NULL) {
        return;
    }
    if (pool->prev_live != NULL) {
        pool->prev_live->next_live = pool->next_live;
    }
    else if (*pool->registry == pool) {
        *pool->registry = pool->next_live;
    }
    if (pool->next_live != NULL) {
        pool->next_live->prev_live = pool->prev_live;
    }
    pool->prev_live = pool->next_live = NULL;
    pool->registry = NULL;
}

void
pool_fini(cf_pool *pool)
{
    pool_unregister(pool);
    Py_CLEAR(pool->broken);
}

void
pools_detach(cf_state *st)
{
    cf_pool *pool = st->live_pools;
    while (pool != NULL) {
        cf_pool *next = pool->next_live;
        pool->registry = NULL;
        pool->prev_live = pool->next_live = NULL;
        pool = next;
    }
    st->live_pools = NULL;
}

void
pool_start(cf_pool *pool)
{
    assert(pool->phase == POOL_NEW);
    pool->phase = POOL_RUNNING;
}

void
pool_unstart(cf_pool *pool)
{
    assert(pool->phase == POOL_RUNNING);
    pool->phase = POOL_NEW;
}

void
pool_shut_down(cf_pool *pool)
{
    if (pool->phase == POOL_NEW) {
        pool->phase = POOL_STOPPED;
    }
    else if (pool->phase == POOL_RUNNING) {
        pool->phase = POOL_SHUTTING_DOWN;
    }
}

void
pool_stopped(cf_pool *pool)
{
    assert(pool->phase == POOL_SHUTTING_DOWN);
    pool->phase = POOL_STOPPED;
}

int
pool_break(cf_pool *pool, const char *message)
{
    assert(pool->phase != POOL_STOPPED);
    pool->phase = POOL_BROKEN;
    if (pool->broken == NULL) {
        pool->broken = PyUnicode_FromString(message);
        if (pool->broken == NULL) {
            return -1;
        }
    }
    return 0;
}

int
pool_accepting(cf_state *st, cf_pool *pool)
{
    return (pool->phase == POOL_NEW || pool->phase == POOL_RUNNING) && !st->interpreter_exiting;
}

PyObject *
pool_raise_closed(cf_state *st, cf_pool *pool, PyObject *broken_class)
{
    if (pool->phase == POOL_BROKEN) {
        PyErr_SetObject(broken_class, pool->broken);
    }
    else if (pool->phase == POOL_SHUTTING_DOWN || pool->phase == POOL_STOPPED) {
        PyErr_SetString(PyExc_RuntimeError, "cannot schedule new futures after shutdown");
    }
    else {
        assert(st->interpreter_exiting);
        (void)st;
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after interpreter shutdown");
    }
    return NULL;
}

void
pools_python_exit(cf_state *st)
{
    for (cf_pool *pool = st->live_pools; pool != NULL; pool = pool->next_live) {
        pool->ops->python_exit(pool);
    }
}

void
pools_after_fork_child(cf_state *st)
{
    cf_pool *pool = st->live_pools;
    while (pool != NULL) {
        cf_pool *next = pool->next_live;
        if (!pool->ops->after_fork_child(pool)) {
            pool_unregister(pool);
        }
        pool = next;
    }
}

int
pools_cancel_running(cf_state *st, PyObject *future)
{
    for (cf_pool *pool = st->live_pools; pool != NULL; pool = pool->next_live) {
        if (pool->ops->cancel_running != NULL) {
            int rc = pool->ops->cancel_running(pool, future);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* ---- the threads a pool starts ----------------------------------------- */

enum { TICKET_OPEN, TICKET_CLAIMED, TICKET_ABANDONED };

PyObject *
pool_ticket_new(void)
{
    return Py_BuildValue("[i]", TICKET_OPEN);
}

/* Move the ticket from TICKET_OPEN to `to`: 1 if it was open. */
static int
ticket_settle(PyObject *ticket, long to)
{
    if (PyLong_AsLong(PyList_GET_ITEM(ticket, 0)) != TICKET_OPEN) {
        return 0;
    }
    PyObject *value = PyLong_FromLong(to);
    if (value == NULL) {
        PyErr_Clear();
        value = Py_NewRef(Py_None);     /* settled all the same: not open */
    }
    PyList_SetItem(ticket, 0, value);
    return 1;
}

int
pool_ticket_claim(PyObject *ticket)
{
    return ticket_settle(ticket, TICKET_CLAIMED);
}

int
pool_ticket_abandon(PyObject *ticket)
{
    PyObject *exc = cf_err_take();              /* start()'s error stays */
    int abandoned = ticket_settle(ticket, TICKET_ABANDONED);
    cf_err_restore(exc);
    return abandoned;
}

cf_pool *
pool_of_thread_args(PyObject *args, PyTypeObject *type, const char *function)
{
    PyObject *pool, *ticket;
    if (!PyArg_ParseTuple(args, "O!O!", type, &pool, &PyList_Type, &ticket) ||
        PyList_GET_SIZE(ticket) != 1) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "%s() expects a pool and a ticket", function);
        }
        return NULL;
    }
    return pool_ticket_claim(ticket) ? (cf_pool *)Py_NewRef(pool) : NULL;
}
