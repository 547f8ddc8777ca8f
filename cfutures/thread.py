"""cfutures.thread — ThreadPoolExecutor, as concurrent.futures.thread.

The pool is native: a C work queue, and workers that are real
threading.Thread objects running a C loop.  BrokenThreadPool is the stdlib's
own class.
"""
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

    def __init__(self, max_workers=None, thread_name_prefix='',
                 initializer=None, initargs=()):
        """Initializes a new ThreadPoolExecutor instance.

        Args:
            max_workers: The maximum number of threads that can be used to
                execute the given calls (default: min(32, cpu count + 4)).
            thread_name_prefix: An optional name prefix to give our threads.
            initializer: A callable used to initialize worker threads.
            initargs: A tuple of arguments to pass to the initializer.
        """
        _cfutures.ThreadPoolExecutor.__init__(
            self, max_workers, thread_name_prefix, initializer, initargs)
