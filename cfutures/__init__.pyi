# Typing for cfutures: the same API as concurrent.futures, so the stdlib's own
# annotations (typeshed) describe it.  Future and Executor are subclasses of
# the stdlib classes at run time; type checkers see the stdlib classes.
from concurrent.futures._base import (
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

__all__: tuple[str, ...]
