/* pickling.h — how calls and results become frame payloads, and which
 * pickler makes them.
 *
 * Calls and results are pickled with protocol 5.  multiprocessing's
 * pickler (ForkingPickler) is replaced by the C pickle.dumps where both give
 * the same bytes; big out-of-band buffers are set aside for shared memory
 * (shm.h); a module-level function's call goes split, its function's
 * pickle kept on both sides.
 */
#ifndef CF_PICKLING_H
#define CF_PICKLING_H

#include "shm.h"

/* Pickle `obj` with `dumps(obj, 5, buffer_callback=...)` into `out`; when
 * `dumps` is multiprocessing's (st->pickle_dumps) and `obj` is made of what
 * ForkingPickler pickles as pickle does, with the C pickle.dumps instead
 * (pickling.c: which pickler).  0, or -1 with the exception dumps (or the memfd)
 * raised.  On success the caller owns out->payload (PyBuffer_Release) and
 * out->fd (close, or shm_send_fd and close). */
int pickling_dumps(cf_state *st, PyObject *dumps, PyObject *obj, shm_frame *out);

/* Import what pickling_dumps chooses its pickler with (once; the parent's pool
 * and the worker call it at their start).  0, or -1 with an exception. */
int pickling_load(cf_state *st);

/* Split calls.  Pickling a module-level function by name costs a tiny
 * task's parent ~0.9 us (an import call and attribute look-ups), finding
 * it again its worker as much.  A plain call (see pickling_dumps) of such a
 * function goes split: the function's pickle, made once and kept per
 * function, then the pickle of (args, kwargs); the worker keeps what each
 * function pickle gave.  Either side uses what it kept only after doing
 * the checks the pickler would (the function's __module__ and __qualname__,
 * builtins.__import__, sys.modules, the attribute path, copyreg's
 * extension registry) and finding the same objects; the worker also raises
 * the pickle.find_class audit event.  Otherwise it pickles or unpickles as
 * usual, errors included. */

/* Pickle the call (fn, args, kwargs) into `out` as pickling_dumps does, split
 * (out->split) when it is a plain call of a module-level function with a
 * small pickle.  Same contract as pickling_dumps. */
int pickling_dumps_call(cf_state *st, PyObject *dumps, PyObject *call, shm_frame *out);

/* The callable of a split call (new reference), or NULL with the exception
 * unpickling it raised.  `*rest` and `*rest_length` say where the pickle of
 * (args, kwargs) is. */
PyObject *pickling_split_callable(cf_state *st, const char *payload, size_t length,
                             const char **rest, size_t *rest_length);

#endif /* CF_PICKLING_H */
