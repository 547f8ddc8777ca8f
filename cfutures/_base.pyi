# Typing for cfutures._base.  A cfutures Future is, for a type checker, the
# stdlib's Future: at run time it is a subclass that adds nothing to the
# API, and one type for both keeps code exactly as it type-checks with
# concurrent.futures (a dict keyed by submitted futures, indexed with what
# as_completed() yields, and so on).  Executor adds map()'s buffersize (the
# 3.14 API) on every version, and the ordered=False extension.
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import _base as _std
from concurrent.futures._base import (
    ALL_COMPLETED as ALL_COMPLETED,
    CANCELLED as CANCELLED,
    CANCELLED_AND_NOTIFIED as CANCELLED_AND_NOTIFIED,
    FINISHED as FINISHED,
    FIRST_COMPLETED as FIRST_COMPLETED,
    FIRST_EXCEPTION as FIRST_EXCEPTION,
    LOGGER as LOGGER,
    PENDING as PENDING,
    RUNNING as RUNNING,
    BrokenExecutor as BrokenExecutor,
    CancelledError as CancelledError,
    DoneAndNotDoneFutures as DoneAndNotDoneFutures,
    Error as Error,
    Future as Future,
    InvalidStateError as InvalidStateError,
    TimeoutError as TimeoutError,
    as_completed as as_completed,
    wait as wait,
)
from typing import Any, TypeVar

_T = TypeVar("_T")

class Executor(_std.Executor):
    """This is an abstract base class for concrete asynchronous executors."""
    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
        ordered: bool = True,
    ) -> Iterator[_T]: ...

def __getattr__(name: str) -> Any: ...
