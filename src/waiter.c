/* waiter.c — the Waiter: what wait() and as_completed() block on, and how it
 * hears about every kind of future (see waiter.h).
 */
#include "waiter.h"

#include <stddef.h>

#define WAITER_OF(base_ptr) ((WaiterObject *)((char *)(base_ptr) - offsetof(WaiterObject, base)))

/* ---- the finished queue ------------------------------------------------- */

int
waiter_satisfied(WaiterObject *w)
{
    switch (w->mode) {
    case MODE_FIRST_EXCEPTION:
        return w->exception_seen || w->pending == 0;
    case MODE_ALL_COMPLETED:
        return w->pending == 0;
    default:
        return w->finished.count > 0;
    }
}

/* A registered future finished.  Steals `future`.  Never calls Python. */
static void
waiter_finished(WaiterObject *w, PyObject *future, cf_ending ending)
{
    if (w->closed || w->pending == 0 || w->finished.count == w->capacity) {
        Py_DECREF(future);      /* a late or repeated notification */
        return;
    }
    cf_ring_push(&w->finished, future);     /* room was reserved: cannot fail */
    w->pending--;
    if (ending == CF_ENDED_EXCEPTION) {
        w->exception_seen = 1;
    }
    if (waiter_satisfied(w)) {
        cf_parker_unpark(&w->base.parker);
    }
}

PyObject *
waiter_pop_finished(WaiterObject *w)
{
    return cf_ring_pop_oldest(&w->finished);
}

/* Called by a cfutures future; the link's reference moves into the queue. */
static void
waiter_notify(cf_waiter *base, PyObject *future, cf_ending ending)
{
    waiter_finished(WAITER_OF(base), future, ending);
}

/* ---- creation and teardown ---------------------------------------------- */

WaiterObject *
waiter_new(cf_state *st, wait_mode mode, Py_ssize_t capacity)
{
    WaiterObject *w = PyObject_GC_New(WaiterObject, st->WaiterType);
    if (w == NULL) {
        return NULL;
    }
    cf_parker_init(&w->base.parker);
    w->base.wakes_on_cancel = mode == MODE_AS_DONE;
    w->base.notify = waiter_notify;
    w->mode = mode;
    w->closed = 0;
    w->exception_seen = 0;
    w->pending = 0;
    w->capacity = capacity > 0 ? capacity : 1;
    w->finished = (cf_ring){NULL, 0, 0, 0};
    w->nlinks = 0;
    w->next_free = 0;
    w->protocol_futures = NULL;
    w->links = PyMem_Calloc((size_t)w->capacity, sizeof(cf_link));
    PyObject_GC_Track(w);
    if (w->links == NULL) {
        PyErr_NoMemory();
    }
    if (w->links == NULL || cf_ring_reserve(&w->finished, w->capacity) < 0) {
        Py_DECREF(w);
        return NULL;
    }
    return w;
}

/* Leave a stdlib future's `_waiters` under its `_condition`, as the stdlib
 * does when it is done with a future. */
static int
waiter_leave_protocol_future(WaiterObject *w, PyObject *future)
{
    PyObject *existing = PyObject_GetAttrString(future, "_condition");
    PyObject *condition = existing ? cf_condition_enter(existing) : NULL;
    Py_XDECREF(existing);
    if (condition == NULL) {
        return -1;
    }
    PyObject *waiters = PyObject_GetAttrString(future, "_waiters");
    PyObject *removed = waiters ? PyObject_CallMethod(waiters, "remove", "O", w) : NULL;
    Py_XDECREF(waiters);
    if (removed == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();          /* not there: nothing to leave */
        removed = Py_NewRef(Py_None);
    }
    int rc = cf_consume(removed);
    if (cf_condition_exit(condition, 0) < 0 || rc < 0) {
        return -1;
    }
    return PySet_Discard(w->protocol_futures, future) < 0 ? -1 : 0;
}

/* Unhook from every future; later notifications are ignored.  The finished
 * queue stays readable.  Idempotent.  Calls Python for stdlib futures;
 * returns -1 if one of those calls failed (the teardown still completes). */
int
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
    for (Py_ssize_t i = 0; i < w->finished.count; i++) {
        Py_VISIT(cf_ring_at(&w->finished, i));
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
    cf_ring_clear(&w->finished);
    return 0;
}

static void
waiter_dealloc(PyObject *op)
{
    WaiterObject *w = (WaiterObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    waiter_clear(op);
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
int
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
int
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
    PyObject *existing = PyObject_GetAttrString(future, "_condition");
    PyObject *condition = existing ? cf_condition_enter(existing) : NULL;
    Py_XDECREF(existing);
    if (condition == NULL) {
        return -1;
    }
    int rc = -1;
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
    return cf_condition_exit(condition, 0) < 0 ? -1 : rc;
}

/* A link for one more cfutures future: the next unused one, or, once all
 * were used (MODE_AS_DONE), one whose future has finished -- there is one,
 * as at most `capacity` futures are registered and not yet popped.  The
 * search goes round from the last one taken: futures mostly finish in the
 * order they were registered. */
static cf_link *
waiter_free_link(WaiterObject *w)
{
    if (w->nlinks < w->capacity) {
        return &w->links[w->nlinks++];
    }
    for (Py_ssize_t i = 0; i < w->capacity; i++) {
        Py_ssize_t j = (w->next_free + i) % w->capacity;
        if (w->links[j].future == NULL) {
            w->next_free = j + 1;
            return &w->links[j];
        }
    }
    PyErr_SetString(PyExc_SystemError, "a waiter got more futures than it has room for");
    return NULL;
}

/* Is this cfutures future done for the waiter's mode?  Finished (cancels
 * notified) for wait() and as_completed(), done for MODE_AS_DONE. */
static int
waiter_sees_done(WaiterObject *w, FutureObject *f)
{
    if (w->mode == MODE_AS_DONE) {
        return f->state != CF_PENDING && f->state != CF_RUNNING;
    }
    return future_is_finished(f);
}

/* Make sure `w` hears when `future` finishes.  A future that has already
 * finished goes straight into the queue. */
int
waiter_register(cf_state *st, WaiterObject *w, PyObject *future)
{
    w->pending++;
    if (Future_Check(st, future)) {
        FutureObject *f = (FutureObject *)future;
        if (waiter_sees_done(w, f)) {
            cf_ending ending;
            ending_of_finished(st, future, &ending);
            waiter_finished(w, Py_NewRef(future), ending);
            return 0;
        }
        cf_link *link = waiter_free_link(w);
        if (link == NULL) {
            w->pending--;
            return -1;
        }
        Py_INCREF(future);      /* owned by the link */
        future_link_waiter(f, link, &w->base);
        return 0;
    }
    int stdlib = w->mode == MODE_AS_DONE ? 0 : is_stdlib_future(st, future);
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
waiter_ready(void *arg)
{
    return waiter_satisfied((WaiterObject *)arg);
}

int
waiter_block(cf_state *st, WaiterObject *w, int64_t deadline)
{
    return cf_wait_until(st, &w->base.parker, waiter_ready, w, deadline) == CF_WAIT_ERROR ? -1
                                                                                          : 0;
}

/* The future an iterator hands out leaves the waiter's protocol at once, as
 * in the stdlib, so nothing keeps it alive after it is yielded. */
int
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

int
waiter_type_init(PyObject *module, cf_state *st)
{
    st->WaiterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &waiter_spec, NULL);
    return st->WaiterType == NULL ? -1 : 0;
}
