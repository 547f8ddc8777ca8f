"""Execute computations asynchronously using threads or processes.

cfutures is concurrent.futures with a native core: change one import
(`import cfutures as futures`) and everything behaves as before.  As in the
stdlib, the executors are imported when first used, so `import cfutures`
costs no more than `import concurrent.futures`.
"""
__version__ = "0.2.0"

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
    _fallback_to,
    as_completed,
    wait,
)

import concurrent.futures as _stdlib

# The running stdlib's list, which differs between versions (3.13 added
# InvalidStateError).
__all__ = tuple(name for name in _stdlib.__all__
                if name in globals() or name.endswith("PoolExecutor"))

_EXECUTORS = {"ThreadPoolExecutor": ".thread", "ProcessPoolExecutor": ".process"}
_stdlib_getattr = _fallback_to(_stdlib, __name__)
del _fallback_to


def __getattr__(name):
    """The executors, imported on first use; any other stdlib name."""
    submodule = _EXECUTORS.get(name)
    if submodule is None:
        return _stdlib_getattr(name)
    import importlib
    value = getattr(importlib.import_module(submodule, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__ + ("__doc__", "__version__")
