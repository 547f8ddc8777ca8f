/* executor.c — the Executor base: map() and its result iterator.
 *
 * map(fn, *iterables, timeout=None, chunksize=1, buffersize=None) as the
 * stdlib's 3.14 Executor.map, on every Python version: the tasks are
 * submitted when map() is called (all of them, or the first `buffersize`,
 * one more each time a result is taken), `timeout` counts from the call, a
 * result that raises is raised when its turn comes, and whatever is still
 * queued is cancelled when the iterator is closed, fails or is collected.
 *
 * Arguments are taken from the iterables directly, not through zip(), so a
 * task costs no argument tuple.  A ThreadPoolExecutor whose submit is ours is
 * fed through the native submit; anything else through its submit method.
 *
 * ordered=False (an extension) is the same iterator with another way of
 * choosing which future's result comes next: the first one done, as a
 * Waiter (waiter.h, MODE_AS_DONE) queues them, instead of the oldest
 * (map_iterator_take_done / _take_oldest).  The rest -- submitting,
 * refilling with buffersize, the timeout from the call, raising in turn,
 * ending and cancelling, refusing re-entry -- is the same code for both.
 * With buffersize, a result taken is replaced by one more call just before
 * it is returned, so at most `buffersize` calls are ever submitted and not
 * yet handed out.
 */
#include "waiter.h"

/* ---- submitting --------------------------------------------------------- */

typedef struct {
    PyObject *executor;     /* borrowed for the duration of one call */
    PyObject *submit;       /* bound submit method; NULL: the native one */
} submitter;

static int
submitter_init(cf_state *st, submitter *s, PyObject *executor)
{
    s->executor = executor;
    s->submit = PyObject_GetAttrString(executor, "submit");
    if (s->submit == NULL) {
        return -1;
    }
    /* The very method of our thread pool, not an override on a subclass or
     * on the instance (mock.patch.object, tqdm's progress bars). */
    if (tpool_is_native_submit(st, executor, s->submit)) {
        Py_CLEAR(s->submit);
    }
    return 0;
}

/* submit(fn, *args) -> future (new reference).  `call` holds fn and then
 * the arguments, with one free slot before fn for vectorcall. */
static PyObject *
submitter_submit(cf_state *st, submitter *s, PyObject **call, Py_ssize_t nargs)
{
    if (s->submit == NULL) {
        return tpool_submit_call(st, s->executor, call[0], call + 1, nargs, NULL);
    }
    return PyObject_Vectorcall(s->submit, call, (size_t)(nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                               NULL);
}

/* Take the next argument vector from `iterators` into call[1..] (new
 * references) and submit it.  Returns the future, or NULL: with an exception,
 * or without one when an iterable is exhausted. */
static PyObject *
submit_next(cf_state *st, submitter *s, PyObject *fn, PyObject *iterators)
{
    Py_ssize_t n = PyTuple_GET_SIZE(iterators);
    PyObject *small[10], **call = small;
    if (n == 0) {
        return NULL;            /* zip() of nothing is empty */
    }
    if (n + 2 > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
        call = PyMem_Malloc((size_t)(n + 2) * sizeof(PyObject *));
        if (call == NULL) {
            return PyErr_NoMemory();
        }
    }
    /* call[0] is the vectorcall offset slot, call[1] is fn. */
    Py_ssize_t got = 0;
    PyObject *future = NULL;
    for (; got < n; got++) {
        call[got + 2] = PyIter_Next(PyTuple_GET_ITEM(iterators, got));
        if (call[got + 2] == NULL) {
            break;
        }
    }
    if (got == n) {
        call[1] = fn;
        future = submitter_submit(st, s, call + 1, n);
    }
    for (Py_ssize_t i = 0; i < got; i++) {
        Py_DECREF(call[i + 2]);
    }
    if (call != small) {
        PyMem_Free(call);
    }
    return future;
}

/* ---- the result iterator ------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *fn;
    PyObject *iterators;        /* tuple; NULL once exhausted or not refilling */
    PyObject *executor_ref;     /* weakref, only to refill (buffersize) */
    /* Submitted, not yet handed out, oldest first.  Unordered, only while
     * map() submits: then they move into `pending` and `done`. */
    cf_ring futures;
    /* Unordered (NULL when ordered): the futures not yet handed out, by
     * identity ({address: future}, in submission order, to cancel them
     * newest first; no __hash__ or __eq__ of theirs is called), how many
     * calls that is (a submit() may return one future twice), and the
     * Waiter that queues them as they become done. */
    PyObject *pending;
    Py_ssize_t outstanding;
    WaiterObject *done;
    int ordered;
    int has_timeout;
    double end_time;            /* timeout + time.monotonic() at map() */
    /* The stdlib's iterator is a generator: closed or dropped before its
     * first next() it runs no `finally`, so nothing is cancelled and
     * `executor.map(fn, items)` works for its side effects alone. */
    int started;
    int running;                /* a next() or close() is under way */
} MapIterator;

/* future.cancel() for a future not handed out, if iteration began.
 * Steals `future`. */
static void
map_iterator_drop(MapIterator *self, PyObject *future)
{
    if (self->started && cf_consume(PyObject_CallMethod(future, "cancel", NULL)) < 0) {
        PyErr_WriteUnraisable(future);
    }
    Py_DECREF(future);
}

/* Unordered: stop hearing about the futures, then drop those not handed
 * out, newest first. */
static void
map_iterator_finish_unordered(MapIterator *self)
{
    WaiterObject *done = self->done;
    PyObject *pending = self->pending;
    self->done = NULL;
    self->pending = NULL;
    self->outstanding = 0;
    if (done != NULL) {
        PyObject *future;
        if (waiter_close(done) < 0) {   /* (nothing to leave in MODE_AS_DONE) */
            PyErr_WriteUnraisable((PyObject *)done);
        }
        /* A stdlib future keeps the waiter among its callbacks: not what
         * it queued. */
        while ((future = waiter_pop_finished(done)) != NULL) {
            Py_DECREF(future);
        }
        Py_DECREF(done);
    }
    if (pending != NULL) {
        PyObject *futures = PyDict_Values(pending);
        Py_DECREF(pending);
        if (futures == NULL) {
            PyErr_WriteUnraisable(NULL);
            return;
        }
        for (Py_ssize_t i = PyList_GET_SIZE(futures) - 1; i >= 0; i--) {
            map_iterator_drop(self, Py_NewRef(PyList_GET_ITEM(futures, i)));
        }
        Py_DECREF(futures);
    }
}

/* Stop refilling; cancel what has not been handed out if iteration began. */
static void
map_iterator_finish(MapIterator *self)
{
    PyObject *future;
    Py_CLEAR(self->iterators);
    Py_CLEAR(self->executor_ref);
    /* Newest first, as the stdlib's `for future in fs: future.cancel()`. */
    while ((future = cf_ring_pop_newest(&self->futures)) != NULL) {
        map_iterator_drop(self, future);
    }
    if (!self->ordered) {
        map_iterator_finish_unordered(self);
    }
}

/* One more submitted future (stolen) to hand out later.  -1 with an error
 * (the future is then released: it runs, as one whose submit raised). */
static int
map_iterator_add(cf_state *st, MapIterator *self, PyObject *future)
{
    if (self->ordered || self->done == NULL) {
        return cf_ring_push(&self->futures, future);
    }
    PyObject *key = PyLong_FromVoidPtr(future);
    int rc = key == NULL ? -1 : PyDict_SetItem(self->pending, key, future);
    Py_XDECREF(key);
    if (rc == 0) {
        self->outstanding++;
        rc = waiter_register(st, self->done, future);
    }
    Py_DECREF(future);
    return rc;
}

/* Unordered: what map() submitted moves from the ring to `pending`, and
 * under the watch of a Waiter with room for as many (no more are ever
 * outstanding: a refill follows a result taken). */
static int
map_iterator_watch(cf_state *st, MapIterator *self)
{
    PyObject *future;
    self->pending = PyDict_New();
    self->done = waiter_new(st, MODE_AS_DONE, self->futures.count);
    if (self->pending == NULL || self->done == NULL) {
        return -1;
    }
    while ((future = cf_ring_pop_oldest(&self->futures)) != NULL) {
        if (map_iterator_add(st, self, future) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The popped future's result, as the running stdlib's map() takes it:
 * `_result_or_cancel(future, timeout)` (the result, or the future cancelled
 * and the error raised) where the stdlib has it (3.10 on), a bare
 * `future.result()` / `future.result(timeout)` before.  Our own futures are
 * read directly; anything else — a subclass included, which may override
 * result() or cancel() — through its methods, as the stdlib does. */
static PyObject *
result_or_cancel(cf_state *st, PyObject *future, PyObject *timeout)
{
    int native = (PyObject *)Py_TYPE(future) == st->public_future_class;
    PyObject *result;
    if (native) {
        result = future_result(future, &timeout, timeout == Py_None ? 0 : 1, NULL);
    }
    else if (!st->map_cancels_popped && timeout == Py_None) {
        result = PyObject_CallMethod(future, "result", NULL);
    }
    else {
        result = PyObject_CallMethod(future, "result", "O", timeout);
    }
    if (!st->map_cancels_popped || (result != NULL && native)) {
        return result;          /* cancel() of a finished future does nothing */
    }
    PyObject *exc = cf_err_take();
    PyObject *cancelled = native ? future_cancel(future, NULL)
                                 : PyObject_CallMethod(future, "cancel", NULL);
    if (cancelled == NULL) {
        Py_XDECREF(result);
        Py_XDECREF(exc);        /* the error from cancel() wins, as in a finally */
        return NULL;
    }
    Py_DECREF(cancelled);
    if (exc != NULL) {
        cf_err_restore(exc);
    }
    return result;
}

/* buffersize: submit one more call before taking the oldest result, as the
 * stdlib does.  0, or -1 with an exception. */
static int
map_iterator_refill(cf_state *st, MapIterator *self)
{
    PyObject *executor = cf_weakref_get(self->executor_ref);
    if (executor == NULL) {
        return 0;
    }
    /* `executor.submit` looked up at every refill, as the stdlib does: it
     * may have been replaced meanwhile (mock.patch.object). */
    submitter s;
    PyObject *future = NULL;
    if (submitter_init(st, &s, executor) == 0) {
        future = submit_next(st, &s, self->fn, self->iterators);
    }
    Py_XDECREF(s.submit);
    Py_DECREF(executor);
    if (future == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        Py_CLEAR(self->iterators);      /* exhausted */
        return 0;
    }
    return map_iterator_add(st, self, future);
}

/* Unordered: the next future to be done (new reference), or NULL with an
 * error: TimeoutError, as the ordered map's result(), when the time given
 * to map() is up and none is. */
static PyObject *
map_iterator_pop_done(cf_state *st, MapIterator *self)
{
    WaiterObject *done = (WaiterObject *)Py_NewRef(self->done);
    PyObject *future;
    while ((future = waiter_pop_finished(done)) == NULL) {
        int64_t deadline = CF_FOREVER;
        if (self->has_timeout) {
            double remaining = cf_remaining(self->end_time);
            if (!(remaining > 0)) {
                PyErr_SetNone(st->TimeoutError);
                break;
            }
            if (cf_deadline_from_seconds(remaining, &deadline) < 0) {
                break;
            }
        }
        if (waiter_block(st, done, deadline) < 0) {
            break;
        }
    }
    Py_DECREF(done);
    if (future != NULL) {
        self->outstanding--;
        PyObject *key = PyLong_FromVoidPtr(future);
        if (key == NULL || PyDict_DelItem(self->pending, key) < 0) {
            if (key == NULL || !PyErr_ExceptionMatches(PyExc_KeyError)) {
                Py_XDECREF(key);
                Py_CLEAR(future);
                return NULL;
            }
            PyErr_Clear();      /* the second time a future came */
        }
        Py_DECREF(key);
    }
    return future;
}

/* Ordered: one more call (buffersize), then the oldest future's result,
 * waited for until the time given to map() is up.  NULL with an error. */
static PyObject *
map_iterator_take_oldest(cf_state *st, MapIterator *self)
{
    if (self->iterators != NULL && map_iterator_refill(st, self) < 0) {
        return NULL;
    }
    PyObject *timeout = Py_None;
    if (self->has_timeout) {
        timeout = PyFloat_FromDouble(cf_remaining(self->end_time));
        if (timeout == NULL) {
            return NULL;
        }
    }
    PyObject *future = cf_ring_pop_oldest(&self->futures);
    PyObject *result = result_or_cancel(st, future, timeout);
    Py_DECREF(future);
    if (timeout != Py_None) {
        Py_DECREF(timeout);
    }
    return result;
}

/* Unordered: the result of the first future done, then one more call in
 * its place (buffersize).  NULL with an error. */
static PyObject *
map_iterator_take_done(cf_state *st, MapIterator *self)
{
    PyObject *result, *future = map_iterator_pop_done(st, self);
    if (future == NULL) {
        return NULL;
    }
    /* Read as the ordered map reads a result, with nothing to cancel (the
     * stdlib's cancel() after result() is for a wait given up). */
    if ((PyObject *)Py_TYPE(future) == st->public_future_class) {
        result = future_result(future, NULL, 0, NULL);
    }
    else {
        result = PyObject_CallMethod(future, "result", NULL);
    }
    Py_DECREF(future);
    if (result != NULL && self->iterators != NULL && map_iterator_refill(st, self) < 0) {
        Py_CLEAR(result);
    }
    return result;
}

/* One step of the generator: the next result, NULL at the end (no
 * exception) or on error. */
static PyObject *
map_iterator_step(cf_state *st, MapIterator *self)
{
    /* Ordered, the ring holds what is to come; unordered, it is empty once
     * map() has returned (the futures are in `pending`): the ordered map
     * pays no test for the option. */
    PyObject *result;
    if (self->futures.count > 0) {
        self->started = 1;
        result = map_iterator_take_oldest(st, self);
    }
    else if (self->outstanding > 0) {
        self->started = 1;
        result = map_iterator_take_done(st, self);
    }
    else {
        map_iterator_finish(self);
        return NULL;
    }
    if (result == NULL) {
        /* Like the stdlib's generator after an exception: finished. */
        PyObject *exc = cf_err_take();
        map_iterator_finish(self);
        cf_err_restore(exc);
        cf_generator_error_exit();
    }
    return result;
}

static PyObject *
map_iterator_next(PyObject *op)
{
    MapIterator *self = (MapIterator *)op;
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    if (st == NULL || cf_generator_enter(&self->running) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    PyObject *result = map_iterator_step(st, self);
    self->running = 0;
    Py_DECREF(self);
    return result;
}

static PyObject *
map_iterator_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    MapIterator *self = (MapIterator *)op;
    if (cf_generator_enter(&self->running) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    map_iterator_finish(self);
    self->running = 0;
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static void
map_iterator_finalize(PyObject *op)
{
    PyObject *exc = cf_err_take();
    map_iterator_finish((MapIterator *)op);
    if (exc != NULL) {
        cf_err_restore(exc);
    }
}

static int
map_iterator_traverse(PyObject *op, visitproc visit, void *arg)
{
    MapIterator *self = (MapIterator *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->fn);
    Py_VISIT(self->iterators);
    Py_VISIT(self->executor_ref);
    for (Py_ssize_t i = 0; i < self->futures.count; i++) {
        Py_VISIT(cf_ring_at(&self->futures, i));
    }
    Py_VISIT(self->pending);
    Py_VISIT(self->done);
    return 0;
}

static int
map_iterator_clear(PyObject *op)
{
    MapIterator *self = (MapIterator *)op;
    Py_CLEAR(self->fn);
    Py_CLEAR(self->iterators);
    Py_CLEAR(self->executor_ref);
    cf_ring_clear(&self->futures);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->done);
    self->outstanding = 0;
    return 0;
}

static void
map_iterator_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    if (PyObject_CallFinalizerFromDealloc(op) < 0) {
        return;                 /* resurrected */
    }
    PyObject_GC_UnTrack(op);
    map_iterator_clear(op);
    PyObject_GC_Del(op);
    Py_DECREF(type);
}

static PyMethodDef map_iterator_methods[] = {
    {"close", map_iterator_close, METH_NOARGS, "Stop, cancelling the calls not yet returned."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot map_iterator_slots[] = {
    {Py_tp_doc, "The results of Executor.map(), in order or as they come."},
    {Py_tp_dealloc, map_iterator_dealloc},
    {Py_tp_finalize, map_iterator_finalize},
    {Py_tp_traverse, map_iterator_traverse},
    {Py_tp_clear, map_iterator_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, map_iterator_next},
    {Py_tp_methods, map_iterator_methods},
    {0, NULL},
};

static PyType_Spec map_iterator_spec = {
    .name = "cfutures._cfutures._MapIterator",
    .basicsize = sizeof(MapIterator),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = map_iterator_slots,
};

/* ---- Executor.map ------------------------------------------------------- */

/* Validate buffersize as the stdlib does; 0 means unbounded. */
static int
parse_buffersize(PyObject *value, Py_ssize_t *buffersize)
{
    *buffersize = 0;
    if (value == Py_None) {
        return 0;
    }
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "buffersize must be an integer or None");
        return -1;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && n < 1)) {
        PyErr_SetString(PyExc_ValueError, "buffersize must be None or > 0");
        return -1;
    }
    *buffersize = overflow > 0 || n > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)n;
    return 0;
}

/* A fresh map iterator with nothing submitted yet (new reference, tracked). */
static MapIterator *
map_iterator_new(cf_state *st, PyObject *fn, int ordered, int has_timeout, double end_time)
{
    MapIterator *it = PyObject_GC_New(MapIterator, st->MapIteratorType);
    if (it == NULL) {
        return NULL;
    }
    it->fn = Py_NewRef(fn);
    it->iterators = NULL;
    it->executor_ref = NULL;
    it->futures = (cf_ring){NULL, 0, 0, 0};
    it->pending = NULL;
    it->outstanding = 0;
    it->done = NULL;
    it->ordered = ordered;
    it->has_timeout = has_timeout;
    it->end_time = end_time;
    it->started = it->running = 0;
    PyObject_GC_Track(it);
    return it;
}

/* Submit the first calls (all, or `buffersize`) through `executor`; with
 * a buffer full, keep the iterators and a weak reference to the executor
 * for the refills.  0, or -1 with an exception. */
static int
map_iterator_fill(cf_state *st, MapIterator *it, PyObject *executor, PyObject *iterables,
                  Py_ssize_t buffersize)
{
    Py_ssize_t n = PyTuple_GET_SIZE(iterables);
    PyObject *iterators = PyTuple_New(n);
    if (iterators == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *iterator = PyObject_GetIter(PyTuple_GET_ITEM(iterables, i));
        if (iterator == NULL) {
            Py_DECREF(iterators);
            return -1;
        }
        PyTuple_SET_ITEM(iterators, i, iterator);
    }
    submitter s;
    if (submitter_init(st, &s, executor) < 0) {
        Py_DECREF(iterators);
        return -1;
    }
    PyObject *future;
    while ((buffersize == 0 || it->futures.count < buffersize) &&
           (future = submit_next(st, &s, it->fn, iterators)) != NULL) {
        if (cf_ring_push(&it->futures, future) < 0) {
            break;
        }
    }
    Py_XDECREF(s.submit);
    if (!PyErr_Occurred() && buffersize > 0 && it->futures.count == buffersize) {
        it->executor_ref = PyWeakref_NewRef(executor, NULL);
        if (it->executor_ref != NULL) {
            it->iterators = Py_NewRef(iterators);
        }
    }
    Py_DECREF(iterators);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *
executor_map_impl(PyObject *self, PyObject *fn, PyObject *iterables, PyObject *timeout,
                  PyObject *buffersize_arg, PyObject *ordered_arg)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    if (st == NULL) {
        return NULL;
    }
    Py_ssize_t buffersize;
    if (parse_buffersize(buffersize_arg, &buffersize) < 0) {
        return NULL;
    }
    double end_time = 0;
    if (timeout != Py_None && cf_end_time_from_timeout(timeout, &end_time) < 0) {
        return NULL;
    }
    /* Any object, by its truth, as the stdlib reads shutdown()'s flags. */
    int ordered = ordered_arg == Py_True ? 1 : PyObject_IsTrue(ordered_arg);
    if (ordered < 0) {
        return NULL;
    }
    MapIterator *it = map_iterator_new(st, fn, ordered, timeout != Py_None, end_time);
    if (it == NULL) {
        return NULL;
    }
    if (map_iterator_fill(st, it, self, iterables, buffersize) < 0 ||
        (!ordered && map_iterator_watch(st, it) < 0)) {
        /* Like the stdlib's list comprehension failing: what was submitted
         * keeps running; the iterator is never returned, so nothing is
         * cancelled. */
        map_iterator_clear((PyObject *)it);
        Py_DECREF(it);
        return NULL;
    }
    return (PyObject *)it;
}

/* map(fn, /, *iterables, timeout=None, chunksize=1, buffersize=None, ordered=True) */
static PyObject *
executor_map(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static const char *const keywords[] = {"fn", "timeout", "chunksize", "buffersize", "ordered"};
    enum { NKEYWORDS = sizeof(keywords) / sizeof(keywords[0]) };
    PyObject *values[] = {NULL, Py_None, NULL, Py_None, Py_True};
    Py_ssize_t npos = PyTuple_GET_SIZE(args);
    if (npos > 0) {
        values[0] = PyTuple_GET_ITEM(args, 0);
    }
    if (kwargs != NULL) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(kwargs, &pos, &key, &value)) {
            int i = 0;
            while (i < NKEYWORDS && !(PyUnicode_Check(key) &&
                              PyUnicode_CompareWithASCIIString(key, keywords[i]) == 0)) {
                i++;
            }
            if (i == NKEYWORDS) {
                PyErr_Format(PyExc_TypeError,
                             CF_QUALNAME("Executor.", "map") "() got an unexpected keyword argument '%S'",
                             key);
                return NULL;
            }
            if (i == 0 && npos > 0) {
                PyErr_SetString(PyExc_TypeError, CF_QUALNAME("Executor.", "map")
                                "() got multiple values for argument 'fn'");
                return NULL;
            }
            values[i] = value;
        }
    }
    if (values[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, CF_QUALNAME("Executor.", "map")
                        "() missing 1 required positional argument: 'fn'");
        return NULL;
    }
    PyObject *iterables = PyTuple_GetSlice(args, npos > 0 ? 1 : 0, npos);
    if (iterables == NULL) {
        return NULL;
    }
    PyObject *r = executor_map_impl(self, values[0], iterables, values[1], values[3], values[4]);
    Py_DECREF(iterables);
    return r;
}

static PyMethodDef executor_methods[] = {
    {"map", (PyCFunction)(void (*)(void))executor_map, METH_VARARGS | METH_KEYWORDS,
     "map($self, fn, *iterables, timeout=None, chunksize=1, buffersize=None, ordered=True)\n--\n\n"
     "Returns an iterator equivalent to map(fn, iter).\n\n"
     "Args:\n"
     "    fn: A callable that will take as many arguments as there are\n"
     "        passed iterables.\n"
     "    timeout: The maximum number of seconds to wait, counted from this\n"
     "        call.  If None, then there is no limit on the wait time.\n"
     "    chunksize: The size of the chunks the iterables are broken into\n"
     "        before being passed to a child process.  Only used by\n"
     "        ProcessPoolExecutor; ignored by ThreadPoolExecutor.\n"
     "    buffersize: The number of submitted tasks whose results have not\n"
     "        yet been yielded.  When the buffer is full, iteration over the\n"
     "        iterables pauses until a result is yielded.  If None, all input\n"
     "        elements are taken at once and a task is submitted for each.\n"
     "    ordered: If true (the default), the results come in the order of\n"
     "        the inputs.  If false (a cfutures extension), each comes as soon\n"
     "        as its call is done, in the order the calls finish; with\n"
     "        buffersize, each result taken is replaced by one more call, so\n"
     "        at most buffersize calls are submitted and not yet yielded.\n"
     "        Read by its truth value.\n\n"
     "Returns:\n"
     "    An iterator equivalent to map(fn, *iterables), the calls run by the\n"
     "    executor (maybe out of order), the results in order (ordered=True)\n"
     "    or in the order the calls finish (ordered=False).\n\n"
     "Raises:\n"
     "    TimeoutError: If the entire result iterator could not be generated\n"
     "        before the given timeout.\n"
     "    Exception: If fn(*args) raises for any values."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot executor_slots[] = {
    {Py_tp_doc, "Executor()\n--\n\nThe native part of cfutures.Executor."},
    {Py_tp_methods, executor_methods},
    {0, NULL},
};

static PyType_Spec executor_spec = {
    .name = "cfutures._cfutures.Executor",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = executor_slots,
};

int
executor_module_init(PyObject *module, cf_state *st)
{
    st->ExecutorType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &executor_spec, NULL);
    if (st->ExecutorType == NULL || PyModule_AddType(module, st->ExecutorType) < 0) {
        return -1;
    }
    st->MapIteratorType =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &map_iterator_spec, NULL);
    return st->MapIteratorType == NULL ? -1 : 0;
}
