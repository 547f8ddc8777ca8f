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
