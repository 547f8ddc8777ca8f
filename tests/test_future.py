"""Future: every method, every state transition, reprs, messages, callbacks,
timeouts, the private attributes code in the wild uses, subclassing.

Each behaviour is a scenario run against concurrent.futures (the oracle) and
the module under test; ``agreed`` asserts both give the same plain outcome,
and the test asserts that outcome is what the stdlib is known to give.
"""

import builtins
import concurrent.futures
import gc
import logging
import sys
import threading
import time
import types
import weakref

import pytest

from futures_helpers import (LOGGER_NAME, STATES, TIMEOUT, LogCapture, addr,
                             agreed, must_wait, norm, outcome, record_view,
                             start, state)

pytestmark = pytest.mark.timeout(60)

PY311 = sys.version_info >= (3, 11)


class MyError(Exception):
    pass


class Interrupt(KeyboardInterrupt):
    """A BaseException that is not an Exception."""


class FalsyError(Exception):
    def __bool__(self):
        return False


def in_state(m, name, value=42):
    """A future of module *m* brought to a state through the public API."""
    f = m.Future()
    if name == "PENDING":
        pass
    elif name == "RUNNING":
        assert f.set_running_or_notify_cancel() is True
    elif name == "CANCELLED":
        assert f.cancel() is True
    elif name == "CANCELLED_AND_NOTIFIED":
        assert f.cancel() is True
        assert f.set_running_or_notify_cancel() is False
    elif name == "FINISHED":
        f.set_result(value)
    elif name == "RAISED":
        f.set_exception(MyError("bad"))
    else:
        raise AssertionError(name)
    return f


# --------------------------------------------------------------------------
# construction and the pending state
# --------------------------------------------------------------------------

def test_new_future_is_pending(mod):
    def scenario(m):
        f = m.Future()
        return (f._state, state(f), f._result, f._exception,
                norm(repr(f), f))

    assert agreed(scenario, mod) == (
        "PENDING", (False, False, False), None, None,
        "<Future at 0xADDR state=pending>")


def test_future_takes_no_arguments(mod):
    def scenario(m):
        return outcome(m.Future, 1)[:2]

    assert agreed(scenario, mod) == ("raise", TypeError)


def test_future_is_an_instance_of_the_oracle_future(mod):
    f = mod.Future()
    assert isinstance(f, concurrent.futures.Future)
    assert issubclass(mod.Future, concurrent.futures.Future)
    assert isinstance(f, concurrent.futures._base.Future)


def test_generic_alias(mod):
    alias = mod.Future[int]
    assert type(alias) is types.GenericAlias
    assert alias.__origin__ is mod.Future
    assert alias.__args__ == (int,)
    assert mod.Future[str] == mod.Future[str]
    assert mod.Future[str] != mod.Future[int]


def test_state_strings_are_the_oracle_ones(mod):
    def scenario(m):
        return tuple(in_state(m, s)._state for s in STATES)

    assert agreed(scenario, mod) == STATES


# --------------------------------------------------------------------------
# transitions
# --------------------------------------------------------------------------

def test_set_running_from_pending(mod):
    def scenario(m):
        f = m.Future()
        first = f.set_running_or_notify_cancel()
        return (first, f._state, state(f), norm(repr(f), f),
                outcome(f.cancel), f._state, state(f))

    assert agreed(scenario, mod) == (
        True, "RUNNING", (True, False, False),
        "<Future at 0xADDR state=running>",
        ("return", False), "RUNNING", (True, False, False))


def test_cancel_then_notify(mod):
    def scenario(m):
        f = m.Future()
        steps = [f.cancel(), f._state, state(f), norm(repr(f), f),
                 f.cancel(), f._state,
                 f.set_running_or_notify_cancel(), f._state, state(f),
                 norm(repr(f), f), f.cancel(), f._state]
        return tuple(steps)

    assert agreed(scenario, mod) == (
        True, "CANCELLED", (False, True, True),
        "<Future at 0xADDR state=cancelled>",
        True, "CANCELLED",
        False, "CANCELLED_AND_NOTIFIED", (False, True, True),
        "<Future at 0xADDR state=cancelled>",
        True, "CANCELLED_AND_NOTIFIED")


@pytest.mark.parametrize("start_state", ["PENDING", "RUNNING"])
def test_set_result(mod, start_state):
    def scenario(m):
        f = in_state(m, start_state)
        value = object()
        ret = f.set_result(value)
        return (ret, f._state, state(f), f.result() is value,
                f.result(timeout=0) is value, f.exception(), f._result is value,
                f._exception, outcome(f.cancel), state(f))

    assert agreed(scenario, mod) == (
        None, "FINISHED", (False, False, True), True, True, None, True, None,
        ("return", False), (False, False, True))


@pytest.mark.parametrize("start_state", ["PENDING", "RUNNING"])
def test_set_exception(mod, start_state):
    def scenario(m):
        f = in_state(m, start_state)
        exc = MyError("bad")
        ret = f.set_exception(exc)
        try:
            f.result()
        except MyError as caught:
            same = caught is exc
        else:
            same = "no exception"
        return (ret, f._state, state(f), same, f.exception() is exc,
                f.exception(timeout=0) is exc, f._exception is exc,
                f._result, outcome(f.cancel))

    assert agreed(scenario, mod) == (
        None, "FINISHED", (False, False, True), True, True, True, True,
        None, ("return", False))


def test_result_raises_the_same_object_every_time(mod):
    f = mod.Future()
    exc = MyError("again")
    f.set_exception(exc)
    for _ in range(3):
        with pytest.raises(MyError) as info:
            f.result(timeout=0)
        assert info.value is exc


def test_base_exception_as_result_exception(mod):
    def scenario(m):
        f = m.Future()
        exc = Interrupt("stop")
        f.set_exception(exc)
        try:
            f.result()
        except Interrupt as caught:
            raised = caught is exc
        return raised, f.exception() is exc, norm(repr(f), f)

    assert agreed(scenario, mod) == (
        True, True, "<Future at 0xADDR state=finished raised Interrupt>")


@pytest.mark.parametrize("name", ["CANCELLED", "CANCELLED_AND_NOTIFIED"])
def test_result_and_exception_of_cancelled(mod, name):
    def scenario(m):
        f = in_state(m, name)
        return (outcome(f.result), outcome(f.result, timeout=0),
                outcome(f.exception), outcome(f.exception, 5))

    cancelled = ("raise", concurrent.futures.CancelledError, "")
    assert agreed(scenario, mod) == (cancelled,) * 4


def test_cancelled_error_is_raised_fresh(mod):
    f = in_state(mod, "CANCELLED")
    with pytest.raises(concurrent.futures.CancelledError) as info:
        f.result()
    assert type(info.value) is concurrent.futures.CancelledError
    assert info.value.args == ()


# --------------------------------------------------------------------------
# InvalidStateError and 'Future in unexpected state'
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CANCELLED", "CANCELLED_AND_NOTIFIED",
                                  "FINISHED", "RAISED"])
@pytest.mark.parametrize("setter", ["set_result", "set_exception"])
def test_invalid_state_error(mod, name, setter):
    def scenario(m):
        f = in_state(m, name, value=7)
        before = (f._state, f._result, type(f._exception))
        arg = 1 if setter == "set_result" else ValueError("late")
        with LogCapture() as logs:
            res = outcome(getattr(f, setter), arg)
        return (res[0], res[1], norm(res[2], f),
                (f._state, f._result, type(f._exception)) == before,
                len(logs.records))

    expected_text = {
        "CANCELLED": "CANCELLED: <Future at 0xADDR state=cancelled>",
        "CANCELLED_AND_NOTIFIED":
            "CANCELLED_AND_NOTIFIED: <Future at 0xADDR state=cancelled>",
        "FINISHED": "FINISHED: <Future at 0xADDR state=finished returned int>",
        "RAISED": "FINISHED: <Future at 0xADDR state=finished raised MyError>",
    }[name]
    assert agreed(scenario, mod) == (
        "raise", concurrent.futures.InvalidStateError, expected_text, True, 0)


def test_invalid_state_error_exact_text(mod):
    f = mod.Future()
    f.set_result(5)
    with pytest.raises(concurrent.futures.InvalidStateError) as info:
        f.set_result(6)
    assert str(info.value) == (
        "FINISHED: <Future at %s state=finished returned int>" % addr(f))
    assert info.value.args == (str(info.value),)
    assert f.result() == 5


def test_invalid_state_error_uses_overridden_repr(mod):
    def scenario(m):
        class Custom(m.Future):
            def __repr__(self):
                return "<custom>"

        f = Custom()
        f.cancel()
        return outcome(f.set_result, 1), outcome(f.set_exception, MyError())

    err = ("raise", concurrent.futures.InvalidStateError, "CANCELLED: <custom>")
    assert agreed(scenario, mod) == (err, err)


@pytest.mark.parametrize("name", ["RUNNING", "CANCELLED_AND_NOTIFIED",
                                  "FINISHED", "RAISED"])
def test_set_running_in_unexpected_state(mod, name):
    def scenario(m):
        f = in_state(m, name)
        before = f._state
        with LogCapture() as logs:
            res = outcome(f.set_running_or_notify_cancel)
        return (res, f._state == before,
                [record_view(r, f) for r in logs.records])

    assert agreed(scenario, mod) == (
        ("raise", RuntimeError, "Future in unexpected state"), True,
        [(LOGGER_NAME, "CRITICAL",
          "Future ID in unexpected state: %s"
          % {"RAISED": "FINISHED"}.get(name, name), None)])


def test_unexpected_state_is_logged_through_caplog(mod, caplog):
    f = in_state(mod, "RUNNING")
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        with pytest.raises(RuntimeError, match="^Future in unexpected state$"):
            f.set_running_or_notify_cancel()
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(records) == 1
    assert records[0].levelno == logging.CRITICAL
    assert records[0].getMessage() == (
        "Future %d in unexpected state: RUNNING" % id(f))


# --------------------------------------------------------------------------
# repr
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name, text", [
    ("PENDING", "state=pending"),
    ("RUNNING", "state=running"),
    ("CANCELLED", "state=cancelled"),
    ("CANCELLED_AND_NOTIFIED", "state=cancelled"),
    ("FINISHED", "state=finished returned int"),
    ("RAISED", "state=finished raised MyError"),
])
def test_repr(mod, name, text):
    def scenario(m):
        f = in_state(m, name)
        return repr(f) == "<Future at %s %s>" % (addr(f), text), \
            norm(repr(f), f)

    assert agreed(scenario, mod) == (True, "<Future at 0xADDR %s>" % text)


@pytest.mark.parametrize("value, name", [
    (None, "NoneType"), ([1], "list"), ("s", "str"), (int, "type"),
    (MyError("as a value"), "MyError"),
])
def test_repr_returned_type_name(mod, value, name):
    def scenario(m):
        f = m.Future()
        f.set_result(value)
        return norm(repr(f), f)

    assert agreed(scenario, mod) == (
        "<Future at 0xADDR state=finished returned %s>" % name)


def test_repr_of_subclass(mod):
    class OrderFuture(mod.Future):
        pass

    f = OrderFuture()
    assert repr(f) == "<OrderFuture at %s state=pending>" % addr(f)
    f.set_result(1.5)
    assert repr(f) == (
        "<OrderFuture at %s state=finished returned float>" % addr(f))
    with pytest.raises(concurrent.futures.InvalidStateError) as info:
        f.set_result(2)
    assert str(info.value) == (
        "FINISHED: <OrderFuture at %s state=finished returned float>"
        % addr(f))


def test_repr_is_stable_across_calls(mod):
    f = mod.Future()
    assert repr(f) == repr(f)
    assert str(f) == repr(f)


# --------------------------------------------------------------------------
# set_exception edge cases: classes, None, non-exceptions, falsy exceptions
# --------------------------------------------------------------------------

def test_set_exception_none(mod):
    def scenario(m):
        f = m.Future()
        f.set_exception(None)
        return (f._state, state(f), outcome(f.result), f.exception(),
                norm(repr(f), f))

    assert agreed(scenario, mod) == (
        "FINISHED", (False, False, True), ("return", None), None,
        "<Future at 0xADDR state=finished returned NoneType>")


def test_set_exception_with_class(mod):
    def scenario(m):
        f = m.Future()
        f.set_exception(MyError)
        try:
            f.result()
        except MyError as e:
            raised = (type(e), e.args)
        return (raised, f.exception() is MyError, norm(repr(f), f))

    assert agreed(scenario, mod) == (
        (MyError, ()), True, "<Future at 0xADDR state=finished raised type>")


def test_set_exception_with_non_exception(mod):
    def scenario(m):
        f = m.Future()
        f.set_exception("boom")
        return (outcome(f.result), f.exception(), norm(repr(f), f))

    assert agreed(scenario, mod) == (
        ("raise", TypeError, "exceptions must derive from BaseException"),
        "boom", "<Future at 0xADDR state=finished raised str>")


def test_set_exception_falsy(mod):
    # The stdlib tests `if self._exception:` -- a falsy exception object
    # makes result() return the (unset) result and repr say "returned".
    def scenario(m):
        f = m.Future()
        exc = FalsyError("hidden")
        f.set_exception(exc)
        return (outcome(f.result), f.exception() is exc, norm(repr(f), f))

    assert agreed(scenario, mod) == (
        ("return", None), True,
        "<Future at 0xADDR state=finished returned NoneType>")


# --------------------------------------------------------------------------
# timeouts
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["PENDING", "RUNNING"])
@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5])
def test_immediate_timeouts(mod, name, timeout):
    def scenario(m):
        f = in_state(m, name)
        t0 = time.monotonic()
        res = (outcome(f.result, timeout), outcome(f.result, timeout=timeout),
               outcome(f.exception, timeout),
               outcome(f.exception, timeout=timeout))
        return res, time.monotonic() - t0 < 1.0, f._state

    assert agreed(scenario, mod) == (
        (("raise", concurrent.futures.TimeoutError, ""),) * 4, True, name)


def test_timeout_error_class(mod):
    f = mod.Future()
    with pytest.raises(concurrent.futures.TimeoutError) as info:
        f.result(timeout=0)
    assert type(info.value) is concurrent.futures.TimeoutError
    assert info.value.args == ()
    if PY311:
        assert concurrent.futures.TimeoutError is builtins.TimeoutError
    else:
        assert issubclass(concurrent.futures.TimeoutError,
                          concurrent.futures._base.Error)


@pytest.mark.parametrize("method", ["result", "exception"])
def test_small_positive_timeout(mod, method):
    f = mod.Future()
    t0 = time.monotonic()
    with pytest.raises(concurrent.futures.TimeoutError):
        getattr(f, method)(timeout=0.05)
    elapsed = time.monotonic() - t0
    assert 0.045 <= elapsed < 2.0
    assert f._state == "PENDING"


def test_timeout_does_not_apply_to_done_future(mod):
    def scenario(m):
        f = in_state(m, "FINISHED", value="v")
        return f.result(timeout=-10), f.exception(timeout=0)

    assert agreed(scenario, mod) == ("v", None)


# --------------------------------------------------------------------------
# blocking result()/exception() woken by other threads
# --------------------------------------------------------------------------

def _complete_from_thread(f, how, go):
    must_wait(go)
    if how == "result":
        f.set_result("late")
    elif how == "exception":
        f.set_exception(MyError("late"))
    elif how == "cancel":
        f.cancel()
    elif how == "cancel_notify":
        f.cancel()
        f.set_running_or_notify_cancel()
    elif how == "running_then_result":
        f.set_running_or_notify_cancel()
        f.set_result("late")


@pytest.mark.parametrize("how, expected_result, expected_exception", [
    ("result", ("return", "late"), ("return", None)),
    ("running_then_result", ("return", "late"), ("return", None)),
    ("exception", ("raise", MyError, "late"), ("return", "MyError('late')")),
    ("cancel", ("raise", concurrent.futures.CancelledError, ""),
     ("raise", concurrent.futures.CancelledError, "")),
    ("cancel_notify", ("raise", concurrent.futures.CancelledError, ""),
     ("raise", concurrent.futures.CancelledError, "")),
])
@pytest.mark.parametrize("timeout", [None, 30])
def test_blocked_waiters_are_woken(mod, how, expected_result,
                                   expected_exception, timeout):
    # Waiters block in helper threads; the main thread releases the
    # completer only after each waiter announced it is about to block.
    # Whether a waiter is already parked or not yet is a benign race: both
    # paths must give the same answer.
    def scenario(m):
        f = m.Future()
        ready = [threading.Event() for _ in range(4)]
        go = threading.Event()

        def waiter(i, method):
            ready[i].set()
            res = outcome(getattr(f, method), timeout)
            if method == "exception" and res[0] == "return" and res[1]:
                res = ("return", repr(res[1]))
            return res

        waiters = [start(waiter, i, "result" if i % 2 == 0 else "exception")
                   for i in range(4)]
        for e in ready:
            must_wait(e)
        completer = start(_complete_from_thread, f, how, go)
        go.set()
        completer.join()
        return tuple(w.join() for w in waiters)

    got = agreed(scenario, mod)
    assert got == (expected_result, expected_exception) * 2


# --------------------------------------------------------------------------
# callbacks
# --------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["result", "exception", "cancel"])
def test_callbacks_called_once_in_order(mod, how):
    def scenario(m):
        f = m.Future()
        calls = []
        for i in range(4):
            f.add_done_callback(
                lambda fut, i=i: calls.append((i, fut is f, fut._state,
                                               fut.done())))
        before = list(calls)
        if how == "result":
            f.set_result(1)
        elif how == "exception":
            f.set_exception(MyError())
        else:
            f.cancel()
            after_cancel = list(calls)
            f.cancel()
            assert f.set_running_or_notify_cancel() is False
            assert calls == after_cancel
        return before, calls

    final = "CANCELLED" if how == "cancel" else "FINISHED"
    assert agreed(scenario, mod) == (
        [], [(i, True, final, True) for i in range(4)])


def test_same_callback_twice_is_called_twice(mod):
    def scenario(m):
        f = m.Future()
        calls = []
        cb = calls.append
        f.add_done_callback(cb)
        f.add_done_callback(cb)
        f.set_result(None)
        return len(calls), all(c is f for c in calls)

    assert agreed(scenario, mod) == (2, True)


def test_no_callbacks_for_running_or_failed_transitions(mod):
    def scenario(m):
        f = m.Future()
        calls = []
        f.add_done_callback(lambda fut: calls.append(fut._state))
        f.set_running_or_notify_cancel()
        r1 = list(calls)
        f.cancel()  # refused: running
        r2 = list(calls)
        f.set_result(3)
        r3 = list(calls)
        outcome(f.set_result, 4)
        outcome(f.set_exception, MyError())
        return r1, r2, r3, list(calls)

    assert agreed(scenario, mod) == ([], [], ["FINISHED"], ["FINISHED"])


@pytest.mark.parametrize("name", ["CANCELLED", "CANCELLED_AND_NOTIFIED",
                                  "FINISHED", "RAISED"])
def test_callback_on_done_future_runs_at_once(mod, name):
    def scenario(m):
        f = in_state(m, name)
        calls = []
        me = threading.get_ident()
        ret = f.add_done_callback(
            lambda fut: calls.append((fut is f, threading.get_ident() == me)))
        return ret, calls

    assert agreed(scenario, mod) == (None, [(True, True)])


def test_callbacks_run_in_the_completing_thread(mod):
    f = mod.Future()
    seen = []
    f.add_done_callback(lambda fut: seen.append(threading.get_ident()))
    w = start(f.set_result, 1)
    w.join()
    assert seen == [w.ident]


def test_callback_can_use_the_future(mod):
    def scenario(m):
        f = m.Future()
        seen = []

        def cb(fut):
            seen.append(fut.result(timeout=0))
            seen.append(outcome(fut.set_result, 2)[:2])
            r = m.wait([fut], timeout=TIMEOUT)
            seen.append((r.done == {fut}, r.not_done))
            seen.append([x is fut for x in m.as_completed([fut], timeout=TIMEOUT)])

        f.add_done_callback(cb)
        f.set_result(1)
        return seen

    assert agreed(scenario, mod) == [
        1, ("raise", concurrent.futures.InvalidStateError), (True, set()),
        [True]]


def test_callback_added_from_callback_runs_immediately(mod):
    def scenario(m):
        f = m.Future()
        calls = []

        def outer(fut):
            calls.append("outer-start")
            fut.add_done_callback(lambda _: calls.append("inner"))
            calls.append("outer-end")

        f.add_done_callback(outer)
        f.add_done_callback(lambda _: calls.append("last"))
        f.set_result(None)
        return calls

    assert agreed(scenario, mod) == ["outer-start", "inner", "outer-end",
                                     "last"]


@pytest.mark.parametrize("how", ["result", "exception", "cancel", "done"])
def test_callback_exception_is_logged_and_others_run(mod, how):
    def scenario(m):
        f = m.Future()
        calls = []
        errors = []

        def bad(fut):
            calls.append("bad")
            err = MyError("in callback")
            errors.append(err)
            raise err

        with LogCapture() as logs:
            if how == "done":
                f.set_result(1)
                f.add_done_callback(lambda _: calls.append("first"))
                f.add_done_callback(bad)
                f.add_done_callback(lambda _: calls.append("last"))
            else:
                f.add_done_callback(lambda _: calls.append("first"))
                f.add_done_callback(bad)
                f.add_done_callback(lambda _: calls.append("last"))
                if how == "result":
                    f.set_result(1)
                elif how == "exception":
                    f.set_exception(ValueError("x"))
                else:
                    f.cancel()
        records = [record_view(r, f) for r in logs.records]
        same = [r.exc_info[1] is e for r, e in zip(logs.records, errors)]
        return calls, records, same

    final = {"result": "returned int", "done": "returned int",
             "exception": "raised ValueError", "cancel": None}[how]
    text = ("<Future at 0xADDR state=cancelled>" if final is None else
            "<Future at 0xADDR state=finished %s>" % final)
    assert agreed(scenario, mod) == (
        ["first", "bad", "last"],
        [(LOGGER_NAME, "ERROR", "exception calling callback for " + text,
          (MyError, "in callback"))],
        [True])


def test_callback_exception_seen_by_caplog(mod, caplog):
    f = mod.Future()

    def bad(fut):
        raise MyError("oops")

    f.add_done_callback(bad)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        f.set_result(3)
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert rec.getMessage() == (
        "exception calling callback for <Future at %s state=finished "
        "returned int>" % addr(f))
    assert rec.exc_info is not None and isinstance(rec.exc_info[1], MyError)
    assert "MyError: oops" in caplog.text


def test_non_callable_callback_is_logged(mod):
    def scenario(m):
        f = m.Future()
        with LogCapture() as logs:
            added = outcome(f.add_done_callback, 42)
            f.set_result(1)
            on_done = outcome(f.add_done_callback, "nope")
        return added, on_done, [record_view(r, f)[:3] for r in logs.records]

    msg = ("exception calling callback for "
           "<Future at 0xADDR state=finished returned int>")
    assert agreed(scenario, mod) == (
        ("return", None), ("return", None),
        [(LOGGER_NAME, "ERROR", msg), (LOGGER_NAME, "ERROR", msg)])


@pytest.mark.parametrize("how", ["result", "exception", "cancel", "done"])
def test_callback_base_exception_propagates(mod, how):
    def scenario(m):
        f = m.Future()
        calls = []

        def stop(fut):
            calls.append("stop")
            raise Interrupt("from callback")

        with LogCapture() as logs:
            if how == "done":
                f.set_result(1)
                res = outcome(f.add_done_callback, stop)
            else:
                f.add_done_callback(lambda _: calls.append("first"))
                f.add_done_callback(stop)
                f.add_done_callback(lambda _: calls.append("never"))
                if how == "result":
                    res = outcome(f.set_result, 1)
                elif how == "exception":
                    res = outcome(f.set_exception, MyError())
                else:
                    res = outcome(f.cancel)
        return res, calls, f._state, len(logs.records)

    final = "CANCELLED" if how == "cancel" else "FINISHED"
    expected_calls = ["stop"] if how == "done" else ["first", "stop"]
    assert agreed(scenario, mod) == (
        ("raise", Interrupt, "from callback"), expected_calls, final, 0)


def test_callback_log_uses_overridden_repr(mod):
    class Named(mod.Future):
        def __repr__(self):
            return "<named future>"

    f = Named()

    def bad(fut):
        raise MyError()

    with LogCapture() as logs:
        f.add_done_callback(bad)
        f.set_result(None)
    assert [r.getMessage() for r in logs.records] == [
        "exception calling callback for <named future>"]


# --------------------------------------------------------------------------
# private attributes used in the wild: _state, _result, _exception
# --------------------------------------------------------------------------

def test_private_attributes_writable_result(mod):
    def scenario(m):
        f = m.Future()
        f._state = "FINISHED"
        f._result = 5
        return (f._state, state(f), f.result(), f.exception(),
                norm(repr(f), f), outcome(f.set_result, 6)[:2])

    assert agreed(scenario, mod) == (
        "FINISHED", (False, False, True), 5, None,
        "<Future at 0xADDR state=finished returned int>",
        ("raise", concurrent.futures.InvalidStateError))


def test_private_attributes_writable_exception(mod):
    def scenario(m):
        f = m.Future()
        exc = OSError("disk")
        f._exception = exc
        f._state = "FINISHED"
        return (f._exception is exc, outcome(f.result),
                f.exception() is exc, norm(repr(f), f))

    assert agreed(scenario, mod) == (
        True, ("raise", OSError, "disk"), True,
        "<Future at 0xADDR state=finished raised OSError>")


@pytest.mark.parametrize("name", STATES)
def test_private_state_write_drives_the_public_api(mod, name):
    # The way CPython's own test-suite builds futures in every state.
    def scenario(m):
        f = m.Future()
        f._state = name
        f._exception = None
        f._result = 42
        return (f._state, state(f), norm(repr(f), f),
                outcome(f.result, timeout=0), outcome(f.exception, timeout=0))

    desc = {"PENDING": "pending", "RUNNING": "running",
            "CANCELLED": "cancelled", "CANCELLED_AND_NOTIFIED": "cancelled",
            "FINISHED": "finished returned int"}[name]
    flags = {"PENDING": (False, False, False),
             "RUNNING": (True, False, False),
             "CANCELLED": (False, True, True),
             "CANCELLED_AND_NOTIFIED": (False, True, True),
             "FINISHED": (False, False, True)}[name]
    timeout = ("raise", concurrent.futures.TimeoutError, "")
    cancelled = ("raise", concurrent.futures.CancelledError, "")
    res = {"PENDING": (timeout, timeout), "RUNNING": (timeout, timeout),
           "CANCELLED": (cancelled, cancelled),
           "CANCELLED_AND_NOTIFIED": (cancelled, cancelled),
           "FINISHED": (("return", 42), ("return", None))}[name]
    assert agreed(scenario, mod) == (
        (name, flags, "<Future at 0xADDR state=%s>" % desc) + res)


def test_private_attributes_read_after_transitions(mod):
    def scenario(m):
        f = m.Future()
        seen = [(f._state, f._result, f._exception)]
        f.set_running_or_notify_cancel()
        seen.append((f._state, f._result, f._exception))
        exc = MyError()
        f.set_exception(exc)
        seen.append((f._state, f._result, f._exception is exc))
        g = m.Future()
        g.set_result("r")
        seen.append((g._state, g._result, g._exception))
        return seen

    assert agreed(scenario, mod) == [
        ("PENDING", None, None), ("RUNNING", None, None),
        ("FINISHED", None, True), ("FINISHED", "r", None)]


# --------------------------------------------------------------------------
# _get_snapshot (cfutures only: the stdlib gains it in 3.15)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", STATES + ("RAISED",))
def test_get_snapshot_matches_public_api(cf, name):
    f = in_state(cf, name, value=[1, 2])
    snap = f._get_snapshot()
    assert type(snap) is tuple and len(snap) == 4
    done, cancelled = f.done(), f.cancelled()
    result = exception = None
    if done and not cancelled:
        exception = f.exception()
        if exception is None:
            result = f.result()
    assert snap[0] is done and snap[1] is cancelled
    assert snap[2] is result and snap[3] is exception
    expected = {"PENDING": (False, False), "RUNNING": (False, False),
                "CANCELLED": (True, True),
                "CANCELLED_AND_NOTIFIED": (True, True),
                "FINISHED": (True, False), "RAISED": (True, False)}[name]
    assert snap[:2] == expected


def test_get_snapshot_after_private_writes(cf):
    f = cf.Future()
    f._state = "FINISHED"
    f._result = 5
    assert f._get_snapshot() == (True, False, 5, None)
    g = cf.Future()
    exc = MyError()
    g.set_exception(exc)
    snap = g._get_snapshot()
    assert snap[:3] == (True, False, None) and snap[3] is exc


# --------------------------------------------------------------------------
# exceptions are the stdlib's classes
# --------------------------------------------------------------------------

def test_exception_classes_are_the_oracle_ones(mod):
    import importlib
    base = concurrent.futures._base
    assert mod.CancelledError is base.CancelledError
    assert mod.TimeoutError is base.TimeoutError
    assert mod.InvalidStateError is base.InvalidStateError
    assert mod.BrokenExecutor is base.BrokenExecutor
    thread = importlib.import_module(mod.__name__ + ".thread")
    process = importlib.import_module(mod.__name__ + ".process")
    assert (thread.BrokenThreadPool
            is importlib.import_module("concurrent.futures.thread")
            .BrokenThreadPool)
    assert (process.BrokenProcessPool
            is importlib.import_module("concurrent.futures.process")
            .BrokenProcessPool)
    assert issubclass(thread.BrokenThreadPool, mod.BrokenExecutor)
    assert issubclass(process.BrokenProcessPool, mod.BrokenExecutor)
    if PY311:
        assert mod.TimeoutError is builtins.TimeoutError


def test_raised_errors_are_caught_by_oracle_handlers(mod):
    f = mod.Future()
    with pytest.raises(concurrent.futures.TimeoutError):
        f.result(timeout=0)
    f.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        f.exception()
    with pytest.raises(concurrent.futures._base.Error):
        f.result()
    with pytest.raises(concurrent.futures.InvalidStateError):
        f.set_result(1)


# --------------------------------------------------------------------------
# subclasses, attributes, weak references
# --------------------------------------------------------------------------

def test_user_subclass(mod):
    class OrderFuture(mod.Future):
        def __init__(self, order_id):
            super().__init__()
            self.order_id = order_id
            self.log = []

        def set_result(self, result):
            self.log.append(("set_result", result))
            super().set_result(result)

        def describe(self):
            return "order %d: %s" % (self.order_id, self._state)

    f = OrderFuture(7)
    assert isinstance(f, mod.Future)
    assert isinstance(f, concurrent.futures.Future)
    assert f.describe() == "order 7: PENDING"
    calls = []
    f.add_done_callback(calls.append)
    assert f.set_running_or_notify_cancel() is True
    f.set_result("ok")
    assert f.log == [("set_result", "ok")]
    assert calls == [f]
    assert f.result(timeout=0) == "ok"
    assert f.describe() == "order 7: FINISHED"
    r = mod.wait([f], timeout=0)
    assert r.done == {f}
    assert list(mod.as_completed([f], timeout=0)) == [f]


def test_subclass_overriding_result_is_used(mod):
    class Doubling(mod.Future):
        def result(self, timeout=None):
            return 2 * super().result(timeout)

    f = Doubling()
    f.set_result(21)
    assert f.result() == 42
    assert f.exception() is None


def test_futures_accept_arbitrary_attributes(mod):
    f = mod.Future()
    f.order_id = 3
    f._private_note = "x"
    assert f.order_id == 3
    assert f.__dict__["order_id"] == 3
    del f.order_id
    with pytest.raises(AttributeError):
        f.order_id  # noqa: B018
    f.set_result(1)
    f.order_id = 4
    assert (f.order_id, f.result()) == (4, 1)


def test_weakref(mod):
    f = mod.Future()
    ref = weakref.ref(f)
    assert ref() is f
    collected = threading.Event()
    f2 = mod.Future()
    ref2 = weakref.ref(f2, lambda _: collected.set())
    del f2
    gc.collect()
    assert ref2() is None and collected.is_set()
    f.set_result(1)
    assert ref().result() == 1


def test_future_with_callback_referencing_itself_is_collected(mod):
    f = mod.Future()
    f.add_done_callback(lambda fut: fut)
    f.self_ref = f
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None
