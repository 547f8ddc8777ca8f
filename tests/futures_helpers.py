"""Helpers shared by the test modules (imported as ``futures_helpers``).

The central idea: a *scenario* is a function ``scenario(m)`` that drives the
module ``m`` (concurrent.futures or cfutures) and returns its observable
outcome as a plain, comparable value.  ``agreed(scenario, mod)`` runs it on
the stdlib (the oracle) and on ``mod`` and asserts the two outcomes are
equal; tests then assert the outcome is the value the stdlib is known to give.
"""

import concurrent.futures
import logging
import os
import re
import sys
import threading
import time

REF = concurrent.futures  # the oracle
LOGGER_NAME = "concurrent.futures"
STATES = ("PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED",
          "FINISHED")

_HEX_ADDR = re.compile(r"0x[0-9a-fA-F]+")


def agreed(scenario, mod):
    """Outcome of ``scenario(mod)``, asserted equal to ``scenario(stdlib)``."""
    reference = scenario(REF)
    if mod is REF:
        return reference
    got = scenario(mod)
    assert got == reference, (
        "cfutures disagrees with concurrent.futures:\n  cfutures: %r\n"
        "  stdlib:   %r" % (got, reference))
    return got


# agreed_once(): test key -> the stdlib's outcomes, in the order asked.
_ORACLE = {}
_ORACLE_CALLS = {}


def _oracle_key():
    """The running test's id with its module parameter ("stdlib" or
    "cfutures") taken out, so that both halves of one test get the same
    key; None outside a parametrized test."""
    nodeid = os.environ.get("PYTEST_CURRENT_TEST", "").rpartition(" (")[0]
    name, bracket, params = nodeid.partition("[")
    if not bracket:
        return None
    ids = params.rstrip("]").split("-")
    if "stdlib" not in ids and "cfutures" not in ids:
        return None
    return name + "[" + "-".join(
        "MOD" if i in ("stdlib", "cfutures") else i for i in ids) + "]"


def agreed_once(scenario, mod):
    """agreed(), with the stdlib's outcome computed once per test: the
    [stdlib] half runs the scenario on the stdlib (its check) and keeps the
    outcome; the [cfutures] half of the same test (same other parameters)
    compares with that instead of running the stdlib again (it does when it
    runs alone, e.g. under -k cfutures).  For scenarios that are expensive
    on the stdlib (processes) and whose outcome does not depend on the test
    instance; the n-th call in one half pairs with the n-th in the other."""
    key = _oracle_key()
    if key is None:
        return agreed(scenario, mod)
    calls = _ORACLE_CALLS[os.environ["PYTEST_CURRENT_TEST"]] = \
        _ORACLE_CALLS.get(os.environ["PYTEST_CURRENT_TEST"], 0) + 1
    kept = _ORACLE.setdefault(key, {})
    if mod is REF or calls not in kept:
        kept[calls] = scenario(REF)
    reference = kept[calls]
    if mod is REF:
        return reference
    got = scenario(mod)
    assert got == reference, (
        "cfutures disagrees with concurrent.futures:\n  cfutures: %r\n"
        "  stdlib:   %r" % (got, reference))
    return got


# Tests whose subject does not change with the interpreter (the 4 GiB
# frames, the sdist) and that cost tens of seconds run on one version of
# the five `make test` covers, each on its own so none carries two.
ONCE_ON = {"payload_4gib_call": (3, 12), "payload_4gib_result": (3, 13),
           "packaging": (3, 9)}


def run_once(what):
    """Skip the calling test unless this is the interpreter ONCE_ON names."""
    import pytest   # not at the top: child processes import this module too
    version = ONCE_ON[what]
    if sys.version_info[:2] != version:
        pytest.skip("%s runs once, on %d.%d" % ((what,) + version))


def cause_kind(exc):
    """The type of `exc.__cause__`, with cfutures' WorkerDied -- the cause
    that names a dead worker, which the stdlib gives only from 3.15 -- seen
    as the stdlib's None (tests/test_process_options.py checks it)."""
    from cfutures.process import WorkerDied
    cause = exc.__cause__
    return type(None) if isinstance(cause, WorkerDied) else type(cause)


def outcome(fn, /, *args, **kwargs):
    """('return', value) or ('raise', exception type, str(exception))."""
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: B902 - outcomes include BaseException
        return ("raise", type(exc), str(exc))
    return ("return", value)


def addr(obj):
    """The address as the stdlib's Future.__repr__ prints it."""
    return "%#x" % id(obj)


def norm(text, *objs):
    """Replace the addresses (hex, as in reprs) and ids (decimal, as in the
    'unexpected state' log line) of *objs* by placeholders."""
    for obj in objs:
        text = text.replace(addr(obj), "0xADDR").replace(str(id(obj)), "ID")
    return text


def norm_any_addr(text):
    return _HEX_ADDR.sub("0xADDR", text)


def state(f):
    """The public view of a future's state, in one tuple."""
    return (f.running(), f.cancelled(), f.done())


class Worker(object):
    """A helper thread running ``fn(*args)``; ``join()`` is bounded and
    re-raises whatever the thread raised."""

    def __init__(self, fn, *args, **kwargs):
        self.value = None
        self.error = None
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def ident(self):
        return self.thread.ident

    def _run(self):
        try:
            self.value = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # noqa: B902 - reported by join()
            self.error = exc

    def join(self, timeout=10.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "helper thread did not finish"
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.value


def start(fn, *args, **kwargs):
    return Worker(fn, *args, **kwargs)


def wait_until(predicate, timeout=10.0, what="condition"):
    """Poll *predicate* until true; for internal states no event can signal
    (e.g. 'a stdlib waiter has been installed in f._waiters')."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.0005)


def must_wait(event, timeout=10.0):
    assert event.wait(timeout), "event not set within %s s" % timeout


class LogCapture(logging.Handler):
    """Collects records of the 'concurrent.futures' logger (usable outside
    pytest fixtures, e.g. in hypothesis state machines)."""

    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        logger = logging.getLogger(LOGGER_NAME)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger(LOGGER_NAME).removeHandler(self)
        return False


def record_view(record, *objs):
    """A comparable summary of a log record: logger, level, message, and the
    type and identity-free text of the exception it carries."""
    exc = None
    if record.exc_info and record.exc_info[1] is not None:
        exc = (type(record.exc_info[1]), str(record.exc_info[1]))
    return (record.name, record.levelname, norm(record.getMessage(), *objs),
            exc)


class DuckFuture(object):
    """Only the public Future API -- no _condition, _state or _waiters.

    cfutures.wait/as_completed must accept it (through add_done_callback).
    """

    __slots__ = ("_duck_lock", "_duck_done", "_duck_cancelled",
                 "_duck_result", "_duck_exception", "_duck_callbacks",
                 "_duck_event", "__weakref__")

    def __init__(self):
        self._duck_lock = threading.Lock()
        self._duck_done = False
        self._duck_cancelled = False
        self._duck_result = None
        self._duck_exception = None
        self._duck_callbacks = []
        self._duck_event = threading.Event()

    def __repr__(self):
        return "<DuckFuture done=%s>" % self._duck_done

    # -- the public consumer API ------------------------------------------
    def add_done_callback(self, fn):
        with self._duck_lock:
            if not self._duck_done:
                self._duck_callbacks.append(fn)
                return
        fn(self)

    def done(self):
        return self._duck_done

    def cancelled(self):
        return self._duck_cancelled

    def result(self, timeout=None):
        if not self._duck_event.wait(timeout):
            raise REF.TimeoutError()
        if self._duck_cancelled:
            raise REF.CancelledError()
        if self._duck_exception is not None:
            raise self._duck_exception
        return self._duck_result

    def exception(self, timeout=None):
        if not self._duck_event.wait(timeout):
            raise REF.TimeoutError()
        if self._duck_cancelled:
            raise REF.CancelledError()
        return self._duck_exception

    # -- the producer side ----------------------------------------------------
    def _finish(self, result=None, exception=None, cancelled=False):
        with self._duck_lock:
            assert not self._duck_done, "duck completed twice"
            self._duck_result = result
            self._duck_exception = exception
            self._duck_cancelled = cancelled
            self._duck_done = True
            callbacks, self._duck_callbacks = self._duck_callbacks, []
        self._duck_event.set()
        for fn in callbacks:
            fn(self)

    def set_result(self, result):
        self._finish(result=result)

    def set_exception(self, exception):
        self._finish(exception=exception)

    def cancel(self):
        self._finish(cancelled=True)
        return True


def complete(f, how, value=None):
    """Complete *f* one of three ways, as an executor would."""
    if how == "result":
        f.set_result(value)
    elif how == "exception":
        f.set_exception(value if value is not None else ValueError("boom"))
    elif how == "cancel":
        if isinstance(f, DuckFuture):
            f.cancel()
        else:
            assert f.cancel()
            assert f.set_running_or_notify_cancel() is False
    else:
        raise AssertionError(how)


class MyError(Exception):
    pass


def make_futures(m, spec):
    """Futures of module *m* from a spec string, one letter per future:
    p pending, r running, c cancelled (not notified), n cancelled and
    notified, d done with a result, e done with an exception,
    z done via set_exception(None)."""
    out = []
    for i, ch in enumerate(spec):
        f = m.Future()
        if ch == "r":
            f.set_running_or_notify_cancel()
        elif ch == "c":
            f.cancel()
        elif ch == "n":
            f.cancel()
            f.set_running_or_notify_cancel()
        elif ch == "d":
            f.set_result(i)
        elif ch == "e":
            f.set_exception(MyError(i))
        elif ch == "z":
            f.set_exception(None)
        else:
            assert ch == "p"
        out.append(f)
    return out
