/* futures_wait.c — wait(fs, timeout=None, return_when=ALL_COMPLETED).
 *
 * The stdlib's algorithm: partition into done and not done, its early
 * returns in its order, then one Waiter for the rest (waiter.h).
 */
#include "waiter.h"

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

/* Put the finished futures in `done` and first in items[]: items[0,
 * *ndone) are finished, the rest pending.  -1 with an error. */
static int
wait_partition(cf_state *st, PyObject **items, Py_ssize_t n, PyObject *done, Py_ssize_t *ndone)
{
    *ndone = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int finished = future_like_finished(st, items[i]);
        if (finished < 0 || (finished && PySet_Add(done, items[i]) < 0)) {
            return -1;
        }
        if (finished) {
            PyObject *swap = items[*ndone];
            items[(*ndone)++] = items[i];
            items[i] = swap;
        }
    }
    return 0;
}

/* Block until `mode` is satisfied among the pending items[ndone, n), then
 * add what finished to `done`.  -1 with an error. */
static int
wait_for_pending(cf_state *st, wait_mode mode, PyObject *timeout, PyObject **items,
                 Py_ssize_t ndone, Py_ssize_t n, PyObject *done)
{
    int64_t deadline;
    WaiterObject *w = NULL;
    PyObject *future = NULL;
    int rc = -1;
    if (cf_deadline_from_timeout(timeout, &deadline) < 0 ||
        (w = waiter_new(st, mode, n - ndone)) == NULL) {
        goto done;
    }
    for (Py_ssize_t i = ndone; i < n; i++) {
        if (waiter_register(st, w, items[i]) < 0) {
            goto done;
        }
    }
    if (waiter_block(st, w, deadline) < 0 || waiter_close(w) < 0) {
        goto done;
    }
    /* Everything that finished while we were registered is done. */
    while ((future = waiter_pop_finished(w)) != NULL) {
        if (PySet_Add(done, future) < 0) {
            goto done;
        }
        Py_CLEAR(future);
    }
    rc = 0;
done:
    if (w != NULL && waiter_close(w) < 0) {
        rc = -1;
    }
    Py_XDECREF(w);
    Py_XDECREF(future);
    return rc;
}

/* The stdlib's early returns, in its order: 1 if the result is ready (the
 * futures already done satisfy `return_when`), 0 to wait, -1 on error. */
static int
wait_returns_early(cf_state *st, PyObject *return_when, int known, wait_mode mode,
                   PyObject *done, Py_ssize_t ndone, Py_ssize_t n)
{
    if (known && ndone > 0 && mode != MODE_ALL_COMPLETED) {
        int raised = mode == MODE_FIRST_EXCEPTION ? any_raised(st, done) : 1;
        if (raised != 0) {
            return raised;
        }
    }
    if (ndone == n) {
        return 1;
    }
    if (!known) {
        PyErr_Format(PyExc_ValueError, "Invalid return condition: %R", return_when);
        return -1;
    }
    return 0;
}

PyObject *
futures_wait(PyObject *module, PyObject *args, PyObject *kwargs)
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
    PyObject *result = NULL, **items = NULL;
    PyObject *fs = PySet_New(fs_arg);
    PyObject *done = PySet_New(NULL);
    Py_ssize_t n = fs == NULL ? 0 : PySet_GET_SIZE(fs), ndone;
    wait_mode mode = MODE_ALL_COMPLETED;
    int known, early;
    if (fs == NULL || done == NULL || (items = set_members(fs)) == NULL ||
        wait_partition(st, items, n, done, &ndone) < 0 ||
        (known = parse_return_when(st, return_when, &mode)) < 0 ||
        (early = wait_returns_early(st, return_when, known, mode, done, ndone, n)) < 0) {
        goto done;
    }
    if (early || wait_for_pending(st, mode, timeout, items, ndone, n, done) == 0) {
        result = make_result(st, done, fs);
    }
done:
    PyMem_Free(items);
    Py_XDECREF(fs);
    Py_XDECREF(done);
    return result;
}
