"""The public surface: __all__, constants, submodules, Executor as a base."""

import concurrent.futures
import importlib
import logging
import sys

import pytest

from futures_helpers import TIMEOUT, agreed, outcome, run_into

PY313 = sys.version_info >= (3, 13)

EXPECTED_ALL = {
    "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED", "CancelledError",
    "TimeoutError", "BrokenExecutor", "Future", "Executor", "wait",
    "as_completed", "ProcessPoolExecutor", "ThreadPoolExecutor",
}
if PY313:
    EXPECTED_ALL.add("InvalidStateError")

# Names of the stdlib's submodules that this issue covers (the executors
# themselves, and process.py's incidental imports such as Queue/partial,
# come later or are not API).
BASE_NAMES = {
    "PENDING": "PENDING", "RUNNING": "RUNNING", "CANCELLED": "CANCELLED",
    "CANCELLED_AND_NOTIFIED": "CANCELLED_AND_NOTIFIED",
    "FINISHED": "FINISHED", "FIRST_COMPLETED": "FIRST_COMPLETED",
    "FIRST_EXCEPTION": "FIRST_EXCEPTION", "ALL_COMPLETED": "ALL_COMPLETED",
}
BASE_SHARED = ["Error", "CancelledError", "TimeoutError", "InvalidStateError",
               "BrokenExecutor", "DoneAndNotDoneFutures", "LOGGER"]


def sub(m, name):
    return importlib.import_module("%s.%s" % (m.__name__, name))


def test_all(mod):
    assert set(mod.__all__) == EXPECTED_ALL
    assert set(mod.__all__) == set(concurrent.futures.__all__)
    assert len(mod.__all__) == len(set(mod.__all__))


def test_all_names_in_scope_resolve(mod):
    for name in EXPECTED_ALL - {"ProcessPoolExecutor", "ThreadPoolExecutor"}:
        assert getattr(mod, name) is not None, name


def test_star_import(mod):
    ns = {}
    exec("from %s import *" % mod.__name__, ns)
    in_scope = EXPECTED_ALL - {"ProcessPoolExecutor", "ThreadPoolExecutor"}
    assert in_scope <= set(ns)
    assert ns["Future"] is mod.Future and ns["wait"] is mod.wait


def test_constants(mod):
    assert (mod.FIRST_COMPLETED, mod.FIRST_EXCEPTION, mod.ALL_COMPLETED) == (
        "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED")
    for name in ("FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"):
        assert type(getattr(mod, name)) is str


def test_invalid_state_error_available(mod):
    assert mod.InvalidStateError is concurrent.futures.InvalidStateError


def test_base_submodule(mod):
    base = sub(mod, "_base")
    oracle = concurrent.futures._base
    for name, value in BASE_NAMES.items():
        assert getattr(base, name) == value, name
        assert getattr(oracle, name) == value, name
    for name in BASE_SHARED:
        assert getattr(base, name) is getattr(oracle, name), name
    assert base.LOGGER is logging.getLogger("concurrent.futures")
    assert base.Future is mod.Future
    assert base.Executor is mod.Executor
    assert base.wait is mod.wait
    assert base.as_completed is mod.as_completed
    assert base.CancelledError is mod.CancelledError
    assert issubclass(base.CancelledError, base.Error)
    assert issubclass(base.InvalidStateError, base.Error)


def test_base_submodule_public_names_cover_the_oracle(mod):
    base = sub(mod, "_base")
    public = {n for n, v in vars(concurrent.futures._base).items()
              if not n.startswith("_") and not hasattr(v, "__path__")
              and type(v).__name__ != "module"}
    missing = {n for n in public if not hasattr(base, n)}
    assert missing == set()


def test_thread_submodule(mod):
    thread = sub(mod, "thread")
    oracle = importlib.import_module("concurrent.futures.thread")
    assert thread.BrokenThreadPool is oracle.BrokenThreadPool
    assert issubclass(thread.BrokenThreadPool, mod.BrokenExecutor)


def test_process_submodule(mod):
    process = sub(mod, "process")
    oracle = importlib.import_module("concurrent.futures.process")
    assert process.BrokenProcessPool is oracle.BrokenProcessPool
    assert issubclass(process.BrokenProcessPool, mod.BrokenExecutor)


def test_submodules_are_attributes_after_import(mod):
    for name in ("_base", "thread", "process"):
        m = sub(mod, name)
        assert getattr(mod, name) is m


def test_done_and_not_done_is_the_oracle_namedtuple(mod):
    r = mod.wait([])
    assert type(r) is concurrent.futures._base.DoneAndNotDoneFutures


# --------------------------------------------------------------------------
# Executor as an abstract base
# --------------------------------------------------------------------------

def test_executor_is_the_oracle_executor_subclass(mod):
    assert issubclass(mod.Executor, concurrent.futures.Executor)
    assert isinstance(mod.Executor(), concurrent.futures.Executor)


def test_base_executor_behaviour(mod):
    def scenario(m):
        ex = m.Executor()
        with ex as entered:
            same = entered is ex
        return (same, outcome(ex.submit, pow, 2, 3)[:2],
                outcome(ex.shutdown), outcome(ex.shutdown, wait=False),
                outcome(ex.shutdown, False, cancel_futures=True),
                outcome(ex.map, pow, [1])[:2])

    assert agreed(scenario, mod) == (
        True, ("raise", NotImplementedError), ("return", None),
        ("return", None), ("return", None), ("raise", NotImplementedError))


def make_inline_executor(m):
    class InlineExecutor(m.Executor):
        """Defines only submit: runs the call at once in the caller."""

        def __init__(self):
            self.submitted = []

        def submit(self, fn, *args, **kwargs):
            self.submitted.append((fn, args, kwargs))
            f = m.Future()
            if f.set_running_or_notify_cancel():
                run_into(f, fn, *args, **kwargs)
            return f

    return InlineExecutor


def test_user_executor_defining_only_submit(mod):
    def scenario(m):
        InlineExecutor = make_inline_executor(m)
        with InlineExecutor() as ex:
            f = ex.submit(pow, 2, 5)
            g = ex.submit(int, "z")
            mapped = list(ex.map(pow, [1, 2, 3], [2, 2, 2]))
            kw = ex.submit(dict, a=1).result(timeout=1)
        return (type(f) is m.Future, f.result(timeout=1),
                type(g.exception(timeout=1)), mapped, kw,
                len(ex.submitted), ex.shutdown(), isinstance(ex, m.Executor),
                isinstance(ex, concurrent.futures.Executor))

    assert agreed(scenario, mod) == (
        True, 32, ValueError, [1, 4, 9], {"a": 1}, 6, None, True, True)


def test_with_block_calls_shutdown_wait_true(mod):
    def scenario(m):
        calls = []

        class Recording(make_inline_executor(m)):
            def shutdown(self, *args, **kwargs):
                calls.append((args, kwargs))

        with Recording() as ex:
            ex.submit(abs, -1)
        try:
            with Recording():
                raise KeyError("inside")
        except KeyError as exc:
            propagated = exc.args
        return calls, propagated

    assert agreed(scenario, mod) == (
        [((), {"wait": True}), ((), {"wait": True})], ("inside",))


def test_exit_returns_false(mod):
    ex = mod.Executor()
    assert ex.__exit__(None, None, None) is False
    assert ex.__exit__(ValueError, ValueError("x"), None) is False
    assert ex.__enter__() is ex


def test_map_with_timeout_on_user_executor(mod):
    def scenario(m):
        ex = make_inline_executor(m)()
        it = ex.map(str, range(3), timeout=TIMEOUT)
        first = next(it)
        return first, list(it), outcome(next, it)[:2]

    assert agreed(scenario, mod) == ("0", ["1", "2"], ("raise", StopIteration))


def test_map_reraises_in_order(mod):
    def scenario(m):
        ex = make_inline_executor(m)()
        it = ex.map(int, ["1", "x", "3"])
        return outcome(next, it), outcome(next, it)[:2], outcome(next, it)[:2]

    assert agreed(scenario, mod) == (
        ("return", 1), ("raise", ValueError), ("raise", StopIteration))


def test_map_submits_eagerly(mod):
    def scenario(m):
        ex = make_inline_executor(m)()
        it = ex.map(abs, [-1, -2, -3])
        before = len(ex.submitted)
        return before, list(it)

    assert agreed(scenario, mod) == (3, [1, 2, 3])


def test_base_submit_takes_fn_positionally(mod):
    # Executor.submit(self, fn, /, *args, **kwargs): a keyword named fn is
    # just another keyword argument, so the base still says "not implemented".
    def scenario(m):
        ex = m.Executor()
        return (outcome(ex.submit, print, fn=1)[:2],
                outcome(ex.submit, fn=print)[:2], outcome(ex.submit)[:2])

    assert agreed(scenario, mod) == (
        ("raise", NotImplementedError), ("raise", TypeError),
        ("raise", TypeError))


def test_executor_subclass_attributes(mod):
    class WithState(mod.Executor):
        def submit(self, fn, *args, **kwargs):
            raise RuntimeError("closed")

    ex = WithState()
    ex.name = "pool-1"
    assert ex.name == "pool-1"
    with pytest.raises(RuntimeError, match="closed"):
        ex.submit(print)
