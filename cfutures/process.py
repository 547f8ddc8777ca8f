"""cfutures.process — ProcessPoolExecutor, as concurrent.futures.process.

The pool is native (src/process_pool.c, src/process_worker.c): one pair of
pipes per worker process, pickled calls written and results read with the GIL
released, one I/O thread per pool.  What stays in Python is what runs once per
pool or per worker: checking the constructor's arguments exactly as the
stdlib does, starting a worker through the multiprocessing context, so every
start method works, and making the error a dead worker leaves.
BrokenProcessPool is the stdlib's own class; WorkerDied is a subclass of it.

The keyword-only options beyond the stdlib (task_timeout, isolate_crashes,
cancel_running, max_memory_per_child, pickler) are off by default, and then
every behaviour is the stdlib's.
"""
import itertools
import multiprocessing as mp
import os
import signal
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from types import SimpleNamespace as _Writer

import concurrent.futures.process as _stdlib_process
from concurrent.futures.process import BrokenProcessPool  # noqa: F401

from . import _cfutures
from ._base import Executor, _fallback_to

__getattr__ = _fallback_to(_stdlib_process, __name__)

# The stdlib's own helpers: a chunk runs in the worker as the stdlib's does.
_process_chunk = _stdlib_process._process_chunk
_chain_from_iterable_of_lists = _stdlib_process._chain_from_iterable_of_lists


class WorkerDied(BrokenProcessPool):
    """A worker process died while it ran a task: a signal (a segfault, an
    out-of-memory kill), os._exit(), or an exit from C code.

    With ``isolate_crashes=True`` it fails only that task's future;
    otherwise it is the ``__cause__`` of the BrokenProcessPool that breaks
    the pool.  ``pid``, ``exitcode`` (negative: the signal's number, as
    multiprocessing says it) and ``signal`` (its name, e.g. 'SIGSEGV', or
    None) tell how it died.
    """

    def __init__(self, message, pid=None, exitcode=None, signal=None):
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal

    def __reduce__(self):
        return (type(self), (self.args[0], self.pid, self.exitcode, self.signal))


def _callable_name(fn):
    fn = getattr(fn, "func", fn)        # a functools.partial: the chunk runner of map
    if getattr(fn, "__name__", None) == "_process_chunk":
        return "a chunk of map()"
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    return "%s.%s" % (module, name) if module else name


def _worker_died(pid, exitcode, doing, fn):
    """The WorkerDied for a worker that ended unasked (called by the pool):
    `doing` is 'running' (fn), 'starting' (it never started a task: its
    start-up or initializer failed) or 'idle'."""
    name = None
    if isinstance(exitcode, int) and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "signal %d" % -exitcode
        how = "was killed by %s" % name
    elif exitcode is None:
        how = "ended its pipe and did not exit"
    else:
        how = "exited with code %s" % exitcode
    message = "Worker process %s %s" % (pid, how)
    if doing == "running" and fn is not None:
        message += " while running %s" % _callable_name(fn)
    elif doing == "starting":
        message += " before it started a task (in its start-up or initializer)"
    else:
        message += " while it held no task"
    return WorkerDied(message, pid, exitcode, name)


def _forking_dumps(obj, protocol, buffer_callback=None):
    """multiprocessing's pickling (ForkingPickler, with the reducers it was
    given for sockets, connections, ...), and protocol 5's out-of-band
    buffers, which the pool sends through shared memory.  The pickle comes
    as the list of what the pickler wrote: its frames, and big bytes
    objects as they are -- the pool copies each once, where it goes."""
    pieces = []
    # (ForkingPickler takes its arguments by position only.)
    ForkingPickler(_Writer(write=pieces.append), protocol, True,
                   buffer_callback).dump(obj)
    return pieces


def _pickler_dumps(pickler):
    """The dumps() the pool pickles calls with, for the `pickler` option."""
    if pickler is None or pickler == "pickle":
        return None                     # multiprocessing's, as the stdlib
    if pickler != "cloudpickle":
        raise ValueError("pickler must be None, 'pickle' or 'cloudpickle', not %r"
                         % (pickler,))
    try:
        import cloudpickle
    except ImportError as error:
        raise ImportError(
            "ProcessPoolExecutor(pickler='cloudpickle') needs the cloudpickle "
            "package, which is not installed: pip install 'cfutures[cloudpickle]'"
        ) from error
    return cloudpickle.dumps


def _positive_or_none(name, value, kind):
    """`value`, checked: None, or a positive number of `kind` ('seconds':
    int or float; 'bytes': int)."""
    if value is None:
        return value
    types = (int, float) if kind == "seconds" else int
    if isinstance(value, bool) or not isinstance(value, types):
        raise TypeError("%s must be %s or None, not %s"
                        % (name, "a number of seconds" if kind == "seconds"
                           else "an integer", type(value).__name__))
    if not value > 0:
        raise ValueError("%s must be > 0" % name)
    return value


def _start_uninterrupted(process, forks):
    """process.start(), not interrupted by Ctrl-C: interrupted between
    creating the child and recording its pid, start() would leave a child
    that nobody knows, hence nobody reaps.  True if a Ctrl-C arrived
    meanwhile: the pool raises it again once the worker is recorded.
    (Signal handlers change only in the main thread; Ctrl-C lands nowhere
    else.  A forked child would inherit the stand-in handler, and its
    window is one assignment, so fork starts as it is.)"""
    if forks or threading.current_thread() is not threading.main_thread():
        process.start()
        return False
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *frame: caught.append(frame))
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    return bool(caught)


def _spawn_worker(context, task_fd, result_fd, shm_fd, initializer, initargs,
                  max_tasks, max_memory):
    """Start one worker process; called by the native pool, which gets
    (the Process, whether a Ctrl-C arrived during its start).

    task_fd/result_fd are the child's ends of its two pipes, shm_fd of the
    socket that shared memory's descriptors pass over; they travel as
    Connections, which multiprocessing hands to the child under every start
    method, and are closed here once the child has them.  (Under fork the
    child also inherited the parent's ends of every pool's pipes: the
    module's after-fork hook closes those in the child.)
    """
    conns = (Connection(task_fd, writable=False),
             Connection(result_fd, readable=False), Connection(shm_fd))
    try:
        process = context.Process(
            target=_cfutures._process_worker,
            args=conns + (initializer, initargs, max_tasks, max_memory))
        interrupted = _start_uninterrupted(
            process, context.get_start_method() == "fork")
    finally:
        for conn in conns:
            conn.close()
    return process, interrupted


# After Ctrl-C leaves a `with` block, how long running tasks may take to end
# before their workers are stopped.
_INTERRUPT_GRACE = 0.5


def _default_max_workers():
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


class ProcessPoolExecutor(_cfutures.ProcessPoolExecutor, Executor,
                          _stdlib_process.ProcessPoolExecutor):
    """Executes calls in a pool of worker processes.

    A subclass of the stdlib's ProcessPoolExecutor, so code that checks for
    it accepts this one.
    """

    def __init__(self, max_workers=None, mp_context=None, initializer=None,
                 initargs=(), *, max_tasks_per_child=None, task_timeout=None,
                 isolate_crashes=False, cancel_running=False,
                 max_memory_per_child=None, pickler=None):
        """Initializes a new ProcessPoolExecutor instance.

        Args:
            max_workers: The maximum number of processes that can be used to
                execute the given calls.  If None or not given then as many
                worker processes will be created as the machine has
                processors.
            mp_context: A multiprocessing context to launch the workers
                (its start method: fork, spawn or forkserver).  If None, the
                default context is used, or spawn with max_tasks_per_child.
            initializer: A callable used to initialize worker processes.
            initargs: A tuple of arguments to pass to the initializer.
            max_tasks_per_child: The maximum number of tasks a worker process
                can complete before it will exit and be replaced with a fresh
                worker process.  The default of None means worker processes
                will live as long as the executor.  Requires a non-'fork'
                mp_context start method.  (On every Python version.)

        Beyond the stdlib (keyword-only; the defaults keep its behaviour):
            task_timeout: Seconds a task may run in its worker (the clock
                starts when the worker starts it).  Past that, its future
                raises TimeoutError and its worker is stopped (SIGTERM, then
                SIGKILL) and replaced; other tasks go on.  Per task:
                ``executor.options(timeout=S).submit(...)``.
            isolate_crashes: If true, a worker that dies (a signal, a
                segfault, os._exit, an out-of-memory kill) fails only the
                task it ran, with WorkerDied, and is replaced; the pool goes
                on.  If false, the pool breaks as in the stdlib, and the
                BrokenProcessPool's __cause__ is a WorkerDied that names the
                worker, how it died and what it ran.
            cancel_running: If true, cancel() of a running task stops its
                worker (which is replaced) and cancels the future.
            max_memory_per_child: Bytes of resident memory; a worker over it
                after a task sends that task's result and leaves, and a
                fresh one replaces it.
            pickler: 'cloudpickle' to send callables and arguments with
                cloudpickle (lambdas, closures, functions of __main__ under
                spawn); results come back with pickle.  Needs the
                cloudpickle package (pip install 'cfutures[cloudpickle]').

        A pool with task_timeout, isolate_crashes, cancel_running or
        max_memory_per_child gives each worker one task at a time.
        """
        # The stdlib's checks, in its order and with its messages.
        if max_workers is None:
            self._max_workers = _default_max_workers()
        else:
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
            self._max_workers = max_workers
        if mp_context is None:
            if max_tasks_per_child is not None:
                mp_context = mp.get_context("spawn")
            else:
                mp_context = mp.get_context()
        self._mp_context = mp_context
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._initializer = initializer
        self._initargs = initargs
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            elif max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
            if mp_context.get_start_method(allow_none=False) == "fork":
                raise ValueError("max_tasks_per_child is incompatible with"
                                 " the 'fork' multiprocessing start method;"
                                 " supply a different mp_context.")
        self._max_tasks_per_child = max_tasks_per_child
        task_timeout = _positive_or_none("task_timeout", task_timeout, "seconds")
        max_memory_per_child = _positive_or_none(
            "max_memory_per_child", max_memory_per_child, "bytes")
        dumps = _pickler_dumps(pickler)
        # The native pool needs no lock; subclasses may take the stdlib's.
        self._shutdown_lock = threading.Lock()
        self._setup(self._max_workers, mp_context, initializer, initargs,
                    max_tasks_per_child or 0, _spawn_worker,
                    float(task_timeout or 0.0), bool(isolate_crashes),
                    bool(cancel_running), int(max_memory_per_child or 0), dumps,
                    _worker_died)

    def _exit_interrupted(self):
        # Ctrl-C: cancel what no worker has; the running tasks get a short
        # grace, then their workers are stopped (the native _interrupt).
        self._interrupt(_INTERRUPT_GRACE)
        self.shutdown(wait=True)

    def options(self, *, timeout=None):
        """The same pool with other options for the tasks submitted through
        it: ``ex.options(timeout=S).submit(fn, *args, **kwargs)`` (and
        ``.map(...)``) runs each task with a limit of S seconds instead of
        the pool's task_timeout (None: no limit)."""
        return _TaskOptions(self, _positive_or_none("timeout", timeout, "seconds"))

    def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None,
            ordered=True):
        """Returns an iterator equivalent to map(fn, iter), calls run in
        worker processes `chunksize` at a time.

        As Executor.map; with ordered=False the chunks come in the order
        they finish, the results of one chunk together, in its order, and
        buffersize counts chunks."""
        return _map_in_chunks(self, fn, iterables, timeout, chunksize, buffersize,
                              ordered)

    def terminate_workers(self):
        """Attempts to terminate all living worker processes immediately
        (Process.terminate()); shuts the executor down first, cancelling
        the futures no worker has started.  (3.14 API)"""
        self._force_shutdown("terminate")

    def kill_workers(self):
        """Attempts to kill all living worker processes immediately
        (Process.kill()); shuts the executor down first, cancelling the
        futures no worker has started.  (3.14 API)"""
        self._force_shutdown("kill")

    def _force_shutdown(self, operation):
        processes = dict(self._processes or {})
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes.values():
            try:
                if not process.is_alive():
                    continue
            except ValueError:      # already closed
                continue
            try:
                getattr(process, operation)()
            except ProcessLookupError:  # it just ended
                continue


def _map_in_chunks(executor, fn, iterables, timeout, chunksize, buffersize, ordered):
    """map() of a process pool (or of its options()): `chunksize` calls per
    task, each chunk run in the worker by the stdlib's own helper."""
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1.")
    native_map = _cfutures.Executor.map
    if chunksize == 1:
        # One call per task: the chunk wrapper would only add pickling.
        #
        # Tiny calls are not grouped into chunks behind the caller's back
        # (mpire does): a chunk changes what is observable.  Its results
        # come together, so a timeout given to map() and ordered=False see
        # them later than the stdlib would; an error in one call ends the
        # rest of its chunk, where the stdlib runs every call; the calls of
        # a chunk on its way can no longer be cancelled when the iterator
        # is closed or raises; buffersize counts calls.  Undoing each of
        # those inside a chunk (an answer per call as it finishes, errors
        # caught per call) would keep most of what a chunk saves: the
        # answers and futures per call are most of what a tiny call costs
        # now.  Measured (map of 20k tiny calls, 2 workers): ~7-9 us a call
        # at chunksize 1, 26-28x the stdlib's; chunksize 4: ~5, 16: ~2-3,
        # 64: ~1-1.5, 256: ~1 us a call -- for whoever asks for chunks,
        # with the stdlib's own chunk semantics.
        return native_map(executor, fn, *iterables, timeout=timeout,
                          buffersize=buffersize, ordered=ordered)
    zipped = zip(*iterables)
    chunks = iter(lambda: tuple(itertools.islice(zipped, chunksize)), ())
    # _process_chunk(fn, chunk), as the stdlib's partial(_process_chunk, fn)
    # calls it; fn as an argument, not in a partial (which only
    # multiprocessing's ForkingPickler reduces), lets a chunk of plain
    # values go with pickle.dumps (src/shm.c).
    results = native_map(executor, _process_chunk, itertools.repeat(fn), chunks,
                         timeout=timeout, buffersize=buffersize, ordered=ordered)
    return _chain_from_iterable_of_lists(results)


class _TaskOptions(Executor):
    """What ProcessPoolExecutor.options() returns: submit() and map() into
    the same pool, with this view's per-task timeout."""

    def __init__(self, executor, timeout):
        self._executor = executor
        self._timeout = timeout

    def submit(self, fn, /, *args, **kwargs):
        """submit() into the pool, the task limited to this view's timeout."""
        return self._executor._submit_timed(self._timeout, fn, *args, **kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None,
            ordered=True):
        """map() into the pool, each task limited to this view's timeout
        (`timeout` here is map's own: for the whole iteration)."""
        return _map_in_chunks(self, fn, iterables, timeout, chunksize, buffersize,
                              ordered)

    def __repr__(self):
        return "<%s.options(timeout=%r)>" % (self._executor, self._timeout)
