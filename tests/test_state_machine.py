"""Random operation sequences applied to a stdlib future and a future of the
module under test in lockstep; every step's observable outcome (return value,
or exception type and message), the callback calls and the log records must
be the same.  With mod=stdlib the machine checks itself (two stdlib futures).
"""

import concurrent.futures

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, precondition, rule,
                                 run_state_machine_as_test)

from futures_helpers import REF, LogCapture, norm, outcome, record_view

pytestmark = pytest.mark.timeout(120)


class Stop(BaseException):
    """Not an Exception: escapes callbacks and result()."""


class FalsyError(Exception):
    def __bool__(self):
        return False


EXCEPTIONS = {
    "ValueError('v')": lambda: ValueError("v"),
    "KeyError('k')": lambda: KeyError("k"),
    "None": lambda: None,
    "ValueError class": lambda: ValueError,
    "Stop('s')": lambda: Stop("s"),
    "FalsyError('f')": lambda: FalsyError("f"),
    "CancelledError()": lambda: concurrent.futures.CancelledError(),
}

RESULTS = st.one_of(st.integers(-2, 2), st.none(), st.text(max_size=2),
                    st.sampled_from([(), (1,), 1.5]))
TIMEOUTS = st.sampled_from([0, -1, 0.0, 0.001])
RETURN_WHENS = st.sampled_from(["ALL_COMPLETED", "FIRST_COMPLETED",
                                "FIRST_EXCEPTION"])

SETTINGS = settings(max_examples=60, stateful_step_count=25, deadline=None,
                    database=None, derandomize=False)


def machine_for(m):
    class FuturePair(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.mods = {"ref": REF, "sub": m}
            self.futs = {"ref": REF.Future(), "sub": m.Future()}
            self.calls = {"ref": [], "sub": []}
            self.capture = LogCapture().__enter__()

        def teardown(self):
            self.capture.__exit__(None, None, None)

        # -- comparison ----------------------------------------------------
        def view(self, side, value):
            f = self.futs[side]
            if value is f:
                return "SELF"
            if isinstance(value, BaseException):
                return ("exception object", type(value), value.args)
            if isinstance(value, str):
                return norm(value, f).replace(type(f).__name__, "CLS")
            if isinstance(value, tuple):
                return tuple(self.view(side, v) for v in value)
            return value

        def both(self, op):
            seen = {}
            for side in ("ref", "sub"):
                f = self.futs[side]
                start = len(self.capture.records)
                res = outcome(op, side, f)
                res = self.view(side, res)
                records = [record_view(r, f)
                           for r in self.capture.records[start:]]
                seen[side] = (res, records)
            assert seen["sub"] == seen["ref"]
            assert self.calls["sub"] == self.calls["ref"]
            return seen["ref"][0]

        # -- public queries ------------------------------------------------
        @rule()
        def cancel(self):
            self.both(lambda side, f: f.cancel())

        @rule()
        def queries(self):
            self.both(lambda side, f: (f.cancelled(), f.running(), f.done()))

        @rule()
        def state(self):
            self.both(lambda side, f: f._state)

        @rule()
        def private_fields(self):
            self.both(lambda side, f: (f._result, f._exception))

        @rule()
        def representation(self):
            self.both(lambda side, f: repr(f))

        @rule(timeout=TIMEOUTS)
        def result(self, timeout):
            self.both(lambda side, f: f.result(timeout=timeout))

        @rule(timeout=TIMEOUTS)
        def exception(self, timeout):
            self.both(lambda side, f: f.exception(timeout))

        # -- transitions ---------------------------------------------------
        @rule()
        def set_running_or_notify_cancel(self):
            self.both(lambda side, f: f.set_running_or_notify_cancel())

        @rule(value=RESULTS)
        def set_result(self, value):
            self.both(lambda side, f: f.set_result(value))

        @rule(which=st.sampled_from(sorted(EXCEPTIONS)))
        def set_exception(self, which):
            self.both(lambda side, f: f.set_exception(EXCEPTIONS[which]()))

        # -- callbacks -----------------------------------------------------
        @rule(kind=st.sampled_from(["record", "raise", "base", "nested"]))
        def add_done_callback(self, kind):
            number = len(self.calls["ref"])

            def op(side, f):
                log = self.calls[side]

                def callback(fut):
                    log.append((number, kind, fut is f, fut._state,
                                fut.done(), fut.cancelled()))
                    if kind == "raise":
                        raise ValueError("callback %d" % number)
                    if kind == "base":
                        raise Stop("callback %d" % number)
                    if kind == "nested":
                        fut.add_done_callback(
                            lambda g: log.append((number, "inner",
                                                  g is f)))

                return f.add_done_callback(callback)

            self.both(op)

        # -- waiting (non-blocking) ----------------------------------------
        @rule(return_when=RETURN_WHENS, timeout=TIMEOUTS)
        def wait(self, return_when, timeout):
            def op(side, f):
                r = self.mods[side].wait([f], timeout=timeout,
                                         return_when=return_when)
                return (len(r.done), len(r.not_done))
            self.both(op)

        @rule(timeout=TIMEOUTS)
        def as_completed(self, timeout):
            def op(side, f):
                return len(list(self.mods[side].as_completed([f, f],
                                                             timeout=timeout)))
            self.both(op)

        # -- cfutures only -------------------------------------------------
        @precondition(lambda self: hasattr(self.futs["sub"], "_get_snapshot"))
        @rule()
        def snapshot(self):
            ref, sub = self.futs["ref"], self.futs["sub"]
            snap = sub._get_snapshot()
            if ref._state == "FINISHED":
                expected = (True, False, ref._result, ref._exception)
            elif ref.cancelled():
                expected = (True, True, None, None)
            else:
                expected = (False, False, None, None)
            assert self.view("sub", snap) == self.view("ref", expected)

    return FuturePair


def test_random_operation_sequences_agree(mod):
    run_state_machine_as_test(machine_for(mod), settings=SETTINGS)
