"""Timeouts too large to wait for: float('inf'), 1e300, 10**30 and twice
threading.TIMEOUT_MAX.

The stdlib converts the timeout when it has to block, and raises the
OverflowError of that conversion (its message differs between versions and
between float and int timeouts: both modules are compared on type AND
message).  Where nothing has to be waited for -- a finished future, a
FIRST_COMPLETED wait with one done -- the call returns normally.

Covered: Future.result() / exception(), wait(), as_completed() (raised by
next()), Executor.map() (raised by next() when the result must be waited
for; with and without buffersize), and map with hugely negative timeouts
(a deadline long past: TimeoutError, not an endless wait).

Each pending future is completed by a threading.Timer after ~2 s, so an
implementation that waits instead of raising returns (and the test fails)
instead of hanging.
"""

import concurrent.futures
import threading

import pytest

from futures_helpers import TIMEOUT, agreed, outcome
from test_iterator_reentry import bmap

REF = concurrent.futures
LATE = 2.0              # when the timer completes what was pending
pytestmark = pytest.mark.timeout(120)

TOO_LARGE = [
    pytest.param(float("inf"), id="inf"),
    pytest.param(1e300, id="1e300"),
    pytest.param(10 ** 30, id="int_1e30"),
    pytest.param(threading.TIMEOUT_MAX * 2, id="twice_TIMEOUT_MAX"),
]

HUGELY_NEGATIVE = [
    pytest.param(float("-inf"), id="-inf"),
    pytest.param(-1e300, id="-1e300"),
    pytest.param(-(10 ** 30), id="-int_1e30"),
]


class Later(object):
    """Calls fn(*args) from a threading.Timer after LATE seconds; joined
    (and cancelled if not yet run) on exit."""

    def __init__(self, fn, *args):
        self.timer = threading.Timer(LATE, fn, args)

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        self.timer.join(TIMEOUT)


def short(o):
    """An outcome without the returned value (futures differ by module)."""
    return o[:1] if o[0] == "return" else o


# ---- Future.result() / exception() ------------------------------------------

@pytest.mark.parametrize("method", ["result", "exception"])
@pytest.mark.parametrize("timeout", TOO_LARGE)
def test_future_wait(mod, method, timeout):
    def scenario(m):
        done = m.Future()
        done.set_result("x")
        pending = m.Future()
        with Later(pending.set_result, "late"):
            blocked = outcome(getattr(pending, method), timeout=timeout)
        return outcome(getattr(done, method), timeout=timeout), blocked

    on_done, on_pending = agreed(scenario, mod)
    assert on_done == ("return", "x" if method == "result" else None)
    assert on_pending[:2] == ("raise", OverflowError)


# ---- wait() -----------------------------------------------------------------

@pytest.mark.parametrize("timeout", TOO_LARGE)
def test_wait(mod, timeout):
    def scenario(m):
        done, pending = m.Future(), m.Future()
        done.set_result(1)
        sizes = lambda r: (len(r.done), len(r.not_done))  # noqa: E731
        # Nothing to wait for: returns.
        first = outcome(lambda: sizes(m.wait(
            [done, pending], timeout, return_when=m.FIRST_COMPLETED)))
        only_done = outcome(lambda: sizes(m.wait([done], timeout)))
        # Has to wait: raises.
        with Later(pending.set_result, 2):
            blocked = outcome(m.wait, [done, pending], timeout)
        return first, only_done, short(blocked)

    first, only_done, blocked = agreed(scenario, mod)
    assert first == ("return", (1, 1))
    assert only_done == ("return", (1, 0))
    assert blocked[:2] == ("raise", OverflowError)


# ---- as_completed() ---------------------------------------------------------

@pytest.mark.parametrize("timeout", TOO_LARGE)
def test_as_completed(mod, timeout):
    def scenario(m):
        done, pending = m.Future(), m.Future()
        done.set_result(1)
        it = m.as_completed([done, pending], timeout=timeout)
        # The finished future comes without waiting ...
        first = outcome(lambda: next(it) is done)
        # ... the pending one has to be waited for.
        with Later(pending.set_result, 2):
            blocked = outcome(next, it)
        return first, short(blocked), short(outcome(next, it))

    first, blocked, after = agreed(scenario, mod)
    assert first == ("return", True)
    assert blocked[:2] == ("raise", OverflowError)
    assert after[:2] == ("raise", StopIteration)


# ---- Executor.map() ---------------------------------------------------------

def map_waiting(m, timeout, buffersize):
    """map over [0, 1] on one worker: 0 is done before the first next(),
    1 runs until the timer releases it.  Outcomes of three next()."""
    started, go = threading.Event(), threading.Event()

    def task(i):
        if i == 1:
            started.set()
            go.wait(TIMEOUT)
        return i

    kwargs = {} if buffersize is None else {"buffersize": buffersize}
    ex = m.ThreadPoolExecutor(1)
    try:
        with Later(go.set):
            it = bmap(m, ex, task, [0, 1], timeout=timeout, **kwargs)
            # One worker, in order: item 1 started, so item 0 is done.
            assert started.wait(TIMEOUT)
            out = [outcome(next, it) for _ in range(3)]
    finally:
        go.set()
        ex.shutdown(wait=True)
    return out


@pytest.mark.parametrize("buffersize", [None, 2])
@pytest.mark.parametrize("timeout", TOO_LARGE)
def test_map(mod, timeout, buffersize):
    def scenario(m):
        return map_waiting(m, timeout, buffersize)

    done, blocked, after = agreed(scenario, mod)
    assert done == ("return", 0)
    assert blocked[:2] == ("raise", OverflowError)
    assert after[:2] == ("raise", StopIteration)


@pytest.mark.parametrize("timeout", HUGELY_NEGATIVE)
def test_map_deadline_long_past(mod, timeout):
    # A finished result is still handed out; the pending one times out at
    # once.
    def scenario(m):
        return map_waiting(m, timeout, None)

    done, blocked, after = agreed(scenario, mod)
    assert done == ("return", 0)
    assert blocked[:2] == ("raise", REF.TimeoutError)
    assert after[:2] == ("raise", StopIteration)
