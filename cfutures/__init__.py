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

# The executors arrive with their own issues; until then they are not listed
# here rather than borrowed from the stdlib.
__all__ = (
    'FIRST_COMPLETED',
    'FIRST_EXCEPTION',
    'ALL_COMPLETED',
    'CancelledError',
    'TimeoutError',
    'InvalidStateError',
    'BrokenExecutor',
    'Future',
    'Executor',
    'wait',
    'as_completed',
)


def __dir__():
    return __all__ + ('__doc__',)
