/* future_attrs.c — what a Future shows of itself: repr(), _get_snapshot(),
 * and the stdlib's private attributes that concurrent.futures' own wait()
 * and as_completed() and code in the wild read and write: `_state`,
 * `_result`, `_exception`, `_waiters`, `_done_callbacks`, `_condition`.
 */
#include "future.h"

#include <stddef.h>

static const char *const state_descriptions[CF_NSTATES] = {
    "pending", "running", "cancelled", "cancelled", "finished",
};


/* The name `obj.__class__.__name__` would give: tp_name after its last dot. */
static const char *
type_short_name(PyTypeObject *type)
{
    const char *dot = strrchr(type->tp_name, '.');
    return dot == NULL ? type->tp_name : dot + 1;
}


static PyObject *
future_state_name(FutureObject *self)
{
    cf_state *st = cf_state_of_type(Py_TYPE(self));
    return st == NULL ? NULL : Py_NewRef(st->state_names[self->state]);
}


PyObject *
future_repr(PyObject *op)
{
    FutureObject *self = (FutureObject *)op;
    const char *name = type_short_name(Py_TYPE(op));
    const char *state = state_descriptions[self->state];
    if (self->state != CF_FINISHED) {
        return PyUnicode_FromFormat("<%s at %p state=%s>", name, op, state);
    }
    int raised = self->exception != NULL ? PyObject_IsTrue(self->exception) : 0;
    if (raised < 0) {
        return NULL;
    }
    if (raised) {
        return PyUnicode_FromFormat("<%s at %p state=%s raised %s>", name, op, state,
                                    type_short_name(Py_TYPE(self->exception)));
    }
    PyObject *result = self->result != NULL ? self->result : Py_None;
    return PyUnicode_FromFormat("<%s at %p state=%s returned %s>", name, op, state,
                                type_short_name(Py_TYPE(result)));
}


/* asyncio (3.15+) reads a finished future through this in one call. */
PyObject *
future_get_snapshot(PyObject *op, PyObject *unused)
{
    (void)unused;
    FutureObject *self = (FutureObject *)op;
    if (self->state == CF_FINISHED) {
        return Py_BuildValue("(OOOO)", Py_True, Py_False,
                             self->result ? self->result : Py_None,
                             self->exception ? self->exception : Py_None);
    }
    if (future_is_cancelled(self)) {
        return Py_BuildValue("(OOOO)", Py_True, Py_True, Py_None, Py_None);
    }
    return Py_BuildValue("(OOOO)", Py_False, Py_False, Py_None, Py_None);
}


/* ---- attributes of the stdlib's private protocol ------------------------ */

static PyObject *
future_get_state(PyObject *op, void *closure)
{
    (void)closure;
    return future_state_name((FutureObject *)op);
}

static int
future_set_state(PyObject *op, PyObject *value, void *closure)
{
    (void)closure;
    FutureObject *self = (FutureObject *)op;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _state");
        return -1;
    }
    cf_state *st = cf_state_of_type(Py_TYPE(op));
    if (st == NULL) {
        return -1;
    }
    for (int i = 0; i < CF_NSTATES; i++) {
        int equal = PyObject_RichCompareBool(value, st->state_names[i], Py_EQ);
        if (equal < 0) {
            return -1;
        }
        if (equal) {
            self->state = (unsigned char)i;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown future state: %R", value);
    return -1;
}

/* _result and _exception: the field's offset is the closure. */
static PyObject *
future_get_field(PyObject *op, void *offset)
{
    PyObject *value = *(PyObject **)((char *)op + (size_t)offset);
    return Py_NewRef(value != NULL ? value : Py_None);
}

static int
future_set_field(PyObject *op, PyObject *value, void *offset)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete this attribute");
        return -1;
    }
    PyObject **slot = (PyObject **)((char *)op + (size_t)offset);
    Py_XSETREF(*slot, value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

/* _waiters and _done_callbacks: lists created the first time they are read. */
static PyObject *
future_get_list(PyObject *op, void *offset)
{
    PyObject **slot = (PyObject **)((char *)op + (size_t)offset);
    if (*slot == NULL) {
        PyObject *list = PyList_New(0);     /* may run Python code (the GC) */
        if (list == NULL) {
            return NULL;
        }
        if (*slot == NULL) {
            *slot = list;
        }
        else {
            Py_DECREF(list);
        }
    }
    return Py_NewRef(*slot);
}

static int
future_set_list(PyObject *op, PyObject *value, void *offset)
{
    if (value == NULL || !PyList_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "this attribute must be a list");
        return -1;
    }
    PyObject **slot = (PyObject **)((char *)op + (size_t)offset);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

PyObject *
future_get_condition(PyObject *op, void *closure)
{
    (void)closure;
    FutureObject *self = (FutureObject *)op;
    if (self->condition == NULL) {
        cf_state *st = cf_state_of_type(Py_TYPE(op));
        /* threading.Condition as it is now: a green one once patched. */
        PyObject *condition_class = st == NULL ? NULL : cf_threading_attr(st, "Condition");
        PyObject *condition = condition_class ? PyObject_CallNoArgs(condition_class) : NULL;
        Py_XDECREF(condition_class);
        if (condition == NULL) {
            return NULL;
        }
        /* Creating it ran Python code: another thread may have won. */
        if (self->condition == NULL) {
            self->condition = condition;
        }
        else {
            Py_DECREF(condition);
        }
    }
    return Py_NewRef(self->condition);
}

static int
future_set_condition(PyObject *op, PyObject *value, void *closure)
{
    (void)closure;
    FutureObject *self = (FutureObject *)op;
    Py_XSETREF(self->condition, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    self->condition_foreign = self->condition != NULL;
    return 0;
}

#define FIELD(name) ((void *)offsetof(FutureObject, name))

PyGetSetDef future_getset[] = {
    {"_state", future_get_state, future_set_state, NULL, NULL},
    {"_result", future_get_field, future_set_field, NULL, FIELD(result)},
    {"_exception", future_get_field, future_set_field, NULL, FIELD(exception)},
    {"_waiters", future_get_list, future_set_list, NULL, FIELD(py_waiters)},
    {"_done_callbacks", future_get_list, future_set_list, NULL, FIELD(callbacks)},
    {"_condition", future_get_condition, future_set_condition, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

