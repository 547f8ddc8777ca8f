/* module.c — the `cfutures._cfutures` module: definition, state, start-up,
 * and the hooks that concern every pool: interpreter exit and fork.
 *
 * What the C code needs from Python at every import — the stdlib's
 * exception classes, its state names, its logger, threading — is imported
 * here into the module state; the thread and process modules' names wait
 * for their first use (runtime.h).  The module keeps its state per module
 * object, but the extension declares it does not support several
 * interpreters (a few process-wide statics, listed in runtime.h).
 */
#include "cfutures.h"
#include "pool.h"
#include "shm.h"
#include "waiter.h"

/* ---- hooks -------------------------------------------------------------- */

/* In the child of os.fork(): the forking thread is the main thread now, and
 * each pool forgets the parent's workers (pool.h). */
static PyObject *
module_after_fork_child(PyObject *module, PyObject *unused)
{
    (void)unused;
    cf_set_main_thread(PyThread_get_thread_ident());
    pools_after_fork_child(cf_state_of_module(module));
    shm_after_fork_child(cf_state_of_module(module));
    Py_RETURN_NONE;
}

/* Is the program ending by Ctrl-C?  The interpreter printed an uncaught
 * KeyboardInterrupt, and so set sys.last_value, before it exits. */
static int
exit_is_interrupted(void)
{
    PyObject *last = PySys_GetObject("last_value");      /* borrowed */
    return last != NULL && PyErr_GivenExceptionMatches(last, PyExc_KeyboardInterrupt);
}

/* Registered with threading._register_atexit, as the stdlib's two
 * _python_exit: no new work; every pool finishes what it accepted — unless
 * Ctrl-C ends the program: then what has not started is cancelled, and a
 * process pool's running tasks get a short grace; their threads are joined
 * before the interpreter joins its other threads. */
static PyObject *
module_python_exit(PyObject *module, PyObject *unused)
{
    (void)unused;
    cf_state *st = cf_state_of_module(module);
    st->interpreter_exiting = 1;
    st->exit_interrupted = exit_is_interrupted();
    pools_python_exit(st);
    if (st->threads_queues != NULL && cf_join_threads(st->threads_queues) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
module_adopt_future_class(PyObject *module, PyObject *cls)
{
    if (future_adopt_public_class(cf_state_of_module(module), cls) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- start-up ----------------------------------------------------------- */

static int
module_import_names(cf_state *st)
{
    static const char *const state_names[CF_NSTATES] = {
        "PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED",
    };
    const char *base = "concurrent.futures._base";
    if (cf_import_into(&st->stdlib_future_class, base, "Future") < 0 ||
        cf_import_into(&st->CancelledError, base, "CancelledError") < 0 ||
        cf_import_into(&st->TimeoutError, base, "TimeoutError") < 0 ||
        cf_import_into(&st->InvalidStateError, base, "InvalidStateError") < 0 ||
        cf_import_into(&st->DoneAndNotDoneFutures, base, "DoneAndNotDoneFutures") < 0 ||
        cf_import_into(&st->logger, base, "LOGGER") < 0 ||
        cf_import_into(&st->FIRST_COMPLETED, base, "FIRST_COMPLETED") < 0 ||
        cf_import_into(&st->FIRST_EXCEPTION, base, "FIRST_EXCEPTION") < 0 ||
        cf_import_into(&st->ALL_COMPLETED, base, "ALL_COMPLETED") < 0 ||
        cf_import_into(&st->stdlib_wait, base, "wait") < 0 ||
        cf_import_into(&st->stdlib_as_completed, base, "as_completed") < 0 ||
        (st->threading = PyImport_ImportModule("threading")) == NULL ||
        (st->str_get_ident = PyUnicode_InternFromString("get_ident")) == NULL ||
        (st->str_dot = PyUnicode_InternFromString(".")) == NULL ||
        (st->empty_dict = PyDict_New()) == NULL) {
        return -1;
    }
    for (int i = 0; i < CF_NSTATES; i++) {
        if (cf_import_into(&st->state_names[i], base, state_names[i]) < 0) {
            return -1;
        }
    }
    /* map() follows the running stdlib: from 3.10 its iterator cancels the
     * future whose result() failed (_base._result_or_cancel). */
    PyObject *base_module = PyImport_ImportModule(base);
    if (base_module == NULL) {
        return -1;
    }
    st->map_cancels_popped = PyObject_HasAttrString(base_module, "_result_or_cancel");
    Py_DECREF(base_module);
    return 0;
}

/* `module.<function>` handed to `registrar` (a callable) with kwargs. */
static int
register_hook(PyObject *module, const char *function, PyObject *registrar, PyObject *kwargs_of)
{
    PyObject *hook = PyObject_GetAttrString(module, function);
    PyObject *r = NULL;
    if (hook != NULL && kwargs_of == NULL) {
        r = PyObject_CallOneArg(registrar, hook);
    }
    else if (hook != NULL) {
        PyObject *kwargs = Py_BuildValue("{sO}", PyUnicode_AsUTF8(kwargs_of), hook);
        PyObject *noargs = kwargs ? PyTuple_New(0) : NULL;
        r = noargs ? PyObject_Call(registrar, noargs, kwargs) : NULL;
        Py_XDECREF(kwargs);
        Py_XDECREF(noargs);
    }
    Py_XDECREF(hook);
    return cf_consume(r);
}

/* The main thread (it runs signal handlers, so its waits wake up to let
 * them run; it need not be the thread importing us), the fork hook, the
 * interpreter-exit hook. */
static int
module_register_hooks(PyObject *module, cf_state *st)
{
    PyObject *main_thread = PyObject_CallMethod(st->threading, "main_thread", NULL);
    PyObject *ident = main_thread ? PyObject_GetAttrString(main_thread, "ident") : NULL;
    Py_XDECREF(main_thread);
    if (ident == NULL) {
        return -1;
    }
    cf_set_main_thread(PyLong_AsUnsignedLong(ident));
    Py_DECREF(ident);
    PyObject *os = PyErr_Occurred() ? NULL : PyImport_ImportModule("os");
    PyObject *register_at_fork = os ? PyObject_GetAttrString(os, "register_at_fork") : NULL;
    PyObject *after_in_child = register_at_fork ? PyUnicode_FromString("after_in_child") : NULL;
    PyObject *register_atexit = after_in_child
                                    ? PyObject_GetAttrString(st->threading, "_register_atexit")
                                    : NULL;
    int rc = register_atexit == NULL ||
                     register_hook(module, "_after_fork_child", register_at_fork,
                                   after_in_child) < 0 ||
                     register_hook(module, "_python_exit", register_atexit, NULL) < 0
                 ? -1
                 : 0;
    Py_XDECREF(os);
    Py_XDECREF(register_at_fork);
    Py_XDECREF(after_in_child);
    Py_XDECREF(register_atexit);
    return rc;
}

static int
module_exec(PyObject *module)
{
    cf_state *st = cf_state_of_module(module);
    if (module_import_names(st) < 0 || future_module_init(module, st) < 0 ||
        waiter_type_init(module, st) < 0 || as_completed_type_init(module, st) < 0 ||
        executor_module_init(module, st) < 0 || tpool_module_init(module, st) < 0 ||
        ppool_module_init(module, st) < 0 || process_worker_module_init(module, st) < 0 ||
        shm_module_init(module, st) < 0) {
        return -1;
    }
    return module_register_hooks(module, st);
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    cf_state *st = cf_state_of_module(module);
    Py_VISIT(st->FutureType);
    Py_VISIT(st->WaiterType);
    Py_VISIT(st->AsCompletedType);
    Py_VISIT(st->PoolCoreType);
    Py_VISIT(st->ProcessPoolType);
    Py_VISIT(st->process_pool_io);
    Py_VISIT(st->BrokenProcessPool);
    Py_VISIT(st->ExceptionWithTraceback);
    Py_VISIT(st->RemoteTraceback);
    Py_VISIT(st->format_exception);
    Py_VISIT(st->pickle_dumps);
    Py_VISIT(st->pickle_loads);
    Py_VISIT(st->plain_dumps);
    Py_VISIT(st->ForkingPickler);
    Py_VISIT(st->CPickler);
    Py_VISIT(st->forking_names);
    Py_VISIT(st->forking_values);
    Py_VISIT(st->builtin_import);
    Py_VISIT(st->extension_registry);
    Py_VISIT(st->split_pickles);
    Py_VISIT(st->split_callables);
    Py_VISIT(st->SharedMappingType);
    Py_VISIT(st->pickle_protocol);
    Py_VISIT(st->kwnames_buffer_callback);
    Py_VISIT(st->kwnames_buffers);
    Py_VISIT(st->empty_dict);
    Py_VISIT(st->ExecutorType);
    Py_VISIT(st->MapIteratorType);
    Py_VISIT(st->WorkQueueType);
    Py_VISIT(st->ThreadPoolType);
    Py_VISIT(st->thread_worker);
    Py_VISIT(st->threads_queues);
    Py_VISIT(st->BrokenThreadPool);
    Py_VISIT(st->stdlib_wait);
    Py_VISIT(st->public_future_class);
    Py_VISIT(st->stdlib_future_class);
    Py_VISIT(st->CancelledError);
    Py_VISIT(st->TimeoutError);
    Py_VISIT(st->InvalidStateError);
    Py_VISIT(st->DoneAndNotDoneFutures);
    Py_VISIT(st->logger);
    Py_VISIT(st->stdlib_as_completed);
    Py_VISIT(st->threading);
    Py_VISIT(st->str_get_ident);
    Py_VISIT(st->str_dot);
    for (int i = 0; i < CF_NSTATES; i++) {
        Py_VISIT(st->state_names[i]);
    }
    Py_VISIT(st->FIRST_COMPLETED);
    Py_VISIT(st->FIRST_EXCEPTION);
    Py_VISIT(st->ALL_COMPLETED);
    return 0;
}

static int
module_clear(PyObject *module)
{
    cf_state *st = cf_state_of_module(module);
    pools_detach(st);
    Py_CLEAR(st->FutureType);
    Py_CLEAR(st->WaiterType);
    Py_CLEAR(st->AsCompletedType);
    Py_CLEAR(st->PoolCoreType);
    Py_CLEAR(st->ProcessPoolType);
    Py_CLEAR(st->process_pool_io);
    Py_CLEAR(st->BrokenProcessPool);
    Py_CLEAR(st->ExceptionWithTraceback);
    Py_CLEAR(st->RemoteTraceback);
    Py_CLEAR(st->format_exception);
    Py_CLEAR(st->pickle_dumps);
    Py_CLEAR(st->pickle_loads);
    Py_CLEAR(st->plain_dumps);
    Py_CLEAR(st->ForkingPickler);
    Py_CLEAR(st->CPickler);
    Py_CLEAR(st->forking_names);
    Py_CLEAR(st->forking_values);
    Py_CLEAR(st->builtin_import);
    Py_CLEAR(st->extension_registry);
    Py_CLEAR(st->split_pickles);
    Py_CLEAR(st->split_callables);
    Py_CLEAR(st->SharedMappingType);
    Py_CLEAR(st->pickle_protocol);
    Py_CLEAR(st->kwnames_buffer_callback);
    Py_CLEAR(st->kwnames_buffers);
    Py_CLEAR(st->empty_dict);
    Py_CLEAR(st->ExecutorType);
    Py_CLEAR(st->MapIteratorType);
    Py_CLEAR(st->WorkQueueType);
    Py_CLEAR(st->ThreadPoolType);
    Py_CLEAR(st->thread_worker);
    Py_CLEAR(st->threads_queues);
    Py_CLEAR(st->BrokenThreadPool);
    Py_CLEAR(st->stdlib_wait);
    Py_CLEAR(st->public_future_class);
    Py_CLEAR(st->stdlib_future_class);
    Py_CLEAR(st->CancelledError);
    Py_CLEAR(st->TimeoutError);
    Py_CLEAR(st->InvalidStateError);
    Py_CLEAR(st->DoneAndNotDoneFutures);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->stdlib_as_completed);
    Py_CLEAR(st->threading);
    Py_CLEAR(st->str_get_ident);
    Py_CLEAR(st->str_dot);
    for (int i = 0; i < CF_NSTATES; i++) {
        Py_CLEAR(st->state_names[i]);
    }
    Py_CLEAR(st->FIRST_COMPLETED);
    Py_CLEAR(st->FIRST_EXCEPTION);
    Py_CLEAR(st->ALL_COMPLETED);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
    shm_module_free(cf_state_of_module((PyObject *)module));
}

static PyMethodDef module_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))futures_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(fs, timeout=None, return_when='ALL_COMPLETED')\n--\n\n"
     "Wait for the futures in the given sequence to complete.\n\n"
     "Args:\n"
     "    fs: The sequence of Futures (possibly created by different Executors)\n"
     "        to wait upon.\n"
     "    timeout: The maximum number of seconds to wait.  If None, then there\n"
     "        is no limit on the wait time.\n"
     "    return_when: Indicates when this function should return.  The options\n"
     "        are:\n\n"
     "        FIRST_COMPLETED - Return when any future finishes or is\n"
     "                          cancelled.\n"
     "        FIRST_EXCEPTION - Return when any future finishes by raising an\n"
     "                          exception.  If no future raises an exception\n"
     "                          then it is equivalent to ALL_COMPLETED.\n"
     "        ALL_COMPLETED -   Return when all futures finish or are cancelled.\n\n"
     "Returns:\n"
     "    A named 2-tuple of sets.  The first set, named 'done', contains the\n"
     "    futures that completed (is finished or cancelled) before the wait\n"
     "    completed.  The second set, named 'not_done', contains uncompleted\n"
     "    futures.  Duplicate futures given to *fs* are removed and will be\n"
     "    returned only once."},
    {"as_completed", (PyCFunction)(void (*)(void))futures_as_completed,
     METH_VARARGS | METH_KEYWORDS,
     "as_completed(fs, timeout=None)\n--\n\n"
     "An iterator over the given futures that yields each as it completes.\n\n"
     "Args:\n"
     "    fs: The sequence of Futures (possibly created by different Executors)\n"
     "        to iterate over.\n"
     "    timeout: The maximum number of seconds to wait.  If None, then there\n"
     "        is no limit on the wait time.\n\n"
     "Returns:\n"
     "    An iterator that yields the given Futures as they complete (finished\n"
     "    or cancelled).  If any given Futures are duplicated, they will be\n"
     "    returned once.\n\n"
     "Raises:\n"
     "    TimeoutError: If the entire result iterator could not be generated\n"
     "        before the given timeout."},
    {"_after_fork_child", module_after_fork_child, METH_NOARGS, NULL},
    {"_python_exit", module_python_exit, METH_NOARGS,
     "Internal: every pool winds down at interpreter exit; their threads are joined."},
    {"_adopt_future_class", module_adopt_future_class, METH_O,
     "Register the package's public Future class (called once by cfutures)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if CF_PY312_PLUS
    /* Process-wide statics (runtime.h): one interpreter only. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

PyModuleDef cf_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cfutures._cfutures",
    .m_doc = "The native core of cfutures.",
    .m_size = sizeof(cf_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__cfutures(void);      /* the one symbol the module exports */

PyMODINIT_FUNC
PyInit__cfutures(void)
{
    return PyModuleDef_Init(&cf_module_def);
}
