# Typing for cfutures: the public names of concurrent.futures, with
# cfutures' own Future, Executor and executors (see _base.pyi, thread.pyi,
# process.pyi).  Constants and exceptions are the stdlib's own.
from ._base import (
    ALL_COMPLETED as ALL_COMPLETED,
    FIRST_COMPLETED as FIRST_COMPLETED,
    FIRST_EXCEPTION as FIRST_EXCEPTION,
    BrokenExecutor as BrokenExecutor,
    CancelledError as CancelledError,
    Executor as Executor,
    Future as Future,
    InvalidStateError as InvalidStateError,
    TimeoutError as TimeoutError,
    as_completed as as_completed,
    wait as wait,
)
from .process import ProcessPoolExecutor as ProcessPoolExecutor
from .thread import ThreadPoolExecutor as ThreadPoolExecutor

__version__: str
__all__: tuple[str, ...]

def __dir__() -> tuple[str, ...]: ...
