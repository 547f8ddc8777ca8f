/* future.h — what the Future's three files share: future.c (the type, its
 * state transitions and waiting), future_callbacks.c (done-callbacks) and
 * future_attrs.c (repr and the stdlib's private attributes).
 */
#ifndef CF_FUTURE_H
#define CF_FUTURE_H

#include "cfutures.h"

static inline int
future_is_cancelled(FutureObject *self)
{
    return self->state == CF_CANCELLED || self->state == CF_CANCELLED_AND_NOTIFIED;
}

static inline int
future_is_done(FutureObject *self)
{
    return future_is_cancelled(self) || self->state == CF_FINISHED;
}

/* future.c: the one argument of `qualname(self, name)`, positional or by
 * keyword; NULL with the TypeError otherwise.  Borrowed. */
PyObject *future_one_arg(const char *qualname, const char *name, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames);

/* future_callbacks.c: the future just finished: run its callbacks now, or,
 * deep in a chain of callbacks, hand them to the outermost level of this
 * thread.  0, or -1 with an error that must propagate (a BaseException). */
int future_run_callbacks(FutureObject *self);
PyObject *future_add_done_callback_method(PyObject *op, PyObject *const *args,
                                          Py_ssize_t nargs, PyObject *kwnames);

/* future_attrs.c */
extern PyGetSetDef future_getset[];
PyObject *future_repr(PyObject *op);
PyObject *future_get_snapshot(PyObject *op, PyObject *unused);
/* `_condition`: created the first time someone asks for it (new reference). */
PyObject *future_get_condition(PyObject *op, void *closure);

#endif /* CF_FUTURE_H */
