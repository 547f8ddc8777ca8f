"""Execute computations asynchronously using threads or processes.

cfutures is concurrent.futures with a native core: change one import
(`import cfutures as futures`) and everything behaves as before.
"""
from ._base import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    InvalidStateError,
    TimeoutError,
    as_completed,
    wait,
)
from .process import ProcessPoolExecutor
from .thread import ThreadPoolExecutor

# The running stdlib's list, which differs between versions (3.13 added
# InvalidStateError).
import concurrent.futures as _stdlib
from ._base import _fallback_to

__all__ = tuple(name for name in _stdlib.__all__ if name in globals())
__getattr__ = _fallback_to(_stdlib, __name__)
del _fallback_to


def __dir__():
    return __all__ + ('__doc__',)
