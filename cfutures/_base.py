"""cfutures._base — the names of concurrent.futures._base, with the native
Future, wait() and as_completed().

Constants and exception classes are the stdlib's own objects, so code that
compares or catches them works with either module.
"""
from concurrent.futures._base import (  # noqa: F401  (re-exported)
    ALL_COMPLETED,
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    LOGGER,
    PENDING,
    RUNNING,
    BrokenExecutor,
    CancelledError,
    DoneAndNotDoneFutures,
    Error,
    InvalidStateError,
    TimeoutError,
)
import concurrent.futures._base as _stdlib_base
import sys

# The stdlib's package itself: `python -m cfutures` imports this module
# before it puts cfutures in the place of concurrent.futures.
_stdlib_package = sys.modules["concurrent.futures"]

from . import _cfutures


def _fallback_to(stdlib_module, name):
    """A module `__getattr__` for the cfutures module `name`: every name it
    does not define itself is the one of `stdlib_module`, so code that
    imports the stdlib's private helpers (joblib and loky import
    `_MAX_WINDOWS_WORKERS`; pickles name `_rebuild_exc`) finds the very same
    objects when concurrent.futures is replaced by cfutures."""
    def __getattr__(attr):
        try:
            return getattr(stdlib_module, attr)
        except AttributeError:
            raise AttributeError("module %r has no attribute %r"
                                 % (name, attr)) from None
    return __getattr__


__getattr__ = _fallback_to(_stdlib_base, __name__)

wait = _cfutures.wait
as_completed = _cfutures.as_completed


class Future(_cfutures.Future, _stdlib_base.Future):
    """Represents the result of an asynchronous computation.

    The C base holds all state and methods; the stdlib class is a second base
    only so that isinstance(f, concurrent.futures.Future) holds.
    """

    def __init__(self):
        """Initializes the future. Should not be called by clients."""
        # (Future() itself does not come here: a fresh future is already
        # initialized; subclasses that call super().__init__() do.)
        _cfutures.Future.__init__(self)


_cfutures._adopt_future_class(Future)


class Executor(_cfutures.Executor, _stdlib_base.Executor):
    """This is an abstract base class for concrete asynchronous executors.

    Subclasses define submit(); map() is native and works through it, with
    the 3.14 buffersize on every version.
    """

    def __exit__(self, exc_type, exc_val, exc_tb):
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            # Ctrl-C ends the block: what has not started is cancelled
            # (shutdown(cancel_futures=True)), what runs may finish.
            self._exit_interrupted()
        else:
            self.shutdown(wait=True)
        return False

    def _exit_interrupted(self):
        self.shutdown(wait=True, cancel_futures=True)
