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
    """ThreadPoolExecutor(max_workers=None, thread_name_prefix='',
    initializer=None, initargs=())

    Executes calls on a pool of worker threads.  A subclass of the stdlib's
    ThreadPoolExecutor, so asyncio and others accept it.
    """
