/* runtime.c — the helpers every C file may use; see runtime.h. */
#include "cfutures.h"

#if !CF_PY311_PLUS
/* PyType_GetModuleByDef arrived in 3.11: walk the MRO for a heap type that
 * was created from our module. */
PyObject *
cf_type_get_module_by_def(PyTypeObject *type, PyModuleDef *def)
{
    PyObject *mro = type->tp_mro;
    for (Py_ssize_t i = 0; mro != NULL && i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!PyType_HasFeature(base, Py_TPFLAGS_HEAPTYPE)) {
            continue;
        }
        PyObject *module = ((PyHeapTypeObject *)base)->ht_module;
        if (module != NULL && PyModule_GetDef(module) == def) {
            return module;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "PyType_GetModuleByDef: No superclass of '%s' has the given module",
                 type->tp_name);
    return NULL;
}
#endif

/* ---- errors ------------------------------------------------------------- */

PyObject *
cf_error_with_cause(PyObject *cls, const char *message, PyObject *cause)
{
    PyObject *error = PyObject_CallFunction(cls, "s", message);
    if (error != NULL && cause != NULL) {
        PyException_SetCause(error, cause);     /* steals */
        cause = NULL;
    }
    Py_XDECREF(cause);
    return error;
}

/* ---- logging ------------------------------------------------------------ */

int
cf_log(cf_state *st, const char *level, PyObject *args, PyObject *exc_info)
{
    PyObject *kwargs = NULL, *method = NULL, *r = NULL;
    if (args == NULL) {
        goto done;
    }
    kwargs = exc_info ? Py_BuildValue("{sO}", "exc_info", exc_info) : PyDict_New();
    method = kwargs ? PyObject_GetAttrString(st->logger, level) : NULL;
    r = method ? PyObject_Call(method, args, kwargs) : NULL;
done:
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(method);
    return cf_consume(r);
}

void
cf_log_critical(cf_state *st, const char *message, PyObject *exc)
{
    if (cf_log(st, "critical", Py_BuildValue("(s)", message), exc ? exc : Py_True) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

/* ---- a ring of objects -------------------------------------------------- */

int
cf_ring_push(cf_ring *r, PyObject *item)
{
    if (r->count == r->capacity && cf_ring_reserve(r, r->capacity ? 2 * r->capacity : 16) < 0) {
        Py_DECREF(item);
        return -1;
    }
    r->items[(r->head + r->count) % r->capacity] = item;
    r->count++;
    return 0;
}

int
cf_ring_reserve(cf_ring *r, Py_ssize_t capacity)
{
    if (capacity <= r->capacity) {
        return 0;
    }
    PyObject **items = PyMem_Malloc((size_t)capacity * sizeof(PyObject *));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < r->count; i++) {
        items[i] = cf_ring_at(r, i);
    }
    PyMem_Free(r->items);
    r->items = items;
    r->capacity = capacity;
    r->head = 0;
    return 0;
}

PyObject *
cf_ring_pop_oldest(cf_ring *r)
{
    if (r->count == 0) {
        return NULL;
    }
    PyObject *item = r->items[r->head];
    r->head = (r->head + 1) % r->capacity;
    r->count--;
    return item;
}

PyObject *
cf_ring_pop_newest(cf_ring *r)
{
    if (r->count == 0) {
        return NULL;
    }
    r->count--;
    return cf_ring_at(r, r->count);
}

void
cf_ring_clear(cf_ring *r)
{
    PyObject *item;
    while ((item = cf_ring_pop_oldest(r)) != NULL) {
        Py_DECREF(item);
    }
    PyMem_Free(r->items);
    r->items = NULL;
    r->capacity = r->head = 0;
}

/* ---- the stdlib's `_condition` ------------------------------------------ */

PyObject *
cf_condition_enter(PyObject *condition)
{
    Py_INCREF(condition);
    if (cf_consume(PyObject_CallMethod(condition, "acquire", NULL)) < 0) {
        Py_DECREF(condition);
        return NULL;
    }
    return condition;
}

int
cf_condition_exit(PyObject *condition, int notify)
{
    PyObject *pending_error = cf_err_take();
    int failed = 0;
    if (notify && pending_error == NULL) {
        failed |= cf_consume(PyObject_CallMethod(condition, "notify_all", NULL)) < 0;
    }
    failed |= cf_consume(PyObject_CallMethod(condition, "release", NULL)) < 0;
    Py_DECREF(condition);
    if (pending_error != NULL) {
        if (failed) {
            PyErr_Clear();
        }
        cf_err_restore(pending_error);
        return -1;
    }
    return failed ? -1 : 0;
}

/* ---- C iterators that call back into Python ----------------------------- */

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

/* ---- green threads ------------------------------------------------------ */

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
    return cf_consume(r);
}

PyObject *
cf_threading_attr(cf_state *st, const char *name)
{
    return PyObject_GetAttrString(st->threading, name);
}

/* ---- threads ----------------------------------------------------------- */

int
cf_join_threads(PyObject *threads)
{
    PyObject *snapshot = PySequence_List(threads);
    if (snapshot == NULL) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(snapshot); i++) {
        rc = cf_consume(PyObject_CallMethod(PyList_GET_ITEM(snapshot, i), "join", NULL));
    }
    Py_DECREF(snapshot);
    return rc;
}

/* ---- the stdlib's names, imported at first use -------------------------- */

int
cf_import_into(PyObject **slot, const char *modname, const char *name)
{
    PyObject *mod = PyImport_ImportModule(modname);
    PyObject *value = mod ? PyObject_GetAttrString(mod, name) : NULL;
    Py_XDECREF(mod);
    Py_XSETREF(*slot, value);
    return value == NULL ? -1 : 0;
}

int
cf_load_thread_names(cf_state *st)
{
    if (st->threads_queues != NULL) {
        return 0;
    }
    PyObject *weak_key_dict = NULL;
    int rc = -1;
    if (cf_import_into(&st->BrokenThreadPool, "concurrent.futures.thread",
                       "BrokenThreadPool") == 0 &&
        cf_import_into(&weak_key_dict, "weakref", "WeakKeyDictionary") == 0) {
        st->threads_queues = PyObject_CallNoArgs(weak_key_dict);
        rc = st->threads_queues == NULL ? -1 : 0;
    }
    Py_XDECREF(weak_key_dict);
    return rc;
}

int
cf_load_process_names(cf_state *st)
{
    if (st->pickle_dumps != NULL) {
        return 0;
    }
    const char *process = "concurrent.futures.process";
    int rc = -1;
    if (cf_load_thread_names(st) == 0 &&
        cf_import_into(&st->BrokenProcessPool, process, "BrokenProcessPool") == 0 &&
        cf_import_into(&st->ExceptionWithTraceback, process, "_ExceptionWithTraceback") == 0 &&
        cf_import_into(&st->RemoteTraceback, process, "_RemoteTraceback") == 0 &&
        cf_import_into(&st->format_exception, "traceback", "format_exception") == 0 &&
        cf_import_into(&st->pickle_loads, "pickle", "loads") == 0 &&
        cf_import_into(&st->pickle_dumps, "cfutures.process", "_forking_dumps") == 0) {
        rc = 0;
    }
    return rc;
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
