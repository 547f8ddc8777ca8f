"""cfutures.thread — ThreadPoolExecutor, as concurrent.futures.thread.

The pool is native (src/thread_pool.c, src/thread_worker.c): a C work
queue, and workers that are real threading.Thread objects running a C loop.
What stays in Python is what runs once per pool: checking the constructor's
arguments exactly as the stdlib does (as cfutures.process does for its
pool).  BrokenThreadPool is the stdlib's own class.
"""
import itertools
import os

import concurrent.futures.thread as _stdlib_thread
from concurrent.futures.thread import BrokenThreadPool  # noqa: F401

from . import _cfutures
from ._base import Executor, _fallback_to

__getattr__ = _fallback_to(_stdlib_thread, __name__)


class ThreadPoolExecutor(_cfutures.ThreadPoolExecutor, Executor,
                         _stdlib_thread.ThreadPoolExecutor):
    """Executes calls on a pool of worker threads.

    A subclass of the stdlib's ThreadPoolExecutor, so asyncio and others
    accept it.
    """

    # Used to assign unique thread names when thread_name_prefix is not given.
    _counter = itertools.count().__next__

    def __init__(self, max_workers=None, thread_name_prefix='',
                 initializer=None, initargs=(), *, copy_context=False):
        """Initializes a new ThreadPoolExecutor instance.

        Args:
            max_workers: The maximum number of threads that can be used to
                execute the given calls (default: min(32, cpu count + 4)).
            thread_name_prefix: An optional name prefix to give our threads.
            initializer: A callable used to initialize worker threads.
            initargs: A tuple of arguments to pass to the initializer.
            copy_context: If true (a cfutures extension), each call runs in
                a copy of the contextvars context of the thread that
                submitted it, taken at submit() -- what asyncio.to_thread()
                does -- so context variables follow the work; also for the
                calls map() submits (with buffersize, those submitted later
                take the context current at that next()).  If false (the
                default), calls run in the worker thread's own context, as
                in concurrent.futures.  Read by its truth value, once, here.
        """
        # The stdlib's checks, in its order and with its messages.
        if max_workers is None:
            # os.process_cpu_count() from 3.13, os.cpu_count() before.
            count = getattr(os, "process_cpu_count", os.cpu_count)()
            max_workers = min(32, (count or 1) + 4)
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        # Any object, by its truth, as the stdlib reads shutdown()'s flags;
        # read before a thread-name number is taken.
        copy_context = bool(copy_context)
        self._setup(max_workers,
                    thread_name_prefix or ("ThreadPoolExecutor-%d" % self._counter()),
                    initializer, initargs, copy_context)
