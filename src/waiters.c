/* waiters.c — wait() and the as_completed iterator.
 *
 * One Waiter object serves one wait() call or one as_completed iterator.  It
 * hears about futures finishing in three ways, one per kind of future:
 *   - cfutures futures: a cf_link in the future's native list; the future
 *     calls waiter_notify() in C.  A linked link owns a reference to its
 *     future, which moves into the finished queue on notification.
 *   - concurrent.futures futures: the stdlib's own protocol — under
 *     `f._condition`, check `f._state`, append the waiter to `f._waiters`;
 *     the future then calls add_result/add_exception/add_cancelled.
 *   - anything else with the Future API: f.add_done_callback(waiter).
 * Every path ends in waiter_finished(), with the GIL held, so the counters and
 * the queue need no lock of their own.  The waiting thread re-checks them
 * under the GIL after arming its parker, so no wake-up is lost.
 *
 * As in the stdlib, a future that is CANCELLED but not yet notified
 * (set_running_or_notify_cancel) is not finished for these functions.
 */
#include "cfutures.h"

#include <stddef.h>

typedef enum {
    MODE_FIRST_COMPLETED,
    MODE_FIRST_EXCEPTION,
    MODE_ALL_COMPLETED,
    MODE_AS_COMPLETED,
} wait_mode;

typedef struct {
    PyObject_HEAD
    cf_waiter base;
    wait_mode mode;
    int closed;
    int exception_seen;
    Py_ssize_t pending;         /* registered futures that have not finished */
    /* Finished futures in finishing order (strong references), a ring of
     * `capacity`: every registered future finishes at most once. */
    PyObject **queue;
    Py_ssize_t capacity, head, count;
    cf_link *links;             /* one per registered cfutures future */
    Py_ssize_t nlinks;
    PyObject *protocol_futures; /* set of stdlib futures we sit in `_waiters` of */
} WaiterObject;

#define WAITER_OF(base_ptr) ((WaiterObject *)((char *)(base_ptr) - offsetof(WaiterObject, base)))

/* ---- the finished queue ------------------------------------------------- */

static int
waiter_satisfied(WaiterObject *w)
{
    switch (w->mode) {
    case MODE_FIRST_EXCEPTION:
        return w->exception_seen || w->pending == 0;
    case MODE_ALL_COMPLETED:
        return w->pending == 0;
    default:
        return w->count > 0;
    }
}

/* A registered future finished.  Steals `future`.  Never calls Python. */
static void
waiter_finished(WaiterObject *w, PyObject *future, cf_ending ending)
{
    if (w->closed || w->count == w->capacity) {
        Py_DECREF(future);      /* a late or repeated notification */
        return;
    }
    w->queue[(w->head + w->count) % w->capacity] = future;
    w->count++;
    w->pending--;
    if (ending == CF_ENDED_EXCEPTION) {
        w->exception_seen = 1;
    }
    if (waiter_satisfied(w)) {
        cf_parker_unpark(&w->base.parker);
    }
}

/* Oldest finished future (new reference), or NULL if none. */
static PyObject *
waiter_pop_finished(WaiterObject *w)
{
    if (w->count == 0) {
        return NULL;
    }
    PyObject *future = w->queue[w->head];
    w->queue[w->head] = NULL;
    w->head = (w->head + 1) % w->capacity;
    w->count--;
    return future;
}

/* Called by a cfutures future; the link's reference moves into the queue. */
static void
waiter_notify(cf_waiter *base, PyObject *future, cf_ending ending)
{
    waiter_finished(WAITER_OF(base), future, ending);
}

/* ---- creation and teardown ---------------------------------------------- */

static WaiterObject *
waiter_new(cf_state *st, wait_mode mode, Py_ssize_t capacity)
{
    WaiterObject *w = PyObject_GC_New(WaiterObject, st->WaiterType);
    if (w == NULL) {
        return NULL;
    }
    cf_parker_init(&w->base.parker);
    w->base.wakes_on_cancel = 0;
    w->base.notify = waiter_notify;
    w->mode = mode;
    w->closed = 0;
    w->exception_seen = 0;
    w->pending = 0;
    w->capacity = capacity > 0 ? capacity : 1;
    w->head = w->count = 0;
    w->nlinks = 0;
    w->protocol_futures = NULL;
    w->queue = PyMem_Calloc((size_t)w->capacity, sizeof(PyObject *));
    w->links = PyMem_Calloc((size_t)w->capacity, sizeof(cf_link));
    PyObject_GC_Track(w);
    if (w->queue == NULL || w->links == NULL) {
        Py_DECREF(w);
        PyErr_NoMemory();
        return NULL;
    }
    return w;
}

/* Leave a stdlib future's `_waiters` under its `_condition`, as the stdlib
 * does when it is done with a future. */
static int
waiter_leave_protocol_future(WaiterObject *w, PyObject *future)
{
    int rc = -1;
    PyObject *condition = PyObject_GetAttrString(future, "_condition");
    PyObject *entered = condition ? PyObject_CallMethod(condition, "__enter__", NULL) : NULL;
    if (entered == NULL) {
        goto done;
    }
    Py_DECREF(entered);
    PyObject *waiters = PyObject_GetAttrString(future, "_waiters");
    PyObject *removed = waiters ? PyObject_CallMethod(waiters, "remove", "O", w) : NULL;
    Py_XDECREF(waiters);
    if (removed == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();          /* not there: nothing to leave */
        removed = Py_NewRef(Py_None);
    }
    PyObject *pending_error = cf_err_take();
    PyObject *exited = PyObject_CallMethod(condition, "__exit__", "OOO", Py_None, Py_None, Py_None);
    if (pending_error != NULL) {
        Py_XDECREF(exited);
        if (exited == NULL) {
            PyErr_Clear();
        }
        cf_err_restore(pending_error);
    }
    else if (exited != NULL && removed != NULL) {
        rc = 0;
    }
    Py_XDECREF(exited);
    Py_XDECREF(removed);
    if (rc == 0) {
        rc = PySet_Discard(w->protocol_futures, future) < 0 ? -1 : 0;
    }
done:
    Py_XDECREF(condition);
    return rc;
}

/* Unhook from every future; later notifications are ignored.  The finished
 * queue stays readable.  Idempotent.  Calls Python for stdlib futures;
 * returns -1 if one of those calls failed (the teardown still completes). */
static int
waiter_close(WaiterObject *w)
{
    int rc = 0;
    if (w->closed) {
        return 0;
    }
    w->closed = 1;
    for (Py_ssize_t i = 0; i < w->nlinks; i++) {
        PyObject *future = w->links[i].future;
        if (future != NULL) {
            future_unlink_waiter(&w->links[i]);
            Py_DECREF(future);
        }
    }
    if (w->protocol_futures != NULL) {
        PyObject *futures = PySequence_List(w->protocol_futures);
        for (Py_ssize_t i = 0; futures != NULL && i < PyList_GET_SIZE(futures); i++) {
            if (waiter_leave_protocol_future(w, PyList_GET_ITEM(futures, i)) < 0) {
                if (rc == 0) {
                    rc = -1;
                    PyObject *first_error = cf_err_take();
                    /* Keep leaving the others; report the first failure. */
                    for (i = i + 1; i < PyList_GET_SIZE(futures); i++) {
                        if (waiter_leave_protocol_future(w, PyList_GET_ITEM(futures, i)) < 0) {
                            PyErr_Clear();
                        }
                    }
                    cf_err_restore(first_error);
                }
            }
        }
        if (futures == NULL) {
            rc = -1;
        }
        Py_XDECREF(futures);
        Py_CLEAR(w->protocol_futures);
    }
    return rc;
}

static int
waiter_traverse(PyObject *op, visitproc visit, void *arg)
{
    WaiterObject *w = (WaiterObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(w->protocol_futures);
    for (Py_ssize_t i = 0; i < w->count; i++) {
        Py_VISIT(w->queue[(w->head + i) % w->capacity]);
    }
    for (Py_ssize_t i = 0; i < w->nlinks; i++) {
        Py_VISIT(w->links[i].future);
    }
    return 0;
}

/* For the garbage collector: drop references without calling Python. */
static int
waiter_clear(PyObject *op)
{
    WaiterObject *w = (WaiterObject *)op;
    w->closed = 1;
    for (Py_ssize_t i = 0; w->links != NULL && i < w->nlinks; i++) {
        PyObject *future = w->links[i].future;
        if (future != NULL) {
            future_unlink_waiter(&w->links[i]);
            Py_DECREF(future);
        }
    }
    Py_CLEAR(w->protocol_futures);
    PyObject *future;
    while (w->queue != NULL && (future = waiter_pop_finished(w)) != NULL) {
        Py_DECREF(future);
    }
    return 0;
}

static void
waiter_dealloc(PyObject *op)
{
    WaiterObject *w = (WaiterObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    waiter_clear(op);
    PyMem_Free(w->queue);
    PyMem_Free(w->links);
    cf_parker_fini(&w->base.parker);
    PyObject_GC_Del(op);
    Py_DECREF(type);
}

/* ---- the stdlib's waiter protocol and done-callbacks -------------------- */

static PyObject *
waiter_add_result(PyObject *op, PyObject *future)
{
    waiter_finished((WaiterObject *)op, Py_NewRef(future), CF_ENDED_RESULT);
    Py_RETURN_NONE;
}

static PyObject *
waiter_add_exception(PyObject *op, PyObject *future)
{
    waiter_finished((WaiterObject *)op, Py_NewRef(future), CF_ENDED_EXCEPTION);
    Py_RETURN_NONE;
}

static PyObject *
waiter_add_cancelled(PyObject *op, PyObject *future)
{
    waiter_finished((WaiterObject *)op, Py_NewRef(future), CF_ENDED_CANCELLED);
    Py_RETURN_NONE;
}

/* Does this done future count as "raised" for FIRST_EXCEPTION?  The stdlib's
 * test: not f.cancelled() and f.exception() is not None. */
static int
future_like_raised(cf_state *st, PyObject *future)
{
    if (Future_Check(st, future)) {
        FutureObject *f = (FutureObject *)future;
        return f->state == CF_FINISHED && f->exception != NULL;
    }
    PyObject *cancelled = PyObject_CallMethod(future, "cancelled", NULL);
    int is_cancelled = cancelled == NULL ? -1 : PyObject_IsTrue(cancelled);
    Py_XDECREF(cancelled);
    if (is_cancelled != 0) {
        return is_cancelled < 0 ? -1 : 0;
    }
    PyObject *exception = PyObject_CallMethod(future, "exception", NULL);
    if (exception == NULL) {
        return -1;
    }
    int raised = exception != Py_None;
    Py_DECREF(exception);
    return raised;
}

/* The waiter as a done-callback, for futures that are neither ours nor the
 * stdlib's. */
static PyObject *
waiter_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    WaiterObject *w = (WaiterObject *)op;
    PyObject *future;
    if (!PyArg_ParseTuple(args, "O:_Waiter", &future) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "_Waiter takes no keyword arguments");
        }
        return NULL;
    }
    cf_ending ending = CF_ENDED_RESULT;
    if (w->mode == MODE_FIRST_EXCEPTION && !w->closed) {
        cf_state *st = cf_state_of_type(Py_TYPE(op));
        int raised = st == NULL ? -1 : future_like_raised(st, future);
        if (raised < 0) {
            return NULL;
        }
        ending = raised ? CF_ENDED_EXCEPTION : CF_ENDED_RESULT;
    }
    waiter_finished(w, Py_NewRef(future), ending);
    Py_RETURN_NONE;
}

static PyMethodDef waiter_methods[] = {
    {"add_result", waiter_add_result, METH_O, NULL},
    {"add_exception", waiter_add_exception, METH_O, NULL},
    {"add_cancelled", waiter_add_cancelled, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot waiter_slots[] = {
    {Py_tp_doc, "Internal: what wait() and as_completed() block on."},
    {Py_tp_dealloc, waiter_dealloc},
    {Py_tp_traverse, waiter_traverse},
    {Py_tp_clear, waiter_clear},
    {Py_tp_call, waiter_call},
    {Py_tp_methods, waiter_methods},
    {0, NULL},
};

static PyType_Spec waiter_spec = {
    .name = "cfutures._cfutures._Waiter",
    .basicsize = sizeof(WaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = waiter_slots,
};

/* ---- registering with futures ------------------------------------------- */

static int
is_stdlib_future(cf_state *st, PyObject *future)
{
    return PyObject_IsInstance(future, st->stdlib_future_class);
}

/* Is `future` finished in the sense of wait()/as_completed()?  For stdlib
 * futures this reads `_state` like the stdlib; for others it asks done(). */
static int
future_like_finished(cf_state *st, PyObject *future)
{
    if (Future_Check(st, future)) {
        return future_is_finished((FutureObject *)future);
    }
    int stdlib = is_stdlib_future(st, future);
    if (stdlib < 0) {
        return -1;
    }
    if (!stdlib) {
        PyObject *done = PyObject_CallMethod(future, "done", NULL);
        int is_done = done == NULL ? -1 : PyObject_IsTrue(done);
        Py_XDECREF(done);
        return is_done;
    }
    PyObject *state = PyObject_GetAttrString(future, "_state");
    if (state == NULL) {
        return -1;
    }
    int finished = PyObject_RichCompareBool(state, st->state_names[CF_FINISHED], Py_EQ);
    if (finished == 0) {
        finished = PyObject_RichCompareBool(state, st->state_names[CF_CANCELLED_AND_NOTIFIED],
                                            Py_EQ);
    }
    Py_DECREF(state);
    return finished;
}

/* How a future that is already finished ended, for FIRST_EXCEPTION. */
static int
ending_of_finished(cf_state *st, PyObject *future, cf_ending *ending)
{
    int raised = future_like_raised(st, future);
    *ending = raised > 0 ? CF_ENDED_EXCEPTION : CF_ENDED_RESULT;
    return raised < 0 ? -1 : 0;
}

/* Join a stdlib future's `_waiters` unless it is already finished, checking
 * and joining under its `_condition`. */
static int
waiter_join_protocol_future(cf_state *st, WaiterObject *w, PyObject *future)
{
    int rc = -1;
    PyObject *condition = PyObject_GetAttrString(future, "_condition");
    PyObject *entered = condition ? PyObject_CallMethod(condition, "__enter__", NULL) : NULL;
    if (entered == NULL) {
        Py_XDECREF(condition);
        return -1;
    }
    Py_DECREF(entered);
    int finished = future_like_finished(st, future);
    cf_ending ending;
    if (finished > 0 && ending_of_finished(st, future, &ending) == 0) {
        waiter_finished(w, Py_NewRef(future), ending);
        rc = 0;
    }
    else if (finished == 0) {
        PyObject *waiters = PyObject_GetAttrString(future, "_waiters");
        PyObject *appended = waiters ? PyObject_CallMethod(waiters, "append", "O", w) : NULL;
        if (appended != NULL &&
            (w->protocol_futures != NULL || (w->protocol_futures = PySet_New(NULL)) != NULL)) {
            rc = PySet_Add(w->protocol_futures, future);
        }
        Py_XDECREF(waiters);
        Py_XDECREF(appended);
    }
    PyObject *pending_error = cf_err_take();
    PyObject *exited = PyObject_CallMethod(condition, "__exit__", "OOO", Py_None, Py_None, Py_None);
    Py_DECREF(condition);
    if (pending_error != NULL) {
        if (exited == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(exited);
        cf_err_restore(pending_error);
        return -1;
    }
    if (exited == NULL) {
        return -1;
    }
    Py_DECREF(exited);
    return rc;
}

/* Make sure `w` hears when `future` finishes.  A future that has already
 * finished goes straight into the queue. */
static int
waiter_register(cf_state *st, WaiterObject *w, PyObject *future)
{
    w->pending++;
    if (Future_Check(st, future)) {
        FutureObject *f = (FutureObject *)future;
        if (future_is_finished(f)) {
            cf_ending ending;
            ending_of_finished(st, future, &ending);
            waiter_finished(w, Py_NewRef(future), ending);
        }
        else {
            Py_INCREF(future);      /* owned by the link */
            future_link_waiter(f, &w->links[w->nlinks++], &w->base);
        }
        return 0;
    }
    int stdlib = is_stdlib_future(st, future);
    if (stdlib < 0) {
        return -1;
    }
    if (stdlib) {
        return waiter_join_protocol_future(st, w, future);
    }
    PyObject *r = PyObject_CallMethod(future, "add_done_callback", "O", w);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* Block until the waiter is satisfied or `deadline` passes.  -1 on error. */
static int
waiter_block(WaiterObject *w, int64_t deadline)
{
    int timed_out = 0;
    for (;;) {
        cf_parker_arm(&w->base.parker);
        if (waiter_satisfied(w) || timed_out) {
            return 0;
        }
        int parked = cf_park_released(&w->base.parker, deadline);
        if (parked < 0) {
            return -1;
        }
        timed_out = parked == 0;
    }
}

/* The future an iterator hands out leaves the waiter's protocol at once, as
 * in the stdlib, so nothing keeps it alive after it is yielded. */
static int
waiter_release_yielded(WaiterObject *w, PyObject *future)
{
    if (w->protocol_futures == NULL) {
        return 0;
    }
    int member = PySet_Contains(w->protocol_futures, future);
    if (member <= 0) {
        return member;
    }
    return waiter_leave_protocol_future(w, future);
}

/* ---- wait() ------------------------------------------------------------- */

static PyObject *
make_result(cf_state *st, PyObject *done, PyObject *fs)
{
    PyObject *not_done = PyNumber_Subtract(fs, done);
    if (not_done == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(st->DoneAndNotDoneFutures, done, not_done, NULL);
    Py_DECREF(not_done);
    return r;
}

/* Does any future in `done` count as raised?  (FIRST_EXCEPTION's early exit) */
static int
any_raised(cf_state *st, PyObject *done)
{
    PyObject *it = PyObject_GetIter(done);
    if (it == NULL) {
        return -1;
    }
    PyObject *future;
    int raised = 0;
    while (raised == 0 && (future = PyIter_Next(it)) != NULL) {
        raised = future_like_raised(st, future);
        Py_DECREF(future);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : raised;
}

static int
parse_return_when(cf_state *st, PyObject *return_when, wait_mode *mode)
{
    static const wait_mode modes[] = {MODE_FIRST_COMPLETED, MODE_FIRST_EXCEPTION,
                                      MODE_ALL_COMPLETED};
    PyObject *names[] = {st->FIRST_COMPLETED, st->FIRST_EXCEPTION, st->ALL_COMPLETED};
    for (int i = 0; i < 3; i++) {
        int equal = PyObject_RichCompareBool(return_when, names[i], Py_EQ);
        if (equal != 0) {
            *mode = modes[i];
            return equal < 0 ? -1 : 1;
        }
    }
    return 0;
}

/* The members of set `fs` as a C array of borrowed references (`fs` keeps
 * them alive): iterating a set walks its whole sparse table, so do it once. */
static PyObject **
set_members(PyObject *fs)
{
    Py_ssize_t n = PySet_GET_SIZE(fs), i = 0;
    PyObject **items = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(PyObject *));
    PyObject *it = items == NULL ? NULL : PyObject_GetIter(fs);
    PyObject *item;
    if (it == NULL) {
        PyMem_Free(items);
        return items == NULL ? (PyObject **)PyErr_NoMemory() : NULL;
    }
    while (i < n && (item = PyIter_Next(it)) != NULL) {
        items[i++] = item;
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        PyMem_Free(items);
        return NULL;
    }
    return items;
}

PyObject *
waiters_wait(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"fs", "timeout", "return_when", NULL};
    cf_state *st = cf_state_of_module(module);
    if (cf_threads_are_green(st)) {
        /* Its waits go through the patched threading primitives. */
        return PyObject_Call(st->stdlib_wait, args, kwargs);
    }
    PyObject *fs_arg, *timeout = Py_None, *return_when = st->ALL_COMPLETED;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:wait", kwlist, &fs_arg, &timeout,
                                     &return_when)) {
        return NULL;
    }
    PyObject *result = NULL, *future = NULL, **items = NULL;
    WaiterObject *w = NULL;
    PyObject *fs = PySet_New(fs_arg);
    PyObject *done = PySet_New(NULL);
    if (fs == NULL || done == NULL || (items = set_members(fs)) == NULL) {
        goto done;
    }
    /* Partition: items[0, ndone) are finished, the rest pending. */
    Py_ssize_t n = PySet_GET_SIZE(fs), ndone = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int finished = future_like_finished(st, items[i]);
        if (finished < 0 || (finished && PySet_Add(done, items[i]) < 0)) {
            goto done;
        }
        if (finished) {
            PyObject *swap = items[ndone];
            items[ndone++] = items[i];
            items[i] = swap;
        }
    }

    /* The stdlib's early returns, in its order. */
    wait_mode mode = MODE_ALL_COMPLETED;
    int known = parse_return_when(st, return_when, &mode);
    if (known < 0) {
        goto done;
    }
    if (known && ndone > 0 && mode != MODE_ALL_COMPLETED) {
        int raised = mode == MODE_FIRST_EXCEPTION ? any_raised(st, done) : 1;
        if (raised < 0) {
            goto done;
        }
        if (raised) {
            result = make_result(st, done, fs);
            goto done;
        }
    }
    if (ndone == n) {
        result = make_result(st, done, fs);
        goto done;
    }
    if (!known) {
        PyErr_Format(PyExc_ValueError, "Invalid return condition: %R", return_when);
        goto done;
    }

    int64_t deadline;
    if (cf_deadline_from_timeout(timeout, &deadline) < 0 ||
        (w = waiter_new(st, mode, n - ndone)) == NULL) {
        goto done;
    }
    for (Py_ssize_t i = ndone; i < n; i++) {
        if (waiter_register(st, w, items[i]) < 0) {
            goto done;
        }
    }
    if (waiter_block(w, deadline) < 0 || waiter_close(w) < 0) {
        goto done;
    }
    /* Everything that finished while we were registered is done. */
    while ((future = waiter_pop_finished(w)) != NULL) {
        if (PySet_Add(done, future) < 0) {
            goto done;
        }
        Py_CLEAR(future);
    }
    result = make_result(st, done, fs);

done:
    if (w != NULL && waiter_close(w) < 0) {
        Py_CLEAR(result);
    }
    Py_XDECREF(w);
    Py_XDECREF(future);
    PyMem_Free(items);
    Py_XDECREF(fs);
    Py_XDECREF(done);
    return result;
}

/* ---- as_completed() ----------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *fs_arg;           /* the argument, until the first next() */
    PyObject *timeout;
    int started;
    int exhausted;
    int running;                /* a next() or close() is under way */
    double end_time;            /* timeout + time.monotonic() at the start */
    Py_ssize_t total;           /* distinct futures */
    Py_ssize_t unfinished;      /* registered futures not yet handed out */
    PyObject *finished_first;   /* list of futures finished at the start */
    WaiterObject *waiter;
} AsCompletedObject;

PyObject *
waiters_as_completed(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"fs", "timeout", NULL};
    cf_state *st = cf_state_of_module(module);
    if (cf_threads_are_green(st)) {
        return PyObject_Call(st->stdlib_as_completed, args, kwargs);
    }
    PyObject *fs_arg, *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:as_completed", kwlist, &fs_arg,
                                     &timeout)) {
        return NULL;
    }
    AsCompletedObject *self = PyObject_GC_New(AsCompletedObject, st->AsCompletedType);
    if (self == NULL) {
        return NULL;
    }
    self->fs_arg = Py_NewRef(fs_arg);
    self->timeout = Py_NewRef(timeout);
    self->started = self->exhausted = self->running = 0;
    self->end_time = 0;
    self->total = self->unfinished = 0;
    self->finished_first = NULL;
    self->waiter = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* What the stdlib generator does before its first yield. */
static int
as_completed_start(AsCompletedObject *self)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st == NULL) {
        return -1;
    }
    if (self->timeout != Py_None && cf_end_time_from_timeout(self->timeout, &self->end_time) < 0) {
        return -1;
    }
    int rc = -1;
    PyObject *future = NULL, *it = NULL;
    PyObject *fs = PySet_New(self->fs_arg);
    Py_CLEAR(self->fs_arg);
    if (fs == NULL) {
        return -1;
    }
    self->total = PySet_GET_SIZE(fs);
    self->finished_first = PyList_New(0);
    self->waiter = waiter_new(st, MODE_AS_COMPLETED, self->total);
    if (self->finished_first == NULL || self->waiter == NULL ||
        (it = PyObject_GetIter(fs)) == NULL) {
        goto done;
    }
    while ((future = PyIter_Next(it)) != NULL) {
        int finished = future_like_finished(st, future);
        if (finished < 0) {
            goto done;
        }
        if (finished) {
            if (PyList_Append(self->finished_first, future) < 0) {
                goto done;
            }
        }
        else {
            if (waiter_register(st, self->waiter, future) < 0) {
                goto done;
            }
            self->unfinished++;
        }
        Py_CLEAR(future);
    }
    rc = PyErr_Occurred() ? -1 : 0;
done:
    Py_XDECREF(future);
    Py_XDECREF(it);
    Py_DECREF(fs);
    return rc;
}

/* Tear down after the last future, an error or close(). */
static int
as_completed_finish(AsCompletedObject *self)
{
    self->exhausted = 1;
    Py_CLEAR(self->finished_first);
    Py_CLEAR(self->fs_arg);
    int rc = self->waiter != NULL ? waiter_close(self->waiter) : 0;
    Py_CLEAR(self->waiter);
    return rc;
}

/* Wait for the next future to finish, as the stdlib's loop does: the time
 * left is `end_time - time.monotonic()`; below zero it is a TimeoutError.
 * 0 when one may be ready, -1 with an exception. */
static int
as_completed_wait(AsCompletedObject *self)
{
    int64_t deadline = CF_FOREVER;
    if (self->timeout != Py_None) {
        double remaining = cf_remaining(self->end_time);
        if (remaining < 0) {
            cf_state *st = cf_state_of_type(Py_TYPE(self));
            if (st != NULL) {
                PyErr_Format(st->TimeoutError, "%zd (of %zd) futures unfinished",
                             self->unfinished, self->total);
            }
            return -1;
        }
        if (!(remaining > 0)) {
            /* 0 or NaN: look once more without waiting, as the stdlib does,
             * but let the threads that complete futures run meanwhile. */
            Py_BEGIN_ALLOW_THREADS
            Py_END_ALLOW_THREADS
            return PyErr_CheckSignals();
        }
        if (cf_deadline_from_seconds(remaining, &deadline) < 0) {
            return -1;
        }
    }
    return cf_park_released(&self->waiter->base.parker, deadline) < 0 ? -1 : 0;
}

/* One step of the generator: the next future, NULL at the end (no
 * exception) or on error. */
static PyObject *
as_completed_step(AsCompletedObject *self)
{
    if (self->exhausted) {
        return NULL;
    }
    if (!self->started) {
        self->started = 1;
        if (as_completed_start(self) < 0) {
            goto error;
        }
    }
    Py_ssize_t nfirst = PyList_GET_SIZE(self->finished_first);
    if (nfirst > 0) {
        PyObject *future = Py_NewRef(PyList_GET_ITEM(self->finished_first, nfirst - 1));
        if (PyList_SetSlice(self->finished_first, nfirst - 1, nfirst, NULL) < 0) {
            Py_DECREF(future);
            goto error;
        }
        return future;
    }
    WaiterObject *w = self->waiter;
    for (;;) {
        if (self->unfinished == 0) {
            as_completed_finish(self);
            return NULL;
        }
        cf_parker_arm(&w->base.parker);
        PyObject *future = waiter_pop_finished(w);
        if (future != NULL) {
            self->unfinished--;
            if (waiter_release_yielded(w, future) < 0) {
                Py_DECREF(future);
                goto error;
            }
            return future;
        }
        if (as_completed_wait(self) < 0) {
            goto error;
        }
    }

error:
    {
        /* Like a generator that raised: it is finished for good. */
        PyObject *exc = cf_err_take();
        if (as_completed_finish(self) < 0) {
            PyErr_Clear();
        }
        cf_err_restore(exc);
        cf_generator_error_exit();
    }
    return NULL;
}

static PyObject *
as_completed_next(PyObject *op)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    if (cf_generator_enter(&self->running) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    PyObject *future = as_completed_step(self);
    self->running = 0;
    Py_DECREF(self);
    return future;
}

static PyObject *
as_completed_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    AsCompletedObject *self = (AsCompletedObject *)op;
    if (cf_generator_enter(&self->running) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    int rc = as_completed_finish(self);
    self->running = 0;
    Py_DECREF(self);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static void
as_completed_finalize(PyObject *op)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    if (self->exhausted || self->waiter == NULL) {
        return;
    }
    PyObject *exc = cf_err_take();
    if (as_completed_finish(self) < 0) {
        PyErr_WriteUnraisable(op);
    }
    if (exc != NULL) {
        cf_err_restore(exc);
    }
}

static int
as_completed_traverse(PyObject *op, visitproc visit, void *arg)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->fs_arg);
    Py_VISIT(self->timeout);
    Py_VISIT(self->finished_first);
    Py_VISIT(self->waiter);
    return 0;
}

static int
as_completed_clear(PyObject *op)
{
    AsCompletedObject *self = (AsCompletedObject *)op;
    Py_CLEAR(self->fs_arg);
    Py_CLEAR(self->timeout);
    Py_CLEAR(self->finished_first);
    Py_CLEAR(self->waiter);
    return 0;
}

static void
as_completed_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    if (PyObject_CallFinalizerFromDealloc(op) < 0) {
        return;                 /* resurrected */
    }
    PyObject_GC_UnTrack(op);
    as_completed_clear(op);
    PyObject_GC_Del(op);
    Py_DECREF(type);
}

static PyMethodDef as_completed_methods[] = {
    {"close", as_completed_close, METH_NOARGS,
     "Stop iterating and stop listening to the futures not yet handed out."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot as_completed_slots[] = {
    {Py_tp_doc, "Iterator over futures as they complete; see as_completed()."},
    {Py_tp_dealloc, as_completed_dealloc},
    {Py_tp_finalize, as_completed_finalize},
    {Py_tp_traverse, as_completed_traverse},
    {Py_tp_clear, as_completed_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, as_completed_next},
    {Py_tp_methods, as_completed_methods},
    {0, NULL},
};

static PyType_Spec as_completed_spec = {
    .name = "cfutures._cfutures._AsCompletedIterator",
    .basicsize = sizeof(AsCompletedObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = as_completed_slots,
};

int
waiters_module_init(PyObject *module, cf_state *st)
{
    st->WaiterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &waiter_spec, NULL);
    if (st->WaiterType == NULL) {
        return -1;
    }
    st->AsCompletedType =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &as_completed_spec, NULL);
    return st->AsCompletedType == NULL ? -1 : 0;
}
