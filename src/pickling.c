/* pickling.c — how calls and results become frame payloads (pickling.h):
 * which pickler, the out-of-band buffers set aside for shared memory, the
 * pickle in the pieces its pickler wrote, and split calls.
 */
#include "pickling.h"

#include <string.h>

/* ---- out-of-band buffers ------------------------------------------------ */

/* buffer_callback: keep big buffers (return False: out of band) in the
 * list that is `self`, let small ones stay in the pickle.  A PickleBuffer
 * over bytes or a bytearray stays too: that is one the caller passed
 * itself, and the stdlib's worker receives it as bytes or a bytearray. */
static PyObject *
collect_buffer(PyObject *self, PyObject *buffer)
{
    const Py_buffer *view = PyPickleBuffer_GetBuffer(buffer);
    if (view == NULL) {
        return NULL;
    }
    if (view->len < SHM_BUFFER_MIN || view->obj == NULL || PyBytes_Check(view->obj) ||
        PyByteArray_Check(view->obj)) {
        Py_RETURN_TRUE;
    }
    if (PyList_Append(self, buffer) < 0) {
        return NULL;
    }
    Py_RETURN_FALSE;
}

static PyMethodDef collect_buffer_def = {"collect_buffer", collect_buffer, METH_O, NULL};

/* ---- a pickle in pieces ------------------------------------------------- */

static void
pieces_close(shm_pieces *p)
{
    for (Py_ssize_t k = 0; k < p->count; k++) {
        PyBuffer_Release(&p->views[k]);
    }
    if (p->views != &p->one) {
        PyMem_Free(p->views);
    }
    p->views = NULL;
    p->count = 0;
}

/* 0, or -1 with an exception. */
static int
pieces_open(PyObject *pickled, shm_pieces *p)
{
    int is_list = PyList_CheckExact(pickled);
    Py_ssize_t n = is_list ? PyList_GET_SIZE(pickled) : 1;
    p->views = n == 1 ? &p->one : PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof(Py_buffer));
    p->count = 0;
    p->length = 0;
    if (p->views == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *piece = is_list ? PyList_GET_ITEM(pickled, k) : pickled;
        if (PyObject_GetBuffer(piece, &p->views[k], PyBUF_SIMPLE) < 0) {
            pieces_close(p);
            return -1;
        }
        p->count++;
        p->length += (size_t)p->views[k].len;
    }
    return 0;
}

/* A small pickle, whole, for the pipe: its one piece as it is, or the
 * pieces joined.  0, or -1 with an exception. */
static int
pieces_join(shm_pieces *p, Py_buffer *out)
{
    if (p->count == 1) {
        *out = p->views[0];         /* handed over */
        p->count = 0;
        return 0;
    }
    PyObject *joined = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)p->length);
    if (joined == NULL) {
        return -1;
    }
    shm_pieces_copy(p, (unsigned char *)PyBytes_AS_STRING(joined));
    int rc = PyObject_GetBuffer(joined, out, PyBUF_SIMPLE);
    Py_DECREF(joined);
    return rc;
}

/* ---- which pickler ------------------------------------------------------ */

/* multiprocessing pickles with ForkingPickler: pickle's C Pickler given a
 * dispatch table of its own, copyreg's plus ForkingPickler._extra_reducers
 * (sockets, connections, partials, bound methods, and whatever
 * multiprocessing.reduction.register and libraries such as torch add).
 * Making one costs a Python __init__ that copies that table, a BytesIO and
 * the calls around them: ~4 us of a tiny task's ~5 us of pickling.
 *
 * The C pickler looks in a dispatch table only for types it has no code of
 * its own for.  None, bools, and exact ints, floats, strs, bytes, tuples,
 * lists and dicts never reach the table (nor reducer_override); a function
 * or a class is saved by name before it too.  An object made of those alone
 * therefore pickles to the same bytes with pickle.dumps, which is what
 * pickling_dumps then uses.  A builtin function also qualifies when it belongs
 * to a module (saved by name) and its type is not among the extra reducers;
 * anything else, anything nested deeper or more numerous than a small bound
 * (checking must stay cheaper than what it saves), goes to ForkingPickler.
 * None of these objects makes out-of-band buffers, so pickle.dumps needs no
 * buffer_callback: their big pickles still go to shared memory by size.
 *
 * The equivalence holds for ForkingPickler as multiprocessing defines it.
 * A class dict that changed since it was loaded (a reducer_override or a
 * persistent_id added, __init__ or the tables replaced) turns the shortcut
 * off: every call goes to ForkingPickler again. */
#define PLAIN_DEPTH_MAX 4           /* the call (fn, args, kwargs) is depth 0 */
#define PLAIN_OBJECTS_MAX 256

int
pickling_load(cf_state *st)
{
    if (st->forking_values != NULL) {
        return 0;
    }
    if (cf_import_into(&st->plain_dumps, "_pickle", "dumps") < 0 ||
        cf_import_into(&st->CPickler, "_pickle", "Pickler") < 0 ||
        cf_import_into(&st->ForkingPickler, "multiprocessing.reduction", "ForkingPickler") < 0 ||
        cf_import_into(&st->builtin_import, "builtins", "__import__") < 0 ||
        cf_import_into(&st->extension_registry, "copyreg", "_extension_registry") < 0 ||
        (st->split_pickles == NULL && (st->split_pickles = PyDict_New()) == NULL) ||
        (st->split_callables == NULL && (st->split_callables = PyDict_New()) == NULL)) {
        return -1;
    }
    if (!PyDict_Check(st->extension_registry)) {
        PyErr_SetString(PyExc_TypeError, "cfutures: copyreg._extension_registry is not a dict");
        return -1;
    }
    if (!PyType_Check(st->ForkingPickler)) {
        PyErr_SetString(PyExc_TypeError, "cfutures: ForkingPickler is not a class");
        return -1;
    }
    PyObject *dict = ((PyTypeObject *)st->ForkingPickler)->tp_dict;
    PyObject *names = Py_BuildValue("(sss)", "__init__", "_extra_reducers",
                                    "_copyreg_dispatch_table");
    PyObject *values = names ? PyTuple_New(PyTuple_GET_SIZE(names)) : NULL;
    for (Py_ssize_t k = 0; values != NULL && k < PyTuple_GET_SIZE(names); k++) {
        PyObject *value = PyDict_GetItemWithError(dict, PyTuple_GET_ITEM(names, k));
        if (value == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_AttributeError, "cfutures: ForkingPickler has no %R",
                             PyTuple_GET_ITEM(names, k));
            }
            Py_CLEAR(values);
            break;
        }
        PyTuple_SET_ITEM(values, k, Py_NewRef(value));
    }
    if (values == NULL) {
        Py_XDECREF(names);
        return -1;
    }
    st->forking_names = names;
    st->forking_values = values;
    st->forking_dict_size = PyDict_GET_SIZE(dict);
    return 0;
}

/* Is ForkingPickler as it was loaded?  Its extra reducers in `*extra`
 * (borrowed). */
static int
forking_pickler_unchanged(cf_state *st, PyObject **extra)
{
    PyTypeObject *cls = (PyTypeObject *)st->ForkingPickler;
    PyObject *dict = cls->tp_dict;
    if (cls->tp_base != (PyTypeObject *)st->CPickler ||
        PyDict_GET_SIZE(dict) != st->forking_dict_size) {
        return 0;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(st->forking_names); k++) {
        PyObject *value = PyDict_GetItemWithError(dict, PyTuple_GET_ITEM(st->forking_names, k));
        if (value != PyTuple_GET_ITEM(st->forking_values, k)) {
            PyErr_Clear();
            return 0;
        }
    }
    *extra = PyTuple_GET_ITEM(st->forking_values, 1);
    return PyDict_Check(*extra);
}

/* What plain_enough has seen so far. */
typedef struct {
    Py_ssize_t budget;              /* objects it may still look at */
    Py_ssize_t text;                /* bytes and characters of the strs and bytes */
} plain_walk;

/* Would ForkingPickler pickle `obj` as pickle.dumps does (see above)? */
static int
plain_enough(PyObject *obj, PyObject *extra, int depth, plain_walk *walk)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (--walk->budget < 0) {
        return 0;
    }
    if (type == &PyUnicode_Type || type == &PyBytes_Type) {
        walk->text += type == &PyBytes_Type ? PyBytes_GET_SIZE(obj) : PyUnicode_GET_LENGTH(obj);
        return 1;
    }
    if (obj == Py_None || type == &PyBool_Type || type == &PyLong_Type ||
        type == &PyFloat_Type || type == &PyFunction_Type || type == &PyType_Type) {
        return 1;
    }
    if (type == &PyCFunction_Type) {
        PyObject *self = PyCFunction_GET_SELF(obj);
        int found = PyDict_Contains(extra, (PyObject *)type);
        if (found < 0) {
            PyErr_Clear();
        }
        return found == 0 && (self == NULL || PyModule_CheckExact(self));
    }
    if (depth >= PLAIN_DEPTH_MAX) {
        return 0;
    }
    if (type == &PyTuple_Type || type == &PyList_Type) {
        /* (A list's items are looked at with the GIL held and no call in
         * between: it cannot change under us.) */
        Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        PyObject **items = PySequence_Fast_ITEMS(obj);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!plain_enough(items[i], extra, depth + 1, walk)) {
                return 0;
            }
        }
        return 1;
    }
    if (type == &PyDict_Type) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(obj, &pos, &key, &value)) {
            if (!plain_enough(key, extra, depth + 1, walk) ||
                !plain_enough(value, extra, depth + 1, walk)) {
                return 0;
            }
        }
        return 1;
    }
    return 0;
}

/* The dumps to call for `obj` when `dumps` was asked for; `*text` (if not
 * NULL) the size of its strs and bytes when it is pickle.dumps, else -1. */
static PyObject *
choose_dumps(cf_state *st, PyObject *dumps, PyObject *obj, Py_ssize_t *text)
{
    PyObject *extra;
    plain_walk walk = {PLAIN_OBJECTS_MAX, 0};
    int plain = dumps == st->pickle_dumps && st->forking_values != NULL &&
                forking_pickler_unchanged(st, &extra) && plain_enough(obj, extra, 0, &walk);
    if (text != NULL) {
        *text = plain ? walk.text : -1;
    }
    return plain ? st->plain_dumps : dumps;
}

/* ---- pickling --------------------------------------------------------- */

int
pickling_dumps(cf_state *st, PyObject *dumps, PyObject *obj, shm_frame *out)
{
    out->fd = -1;
    out->split = 0;
    PyObject *buffers = NULL, *collect = NULL, *pickled = NULL;
    shm_pieces pickle = {0};
    int rc = -1;
    Py_ssize_t text;
    /* Big strs and bytes go through multiprocessing's pickler all the
     * same: _forking_dumps hands a big bytes over as it is, uncopied, where
     * pickle.dumps would copy it into its one result first (a 50 MB result
     * went at 1.75x the stdlib's speed that way, 3.0x without). */
    if (choose_dumps(st, dumps, obj, &text) == st->plain_dumps && text < SHM_PICKLE_MIN / 2) {
        PyObject *argv[] = {obj, st->pickle_protocol};
        pickled = PyObject_Vectorcall(st->plain_dumps, argv, 2, NULL);
    }
    else {
        buffers = PyList_New(0);
        collect = buffers ? PyCFunction_New(&collect_buffer_def, buffers) : NULL;
        if (collect != NULL) {
            PyObject *argv[] = {obj, st->pickle_protocol, collect};
            pickled = PyObject_Vectorcall(dumps, argv, 2, st->kwnames_buffer_callback);
        }
    }
    if (pickled == NULL || pieces_open(pickled, &pickle) < 0) {
        goto done;
    }
    if ((buffers == NULL || PyList_GET_SIZE(buffers) == 0) && pickle.length < SHM_PICKLE_MIN) {
        rc = pieces_join(&pickle, &out->payload);   /* the whole frame goes through the pipe */
    }
    else {
        rc = shm_pack(st, &pickle, buffers, out);
    }
done:
    pieces_close(&pickle);
    Py_XDECREF(pickled);
    Py_XDECREF(collect);
    Py_XDECREF(buffers);
    return rc;
}

/* ---- split calls ---------------------------------------------------------- */

/* Bound on the functions either side keeps (all are forgotten past it). */
#define SPLIT_KEPT_MAX 256

/* Drop the error of a look-up (pickling as usual will meet it and say it),
 * unless it is no Exception (Ctrl-C: it stays raised, -1). */
static int
split_drop_error(void)
{
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyErr_Clear();
    return 0;
}

/* Does `module_name`.`qualname` resolve to `fn` as the pickler and
 * find_class would (PyImport_Import, then the attribute path), given that
 * `module` is what the import gave when it was kept?  1 or 0, or -1 with a
 * BaseException that is not an Exception (an attribute look-up may run
 * Python code: a module's __getattr__). */
static int
split_resolves(cf_state *st, PyObject *module_name, PyObject *qualname, PyObject *module,
               PyObject *fn)
{
    /* PyImport_Import calls builtins.__import__, then reads sys.modules. */
    PyObject *builtins = PyEval_GetBuiltins();
    if (builtins == NULL || PyDict_GetItemString(builtins, "__import__") != st->builtin_import ||
        PyDict_GetItemWithError(PyImport_GetModuleDict(), module_name) != module) {
        return split_drop_error();
    }
    PyObject *path = PyUnicode_Split(qualname, st->str_dot, -1);
    PyObject *obj = path ? Py_NewRef(module) : NULL;
    for (Py_ssize_t k = 0; obj != NULL && k < PyList_GET_SIZE(path); k++) {
        PyObject *next = PyObject_GetAttr(obj, PyList_GET_ITEM(path, k));
        Py_SETREF(obj, next);
    }
    int same = obj == fn;
    Py_XDECREF(obj);
    Py_XDECREF(path);
    return split_drop_error() < 0 ? -1 : same;
}

/* The pickle of the module-level Python function `fn`, as pickle.dumps
 * makes it now, from what was kept (borrowed bytes); NULL when it cannot be
 * kept or what was kept no longer holds, without an exception, or with one
 * that is no Exception (Ctrl-C), for the caller to raise. */
static PyObject *
split_fn_pickle(cf_state *st, PyObject *fn)
{
    PyFunctionObject *f = (PyFunctionObject *)fn;
    if (!PyUnicode_CheckExact(f->func_module) || !PyUnicode_CheckExact(f->func_qualname) ||
        PyDict_GET_SIZE(st->extension_registry) != 0) {
        return NULL;
    }
    PyObject *kept = PyDict_GetItemWithError(st->split_pickles, fn);
    if (kept != NULL) {
        /* (pickle, module name, qualname, module), all as pickled then */
        int same = PyTuple_GET_ITEM(kept, 1) == f->func_module &&
                   PyTuple_GET_ITEM(kept, 2) == f->func_qualname;
        same = same ? split_resolves(st, f->func_module, f->func_qualname,
                                     PyTuple_GET_ITEM(kept, 3), fn) : 0;
        if (same == 1) {
            return PyTuple_GET_ITEM(kept, 0);
        }
        if (same == 0 && PyDict_DelItem(st->split_pickles, fn) < 0) {
            PyErr_Clear();
        }
        return NULL;                /* changed: the whole call is pickled as usual */
    }
    if (split_drop_error() < 0) {
        return NULL;
    }
    /* First time: pickled as pickle.dumps does, kept if it resolves. */
    PyObject *argv[] = {fn, st->pickle_protocol};
    PyObject *pickle = PyObject_Vectorcall(st->plain_dumps, argv, 2, NULL);
    PyObject *module = pickle ? PyDict_GetItemWithError(PyImport_GetModuleDict(), f->func_module)
                              : NULL;
    PyObject *entry = NULL, *kept_pickle = NULL;
    if (module != NULL && split_resolves(st, f->func_module, f->func_qualname, module, fn) == 1) {
        entry = PyTuple_Pack(4, pickle, f->func_module, f->func_qualname, module);
    }
    if (entry != NULL && PyDict_GET_SIZE(st->split_pickles) >= SPLIT_KEPT_MAX) {
        PyDict_Clear(st->split_pickles);
    }
    if (entry != NULL && PyDict_SetItem(st->split_pickles, fn, entry) == 0) {
        kept_pickle = pickle;       /* borrowed: the dict's entry holds it */
    }
    Py_XDECREF(entry);
    Py_XDECREF(pickle);
    if (split_drop_error() < 0) {
        return NULL;                /* (kept or not: it stays right) */
    }
    return kept_pickle;
}

int
pickling_dumps_call(cf_state *st, PyObject *dumps, PyObject *call, shm_frame *out)
{
    PyObject *fn = PyTuple_GET_ITEM(call, 0);
    PyObject *fn_pickle = NULL;
    Py_ssize_t text;
    out->split = 0;
    /* A call with big strs or bytes goes whole, to shared memory, pickled
     * once: the split form is for small calls. */
    if (Py_TYPE(fn) == &PyFunction_Type && choose_dumps(st, dumps, call, &text) == st->plain_dumps &&
        text < SHM_PICKLE_MIN / 2) {
        fn_pickle = split_fn_pickle(st, fn);
        if (fn_pickle == NULL && PyErr_Occurred()) {
            return -1;              /* Ctrl-C: the caller's */
        }
    }
    if (fn_pickle == NULL) {
        return pickling_dumps(st, dumps, call, out);
    }
    PyObject *rest_obj = PyTuple_GetSlice(call, 1, 3);
    PyObject *argv[] = {rest_obj, st->pickle_protocol};
    PyObject *rest = rest_obj ? PyObject_Vectorcall(st->plain_dumps, argv, 2, NULL) : NULL;
    Py_XDECREF(rest_obj);
    if (rest == NULL) {
        return -1;
    }
    if (PyBytes_GET_SIZE(rest) >= SHM_PICKLE_MIN) {
        Py_DECREF(rest);
        return pickling_dumps(st, dumps, call, out);     /* big after all: whole, shared */
    }
    Py_ssize_t n1 = PyBytes_GET_SIZE(fn_pickle), n2 = PyBytes_GET_SIZE(rest);
    PyObject *payload = PyBytes_FromStringAndSize(NULL, 4 + n1 + n2);
    int rc = -1;
    if (payload != NULL) {
        unsigned char *at = (unsigned char *)PyBytes_AS_STRING(payload);
        for (int i = 0; i < 4; i++) {
            at[i] = (unsigned char)((uint64_t)n1 >> (8 * i));
        }
        memcpy(at + 4, PyBytes_AS_STRING(fn_pickle), (size_t)n1);
        memcpy(at + 4 + n1, PyBytes_AS_STRING(rest), (size_t)n2);
        rc = PyObject_GetBuffer(payload, &out->payload, PyBUF_SIMPLE);
        out->fd = -1;
        out->split = rc == 0;
    }
    Py_XDECREF(payload);
    Py_DECREF(rest);
    return rc;
}

/* Read a pickle string (SHORT_BINUNICODE, then MEMOIZE) at `*at`. */
static PyObject *
split_read_name(const unsigned char **at, const unsigned char *end)
{
    if (end - *at < 2 || (*at)[0] != 0x8c || end - *at < 3 + (*at)[1] || (*at)[2 + (*at)[1]] != 0x94) {
        return NULL;
    }
    PyObject *name = PyUnicode_DecodeUTF8((const char *)*at + 2, (*at)[1], "strict");
    *at += 3 + (*at)[1];
    return name;
}

/* The module name and qualname a function pickle names, if it has the form
 * pickle.dumps(function, 5) gives (PROTO 5, maybe FRAME, the two names,
 * STACK_GLOBAL, MEMOIZE, STOP): 1, or 0 (then nothing is kept for it). */
static int
split_parse_names(const unsigned char *p, size_t n, PyObject **module_name, PyObject **qualname)
{
    const unsigned char *at = p, *end = p + n;
    *module_name = *qualname = NULL;
    if (n < 2 || at[0] != 0x80 || at[1] != 5) {
        return 0;
    }
    at += 2;
    if (end - at >= 9 && at[0] == 0x95) {
        at += 9;                    /* FRAME and its length */
    }
    *module_name = split_read_name(&at, end);
    *qualname = *module_name ? split_read_name(&at, end) : NULL;
    if (*qualname != NULL && end - at == 3 && at[0] == 0x93 && at[1] == 0x94 && at[2] == '.') {
        return 1;
    }
    Py_CLEAR(*module_name);
    Py_CLEAR(*qualname);
    PyErr_Clear();
    return 0;
}

PyObject *
pickling_split_callable(cf_state *st, const char *payload, size_t length, const char **rest,
                   size_t *rest_length)
{
    const unsigned char *p = (const unsigned char *)payload;
    uint64_t n1 = length < 4 ? UINT64_MAX : (uint64_t)p[0] | (uint64_t)p[1] << 8 |
                                                (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
    if (n1 > length - 4) {
        PyErr_SetString(PyExc_ValueError, "cfutures: malformed split call");
        return NULL;
    }
    *rest = payload + 4 + n1;
    *rest_length = length - 4 - (size_t)n1;
    PyObject *fn = NULL, *module_name = NULL, *qualname = NULL, *entry = NULL;
    PyObject *key = PyBytes_FromStringAndSize(payload + 4, (Py_ssize_t)n1);
    PyObject *kept = key ? PyDict_GetItemWithError(st->split_callables, key) : NULL;
    if (kept != NULL) {
        /* (function, module name, qualname, module): find_class's import
         * and attribute path must still give it; then its audit event. */
        int same = split_resolves(st, PyTuple_GET_ITEM(kept, 1), PyTuple_GET_ITEM(kept, 2),
                                  PyTuple_GET_ITEM(kept, 3), PyTuple_GET_ITEM(kept, 0));
        if (same == 1 && PySys_Audit("pickle.find_class", "OO", PyTuple_GET_ITEM(kept, 1),
                                     PyTuple_GET_ITEM(kept, 2)) == 0) {
            fn = Py_NewRef(PyTuple_GET_ITEM(kept, 0));
        }
        if (same != 0) {
            goto done;              /* found, or an error (Ctrl-C, a hook's) */
        }
        if (PyDict_DelItem(st->split_callables, key) < 0) {
            PyErr_Clear();          /* changed since: unpickled as usual */
        }
    }
    if (key == NULL || PyErr_Occurred()) {
        goto done;
    }
    fn = shm_loads(st, payload + 4, (size_t)n1, -1);
    if (fn == NULL || !split_parse_names((const unsigned char *)payload + 4, (size_t)n1,
                                         &module_name, &qualname)) {
        goto done;
    }
    PyObject *module = PyDict_GetItemWithError(PyImport_GetModuleDict(), module_name);
    if (module != NULL && split_resolves(st, module_name, qualname, module, fn) == 1) {
        entry = PyTuple_Pack(4, fn, module_name, qualname, module);
    }
    if (entry != NULL && PyDict_GET_SIZE(st->split_callables) >= SPLIT_KEPT_MAX) {
        PyDict_Clear(st->split_callables);
    }
    if (entry != NULL && PyDict_SetItem(st->split_callables, key, entry) < 0) {
        PyErr_Clear();              /* not kept: the next one unpickles it too */
    }
    if (split_drop_error() < 0) {
        Py_CLEAR(fn);               /* Ctrl-C while it was looked up */
    }
done:
    Py_XDECREF(entry);
    Py_XDECREF(module_name);
    Py_XDECREF(qualname);
    Py_XDECREF(key);
    return fn;
}
