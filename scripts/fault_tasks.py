"""Task functions for scripts/fault_run.py.

Workers started with spawn or forkserver import what they run by module
name, so everything a fault-run scenario submits to a process pool lives
here, at module level.  fault_run.py puts this directory on sys.path and in
PYTHONPATH, and multiprocessing hands sys.path on to spawn/forkserver
children, so `import fault_tasks` works in every worker.
"""

import ctypes
import faulthandler
import os
import signal
import time


# ---- plain tasks ------------------------------------------------------------

def square(x):
    return x * x


def identity(x):
    return x


def pid(_=None):
    return os.getpid()


def sleep_return(value, seconds):
    if seconds:
        time.sleep(seconds)
    return value


def raise_value_error(value):
    raise ValueError("task failed on purpose: %r" % (value,))


# ---- dying workers ----------------------------------------------------------

CRASH_KINDS = ("exit", "sigkill", "segfault", "abort")


def crash(kind):
    """End this process abruptly, the way `kind` names."""
    if kind == "exit":
        os._exit(3)
    elif kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "segfault":
        faulthandler.disable()          # no "Fatal Python error" noise
        ctypes.string_at(0)
    elif kind == "abort":
        faulthandler.disable()
        os.abort()
    raise AssertionError("still alive after crash(%r)" % (kind,))


def crash_after(seconds, kind):
    time.sleep(seconds)
    crash(kind)


def maybe_crash(value, seconds, kind):
    """Sleep, then return `value`, or crash when `kind` is not None."""
    if seconds:
        time.sleep(seconds)
    if kind is not None:
        crash(kind)
    return value


# ---- initializers -----------------------------------------------------------

def ignore_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def ignore_sigterm_some(every):
    """Ignore SIGTERM in every `every`-th worker (by pid)."""
    if os.getpid() % every == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


# ---- pickling trouble: code that runs while submit()/dispatch pickles -------

# token -> callable run in the parent when a Hook argument is pickled.
HOOKS = {}


class Hook(object):
    """An argument whose pickling (in the parent) runs HOOKS[token](); in
    the worker it becomes `value`.  With fail=True pickling raises after
    the hook ran."""

    def __init__(self, token, value, fail=False):
        self.token = token
        self.value = value
        self.fail = fail

    def __reduce__(self):
        hook = HOOKS.get(self.token)
        if hook is not None:
            hook()
        if self.fail:
            raise RuntimeError("cannot pickle on purpose")
        return (identity, (self.value,))


# ---- big data ---------------------------------------------------------------

def length(data, seconds=0):
    if seconds:
        time.sleep(seconds)
    return len(data)


def big_result(size, seconds=0):
    if seconds:
        time.sleep(seconds)
    return b"r" * size


def big_or_crash(data, kind):
    """Crash (when `kind`) after receiving `data`, or return its length."""
    if kind is not None:
        crash(kind)
    return len(data)


def return_unpicklable(_=None):
    """A result the worker cannot pickle."""
    import threading
    return threading.Lock()


class Unpicklable(object):
    """An argument the parent cannot pickle."""

    def __reduce__(self):
        raise TypeError("cannot pickle Unpicklable on purpose")
