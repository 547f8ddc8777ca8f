/* runtime.c — small helpers every other file may use: generator-like error
 * handling for the C iterators, and green threads.
 */
#include "cfutures.h"

void
cf_generator_error_exit(void)
{
    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) {
        return;
    }
    /* As a generator's body raising StopIteration (PEP 479). */
    PyObject *stop = cf_err_take();
    PyErr_SetString(PyExc_RuntimeError, "generator raised StopIteration");
    PyObject *error = cf_err_take();
    PyException_SetContext(error, Py_NewRef(stop));
    PyException_SetCause(error, stop);          /* steals */
    cf_err_restore(error);
}

int
cf_threads_are_green(cf_state *st)
{
    /* gevent and eventlet replace threading.get_ident, a C function, by a
     * Python function of theirs; nothing else does. */
    PyObject *get_ident = PyDict_GetItemWithError(PyModule_GetDict(st->threading),
                                                  st->str_get_ident);     /* borrowed */
    if (get_ident == NULL) {
        PyErr_Clear();
        return 0;
    }
    return !PyCFunction_Check(get_ident);
}

int
cf_green_sleep(double seconds)
{
    PyObject *time = PyImport_ImportModule("time");
    PyObject *r = time ? PyObject_CallMethod(time, "sleep", "d", seconds) : NULL;
    Py_XDECREF(time);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

PyObject *
cf_threading_attr(cf_state *st, const char *name)
{
    return PyObject_GetAttrString(st->threading, name);
}

/* ---- arguments ---------------------------------------------------------- */

/* The TypeError a Python method `qualname(self, <names>)` gives for a bad
 * call.  Always -1. */
static int
bad_call(const char *qualname, const char *const *names, Py_ssize_t nnames,
         Py_ssize_t nrequired, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t missing,
         Py_ssize_t duplicate, PyObject *unknown)
{
    if (unknown != NULL) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", qualname,
                     unknown);
    }
    else if (duplicate >= 0) {
        PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", qualname,
                     names[duplicate]);
    }
    else if (missing >= 0) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: '%s'",
                     qualname, names[missing]);
    }
    else if (nrequired == nnames) {       /* self is counted, as Python does */
        PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s but %zd were given",
                     qualname, nnames + 1, nnames == 0 ? "" : "s", nargs + 1);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from %zd to %zd positional arguments but %zd were given",
                     qualname, nrequired + 1, nnames + 1, nargs + 1);
    }
    (void)kwnames;
    return -1;
}

int
cf_parse_method_args(const char *qualname, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, const char *const *names, Py_ssize_t nnames,
                     Py_ssize_t nrequired, PyObject **values)
{
    if (nargs > nnames) {
        return bad_call(qualname, names, nnames, nrequired, nargs, kwnames, -1, -1, NULL);
    }
    int given[8] = {0};
    for (Py_ssize_t i = 0; i < nargs; i++) {
        values[i] = args[i];
        given[i] = 1;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t i = 0;
        while (i < nnames && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            i++;
        }
        if (i == nnames) {
            return bad_call(qualname, names, nnames, nrequired, nargs, kwnames, -1, -1, key);
        }
        if (given[i]) {
            return bad_call(qualname, names, nnames, nrequired, nargs, kwnames, -1, i, NULL);
        }
        values[i] = args[nargs + k];
        given[i] = 1;
    }
    for (Py_ssize_t i = 0; i < nrequired; i++) {
        if (!given[i]) {
            return bad_call(qualname, names, nnames, nrequired, nargs, kwnames, i, -1, NULL);
        }
    }
    return 0;
}
