/* module.c — the `cfutures._cfutures` module: definition, state, start-up.
 *
 * Everything the C code needs from Python — the stdlib's exception classes,
 * its state names, its logger, threading.Condition — is imported once here
 * into the module state, so the rest never imports at run time.
 */
#include "cfutures.h"
#include "waiter.h"
#include "pool.h"


static PyObject *
module_after_fork_child(PyObject *module, PyObject *unused)
{
    (void)unused;
    cf_set_main_thread(PyThread_get_thread_ident());
    tpool_after_fork_child();
    pools_after_fork_child(cf_state_of_module(module));
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

static int
module_exec(PyObject *module)
{
    cf_state *st = cf_state_of_module(module);
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
        (st->str_get_ident = PyUnicode_InternFromString("get_ident")) == NULL) {
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
    if ((st->empty_dict = PyDict_New()) == NULL) {
        return -1;
    }
    if (future_module_init(module, st) < 0 || waiter_type_init(module, st) < 0 ||
        as_completed_type_init(module, st) < 0 ||
        executor_module_init(module, st) < 0 || tpool_module_init(module, st) < 0 ||
        ppool_module_init(module, st) < 0 || process_worker_module_init(module, st) < 0) {
        return -1;
    }

    /* The main thread runs signal handlers, so its waits wake up to let them
     * run.  It need not be the thread importing us.  After os.fork() the
     * forking thread is the child's main thread. */
    PyObject *main_thread = PyObject_CallMethod(st->threading, "main_thread", NULL);
    PyObject *ident = main_thread ? PyObject_GetAttrString(main_thread, "ident") : NULL;
    Py_XDECREF(main_thread);
    if (ident == NULL) {
        return -1;
    }
    cf_set_main_thread(PyLong_AsUnsignedLong(ident));
    Py_DECREF(ident);
    if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *os = PyImport_ImportModule("os");
    PyObject *hook = os ? PyObject_GetAttrString(module, "_after_fork_child") : NULL;
    PyObject *registered = NULL;
    if (hook != NULL) {
        PyObject *register_at_fork = PyObject_GetAttrString(os, "register_at_fork");
        PyObject *kwargs = register_at_fork ? Py_BuildValue("{sO}", "after_in_child", hook) : NULL;
        PyObject *noargs = kwargs ? PyTuple_New(0) : NULL;
        registered = noargs ? PyObject_Call(register_at_fork, noargs, kwargs) : NULL;
        Py_XDECREF(register_at_fork);
        Py_XDECREF(kwargs);
        Py_XDECREF(noargs);
    }
    Py_XDECREF(os);
    Py_XDECREF(hook);
    if (registered == NULL) {
        return -1;
    }
    Py_DECREF(registered);
    return 0;
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
    Py_VISIT(st->empty_dict);
    Py_VISIT(st->ExecutorType);
    Py_VISIT(st->MapIteratorType);
    Py_VISIT(st->WorkQueueType);
    Py_VISIT(st->ThreadPoolType);
    Py_VISIT(st->thread_pool_submit_descr);
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
    Py_CLEAR(st->empty_dict);
    Py_CLEAR(st->ExecutorType);
    Py_CLEAR(st->MapIteratorType);
    Py_CLEAR(st->WorkQueueType);
    Py_CLEAR(st->ThreadPoolType);
    Py_CLEAR(st->thread_pool_submit_descr);
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
    {"_adopt_future_class", module_adopt_future_class, METH_O,
     "Register the package's public Future class (called once by cfutures)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
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

PyMODINIT_FUNC
PyInit__cfutures(void)
{
    return PyModuleDef_Init(&cf_module_def);
}
