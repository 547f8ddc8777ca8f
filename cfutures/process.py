"""cfutures.process — ProcessPoolExecutor, as concurrent.futures.process.

The pool is native (src/process_pool.c, src/process_worker.c): one pair of
pipes per worker process, pickled calls written and results read with the GIL
released, one I/O thread per pool.  What stays in Python is what runs once per
pool or per worker: checking the constructor's arguments exactly as the
stdlib does, and starting a worker through the multiprocessing context, so
every start method works.  BrokenProcessPool is the stdlib's own class.
"""
import itertools
import multiprocessing as mp
import os
import threading
from functools import partial
from multiprocessing.connection import Connection

import concurrent.futures.process as _stdlib_process
from concurrent.futures.process import BrokenProcessPool  # noqa: F401

from . import _cfutures
from ._base import Executor, _fallback_to

__getattr__ = _fallback_to(_stdlib_process, __name__)

# The stdlib's own helpers: a chunk runs in the worker as the stdlib's does.
_process_chunk = _stdlib_process._process_chunk
_chain_from_iterable_of_lists = _stdlib_process._chain_from_iterable_of_lists


def _spawn_worker(context, task_fd, result_fd, initializer, initargs,
                  max_tasks):
    """Start one worker process; called by the native pool.

    task_fd/result_fd are the child's ends of its two pipes; they travel as
    Connections, which multiprocessing hands to the child under every start
    method, and are closed here once the child has them.  (Under fork the
    child also inherited the parent's ends of every pool's pipes: the
    module's after-fork hook closes those in the child.)
    """
    task_conn = Connection(task_fd, writable=False)
    result_conn = Connection(result_fd, readable=False)
    try:
        process = context.Process(
            target=_cfutures._process_worker,
            args=(task_conn, result_conn, initializer, initargs, max_tasks))
        process.start()
    finally:
        task_conn.close()
        result_conn.close()
    return process


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
                 initargs=(), *, max_tasks_per_child=None):
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
        # The native pool needs no lock; subclasses may take the stdlib's.
        self._shutdown_lock = threading.Lock()
        self._setup(self._max_workers, mp_context, initializer, initargs,
                    max_tasks_per_child or 0, _spawn_worker)

    def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None,
            ordered=True):
        """Returns an iterator equivalent to map(fn, iter), calls run in
        worker processes `chunksize` at a time.

        As Executor.map; with ordered=False the chunks come in the order
        they finish, the results of one chunk together, in its order, and
        buffersize counts chunks."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            # One call per task: the chunk wrapper would only add pickling.
            return super().map(fn, *iterables, timeout=timeout,
                               buffersize=buffersize, ordered=ordered)
        zipped = zip(*iterables)
        chunks = iter(lambda: tuple(itertools.islice(zipped, chunksize)), ())
        results = super().map(partial(_process_chunk, fn), chunks,
                              timeout=timeout, buffersize=buffersize,
                              ordered=ordered)
        return _chain_from_iterable_of_lists(results)

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
