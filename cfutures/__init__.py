"""Execute computations asynchronously using threads or processes.

cfutures is concurrent.futures with a native core: change one import
(`import cfutures as futures`) and everything behaves as before.

Every name is imported when it is first used -- the stdlib imports its
executors that way; cfutures does it for all of them -- so `import cfutures`
itself costs next to nothing.
"""
__version__ = "0.2.0"

# Where each public name lives.  The stdlib's own list (__all__) differs
# between versions (3.13 added InvalidStateError); it is read from the
# running stdlib when first asked for.
_HOMES = {
    "FIRST_COMPLETED": "._base", "FIRST_EXCEPTION": "._base", "ALL_COMPLETED": "._base",
    "CancelledError": "._base", "TimeoutError": "._base", "InvalidStateError": "._base",
    "BrokenExecutor": "._base", "Future": "._base", "Executor": "._base",
    "wait": "._base", "as_completed": "._base",
    "ThreadPoolExecutor": ".thread", "ProcessPoolExecutor": ".process",
}


def _all():
    import concurrent.futures
    return tuple(name for name in concurrent.futures.__all__ if name in _HOMES)


_SUBMODULES = ("_base", "_cfutures", "thread", "process", "distributed", "_dask", "__main__")


def __getattr__(name):
    import importlib
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home, __name__), name)
    elif name == "__all__":
        value = _all()
    elif name in _SUBMODULES or name.startswith("__"):
        # Not imported yet: `from . import thread` goes on to import it.
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    else:
        # Anything else the stdlib's module has (its private helpers): the
        # stdlib's own package, also when `python -m cfutures` has made
        # concurrent.futures this one.
        from ._base import _stdlib_package
        try:
            value = getattr(_stdlib_package, name)
        except AttributeError:
            raise AttributeError("module %r has no attribute %r"
                                 % (__name__, name)) from None
    globals()[name] = value
    return value


def __dir__():
    return __getattr__("__all__") + ("__doc__", "__version__")
