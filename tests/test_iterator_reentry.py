"""Re-entering the iterators of Executor.map() and as_completed().

The stdlib's iterators are generators: a generator that is running cannot
be entered again, whoever tries -- the input iterable it is consuming, a
second thread, a done-callback or a __del__ run while it waits.  Each such
next() or close() raises ValueError('generator already executing') where it
is made; the call that runs the generator is not disturbed.

Covered:
  (a) the input iterable calls next(it) / it.close() while map (with
      buffersize) or as_completed consumes it;
  (b) a second thread calls next(it) / it.close() while a first one is
      blocked in next(it) (map with and without buffersize, as_completed,
      as_completed over a slow generator);
  (c) a done-callback of the awaited future, or a __del__ run inside next(),
      calls next(it) / it.close().

The stdlib has buffersize only from 3.14: below that its half runs
`map_314`, a generator with the semantics of 3.14's Executor.map on the
stdlib's executor (the real map where the stdlib has buffersize).

Every scenario runs in a child process (today's build crashes or hangs on
several of them): all the scenarios of one module in one child, each
reported on its own, a crash or hang reported for the scenario that caused
it (see child_batch.py); both modules' outcomes are compared and asserted
equal to the stdlib's known outcome.
"""

import collections
import concurrent.futures
import inspect
import itertools
import os
import sys
import threading
import time
import weakref

import pytest

import child_batch

from futures_helpers import TIMEOUT, LogRecords, must_wait, next_in_thread, reentering_input

REF = concurrent.futures
THIS = os.path.splitext(os.path.basename(__file__))[0]
RUNNING = ("raise", "ValueError", "generator already executing")

pytestmark = pytest.mark.timeout(240)


# ---- running the scenarios in a child ---------------------------------------
#
# All the scenarios of one module run in one child interpreter, one after
# the other (child_batch): each is reported on its own, and one that
# crashes, hangs or raises ends that child, is reported as such (with its
# stderr), and the rest run in a fresh child.

HANG = 30.0         # the watchdog of each scenario in the child
_OUTCOMES = {}      # which -> {scenario: outcome or child_batch.Failure}


def batch_outcomes(which):
    """{scenario: outcome} of every scenario, run on the module `which`
    names (computed once per test session)."""
    if which not in _OUTCOMES:
        _OUTCOMES[which] = child_batch.run_module_batch(
            THIS, which, scenario_names(), HANG)
    return _OUTCOMES[which]


def child_outcome(scenario, which):
    """The (literal) outcome of ``scenario(m)`` in a child interpreter, m
    the module `which` names.  A crash, a hang or an error fails."""
    got = batch_outcomes(which)[scenario]
    if isinstance(got, child_batch.Failure):
        pytest.fail("%s: %s" % (which, got.message), pytrace=False)
    return got


def scenario_names():
    return [name for name, obj in globals().items()
            if name.startswith("sc_") and callable(obj)]


def child_main(which, scenarios):
    if which == "stdlib":
        m = REF
    else:
        import cfutures as m
    # No forced GIL switch while a thread is between two steps of a
    # scenario: a thread that was told "A is inside next()" or that runs a
    # done-callback keeps the GIL until it blocks.
    sys.setswitchinterval(5.0)
    child_batch.serve(scenarios, lambda name: globals()[name](m), HANG)


def agreed_child(scenario, mod):
    """The stdlib's outcome, and (for the cfutures half) cfutures' outcome
    asserted equal to it."""
    reference = child_outcome(scenario, "stdlib")
    if mod is REF:
        return reference
    got = child_outcome(scenario, "cfutures")
    assert got == reference, (
        "cfutures disagrees with concurrent.futures in %s:\n  cfutures: %r\n"
        "  stdlib:   %r" % (scenario, got, reference))
    return got


# ---- helpers used inside the children ---------------------------------------

def res(fn, *args, cause=False):
    """('return', value) / ('stop',) / ('raise', type name, message); with
    `cause`, the last also has (type name, args) of the exception's
    __cause__, or None."""
    try:
        return ("return", fn(*args))
    except StopIteration:
        return ("stop",)
    except BaseException as exc:  # noqa: B902 - outcomes include all
        out = ("raise", type(exc).__name__, str(exc))
        if cause:
            c = exc.__cause__
            out += (None if c is None else (type(c).__name__, c.args),)
        return out


def steps(it, limit=20, res=res):
    """Outcomes (``res``) of next(it) up to the first StopIteration, then
    one more."""
    out = []
    for _ in range(limit):
        out.append(res(next, it))
        if out[-1] == ("stop",):
            out.append(res(next, it))
            return out
    raise AssertionError("iterator did not end")


def _result_or_cancel(fut, timeout=None):
    try:
        return fut.result(timeout)
    finally:
        fut.cancel()


def map_314(ex, fn, *iterables, timeout=None, buffersize=None):
    """Executor.map as 3.14 defines it, built on ``ex.submit``: a generator
    that submits one more call before handing out each result, and cancels
    what is left when it ends."""
    if timeout is not None:
        end_time = timeout + time.monotonic()
    args = zip(*iterables)
    fs = collections.deque(
        ex.submit(fn, *a) for a in itertools.islice(args, buffersize))
    executor_ref = weakref.ref(ex)

    def results():
        try:
            fs.reverse()
            while fs:
                executor = executor_ref()
                more = next(args, None) if executor is not None else None
                if more:
                    fs.appendleft(executor.submit(fn, *more))
                del executor
                if timeout is None:
                    yield _result_or_cancel(fs.pop())
                else:
                    yield _result_or_cancel(fs.pop(),
                                            end_time - time.monotonic())
        finally:
            for f in fs:
                f.cancel()

    return results()


def stdlib_has_buffersize():
    return "buffersize" in inspect.signature(REF.Executor.map).parameters


def bmap(m, ex, fn, *iterables, **kwargs):
    """ex.map(...); on the stdlib without buffersize, the 3.14 model."""
    if "buffersize" in kwargs and m is REF and not stdlib_has_buffersize():
        return map_314(ex, fn, *iterables, **kwargs)
    return ex.map(fn, *iterables, **kwargs)



def join(t):
    t.join(TIMEOUT)
    assert not t.is_alive(), "thread still blocked"


def act(it, action):
    return res(next, it) if action == "next" else res(it.close)


def act_raising(it, action):
    if action == "next":
        next(it)
    else:
        it.close()


class Unraisable(object):
    """Collects what sys.unraisablehook gets (e.g. errors in __del__)."""

    def __enter__(self):
        self.seen = []
        self._old = sys.unraisablehook
        sys.unraisablehook = lambda u: self.seen.append(
            (type(u.exc_value).__name__, str(u.exc_value)))
        return self

    def __exit__(self, *exc):
        sys.unraisablehook = self._old


# ---- (a) the input iterable re-enters the iterator --------------------------

def _input_reentry(m, action, swallow):
    caught = []
    box = []
    ex = m.ThreadPoolExecutor(2)
    try:
        box.append(bmap(m, ex, abs, reentering_input(box, action, swallow, caught),
                        buffersize=1))
        out = steps(box[0])
    finally:
        ex.shutdown(wait=True)
    return out, caught


def sc_map_input_next(m):
    return _input_reentry(m, "next", swallow=False)


def sc_map_input_close(m):
    return _input_reentry(m, "close", swallow=False)


def sc_map_input_next_swallowed(m):
    return _input_reentry(m, "next", swallow=True)


def sc_map_input_close_swallowed(m):
    return _input_reentry(m, "close", swallow=True)


@pytest.mark.parametrize("action", ["next", "close"])
def test_map_buffersize_input_reenters(mod, action):
    # The ValueError leaves the input, then map's iterator; it is finished.
    out, caught = agreed_child("sc_map_input_" + action, mod)
    assert out == [("return", 1), RUNNING, ("stop",), ("stop",)]
    assert caught == []


@pytest.mark.parametrize("action", ["next", "close"])
def test_map_buffersize_input_swallows_reentry_error(mod, action):
    # The input catches the ValueError and goes on: nothing else changes.
    out, caught = agreed_child("sc_map_input_%s_swallowed" % action, mod)
    assert out == [("return", 1), ("return", 2), ("return", 3), ("stop",),
                   ("stop",)]
    assert caught == [RUNNING]


def _as_completed_input(m, action):
    fs = [m.Future() for _ in range(3)]
    for i, f in enumerate(fs):
        f.set_result(i)
    box = []

    def gen():
        yield fs[0]
        yield fs[1]
        act_raising(box[0], action)
        yield fs[2]

    box.append(m.as_completed(gen()))
    return [o if o[0] != "return" else ("return", o[1].result())
            for o in steps(box[0])]


def sc_as_completed_input_next(m):
    return _as_completed_input(m, "next")


def sc_as_completed_input_close(m):
    return _as_completed_input(m, "close")


@pytest.mark.parametrize("action", ["next", "close"])
def test_as_completed_input_reenters(mod, action):
    # The input is consumed at the first next(): that next() raises, and
    # the iterator is finished.
    assert agreed_child("sc_as_completed_input_" + action, mod) == [
        RUNNING, ("stop",), ("stop",)]


# ---- (b) a second thread while the first is blocked in next() ---------------

def _map_two_threads(m, action, buffersize):
    go = threading.Event()

    def task(i):
        if i == 0:
            must_wait(go)
        return i

    ex = m.ThreadPoolExecutor(2)
    try:
        kwargs = {} if buffersize is None else {"buffersize": buffersize}
        it = bmap(m, ex, task, range(3), **kwargs)
        t, inside, box = next_in_thread(it, res)
        must_wait(inside)
        second = act(it, action)
        go.set()
        join(t)
        rest = res(list, it)
    finally:
        go.set()
        ex.shutdown(wait=True)
    return second, box, rest


def sc_map_thread_next(m):
    return _map_two_threads(m, "next", None)


def sc_map_thread_close(m):
    return _map_two_threads(m, "close", None)


def sc_map_bs_thread_next(m):
    return _map_two_threads(m, "next", 2)


def sc_map_bs_thread_close(m):
    return _map_two_threads(m, "close", 2)


@pytest.mark.parametrize("action", ["next", "close"])
@pytest.mark.parametrize("variant", ["map", "map_bs"])
def test_map_second_thread(mod, variant, action):
    # The second caller gets the ValueError; the blocked one its item, and
    # the iteration goes on as if nothing happened.
    second, first, rest = agreed_child(
        "sc_%s_thread_%s" % (variant, action), mod)
    assert second == RUNNING
    assert first == [("return", 0)]
    assert rest == ("return", [1, 2])


def _as_completed_two_threads(m, action):
    f = m.Future()
    it = m.as_completed([f])
    t, inside, box = next_in_thread(it, res)
    must_wait(inside)
    second = act(it, action)
    f.set_result(7)
    join(t)
    first = [(o[0], o[1] is f) for o in box]
    return second, first, res(list, it)


def sc_as_completed_thread_next(m):
    return _as_completed_two_threads(m, "next")


def sc_as_completed_thread_close(m):
    return _as_completed_two_threads(m, "close")


@pytest.mark.parametrize("action", ["next", "close"])
def test_as_completed_second_thread(mod, action):
    second, first, rest = agreed_child("sc_as_completed_thread_" + action,
                                       mod)
    assert second == RUNNING
    assert first == [("return", True)]
    assert rest == ("return", [])


def sc_as_completed_slow_input(m):
    f0, f1 = m.Future(), m.Future()
    f0.set_result(0)
    in_gen, go = threading.Event(), threading.Event()

    def slow():
        yield f0
        in_gen.set()
        must_wait(go)
        yield f1

    it = m.as_completed(slow())
    box = []
    t = threading.Thread(target=lambda: box.append(res(next, it)),
                         daemon=True)
    t.start()
    must_wait(in_gen)            # the first thread is consuming the input
    second = res(next, it)
    go.set()
    join(t)
    first = [(o[0], o[1] is f0) for o in box]
    f1.set_result(1)
    rest = [f is f1 for f in list(it)]
    return second, first, rest


def test_as_completed_slow_input_two_threads(mod):
    assert agreed_child("sc_as_completed_slow_input", mod) == (
        RUNNING, [("return", True)], [True])


# ---- (c) a done-callback or a __del__ re-enters -----------------------------

def _map_callback(m, action):
    box = []
    seen = []

    def reenter(f):
        seen.append(act_raising(box[0], action))

    class Pool(m.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            f = super().submit(fn, *args, **kwargs)
            if args == (0,):
                f.add_done_callback(reenter)
            return f

    go = threading.Event()

    def task(i):
        if i == 0:
            must_wait(go)
        return i

    ex = Pool(2)
    try:
        with LogRecords(exc_text=True) as log:
            box.append(ex.map(task, range(3)))
            t, inside, out = next_in_thread(box[0], res)
            must_wait(inside)
            go.set()            # the worker runs reenter() with the GIL
            join(t)
            rest = res(list, box[0])
    finally:
        go.set()
        ex.shutdown(wait=True)
    return out, rest, seen, log.seen


def sc_map_callback_next(m):
    return _map_callback(m, "next")


def sc_map_callback_close(m):
    return _map_callback(m, "close")


CALLBACK_RECORD = (
    "concurrent.futures", "ERROR",
    "exception calling callback for <Future at 0xADDR state=finished "
    "returned int>",
    ("ValueError", "generator already executing"))


@pytest.mark.parametrize("action", ["next", "close"])
def test_map_awaited_future_callback_reenters(mod, action):
    out, rest, seen, log = agreed_child("sc_map_callback_" + action, mod)
    assert out == [("return", 0)]
    assert rest == ("return", [1, 2])
    assert seen == []
    assert log == [CALLBACK_RECORD]


def _as_completed_callback(m, action):
    f = m.Future()
    it = m.as_completed([f])
    seen = []
    f.add_done_callback(lambda _: seen.append(act_raising(it, action)))
    with LogRecords(exc_text=True) as log:
        t, inside, box = next_in_thread(it, res)
        must_wait(inside)
        f.set_result(3)         # reenter() runs here, the GIL held
        join(t)
    first = [(o[0], o[1] is f) for o in box]
    return first, res(list, it), seen, log.seen


def sc_as_completed_callback_next(m):
    return _as_completed_callback(m, "next")


def sc_as_completed_callback_close(m):
    return _as_completed_callback(m, "close")


@pytest.mark.parametrize("action", ["next", "close"])
def test_as_completed_awaited_future_callback_reenters(mod, action):
    first, rest, seen, log = agreed_child(
        "sc_as_completed_callback_" + action, mod)
    assert first == [("return", True)]
    assert rest == ("return", [])
    assert seen == []
    assert log == [CALLBACK_RECORD]


def _map_del(m, action, buffersize):
    box = []

    class Guard(object):
        """Dropped with its future, i.e. inside next(it)."""

        def __del__(self):
            act_raising(box[0], action)

    class Inline(m.Executor):
        def submit(self, fn, /, *args, **kwargs):
            f = m.Future()
            f.set_result(fn(*args, **kwargs))
            f.guard = Guard()
            return f

    ex = Inline()
    kwargs = {} if buffersize is None else {"buffersize": buffersize}
    with Unraisable() as hook:
        box.append(bmap(m, ex, abs, [-1, -2, -3], **kwargs))
        out = steps(box[0])
    return out, hook.seen


def sc_map_del_next(m):
    return _map_del(m, "next", None)


def sc_map_del_close(m):
    return _map_del(m, "close", None)


def sc_map_bs_del_next(m):
    return _map_del(m, "next", 2)


def sc_map_bs_del_close(m):
    return _map_del(m, "close", 2)


@pytest.mark.parametrize("action", ["next", "close"])
@pytest.mark.parametrize("variant", ["map", "map_bs"])
def test_map_del_inside_next_reenters(mod, variant, action):
    # A __del__ run when next() drops the future it took the result from:
    # its next()/close() raises (reported as unraisable), the iteration is
    # undisturbed.
    out, unraisable = agreed_child("sc_%s_del_%s" % (variant, action), mod)
    assert out == [("return", 1), ("return", 2), ("return", 3), ("stop",),
                   ("stop",)]
    assert unraisable == [RUNNING[1:]] * 3
