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
