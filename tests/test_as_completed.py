"""as_completed(): done futures first, then completion order; duplicates;
timeouts and their message; laziness; no waiter left behind."""

import concurrent.futures
import gc
import threading
import time

import pytest

from futures_helpers import (TIMEOUT, LogCapture, MyError, agreed, agreed_once, complete,
                             make_futures, must_wait, outcome, start)

pytestmark = pytest.mark.timeout(60)


def indexes(fs, yielded):
    index = {f: i for i, f in enumerate(fs)}
    return [index[f] for f in yielded]


def drain(it, limit=10000):
    """Consume *it*; return (yielded items, ('stop',) or error outcome)."""
    got = []
    for _ in range(limit):
        try:
            got.append(next(it))
        except StopIteration:
            return got, ("stop",)
        except BaseException as exc:  # noqa: B902
            return got, ("raise", type(exc), str(exc))
    raise AssertionError("iterator did not end")


def waiters_of(fs):
    return [len(f._waiters) for f in fs]


def test_returns_an_iterator(mod):
    fs = make_futures(mod, "d")
    it = mod.as_completed(fs)
    assert iter(it) is it
    assert next(it) is fs[0]
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_empty(mod):
    def scenario(m):
        return (list(m.as_completed([])), list(m.as_completed([], timeout=0)),
                list(m.as_completed((), timeout=-1)))

    assert agreed(scenario, mod) == ([], [], [])


@pytest.mark.parametrize("timeout", [None, 0, -1, 5])
def test_done_futures_all_yielded(mod, timeout):
    def scenario(m):
        fs = make_futures(m, "dendn")
        got = list(m.as_completed(fs, timeout=timeout))
        return sorted(indexes(fs, got)), waiters_of(fs)

    assert agreed(scenario, mod) == ([0, 1, 2, 3, 4], [0] * 5)


def test_duplicates_yielded_once(mod):
    def scenario(m):
        a, b, c = make_futures(m, "dnp")
        go = threading.Event()

        def finish():
            must_wait(go)
            c.set_result(3)

        w = start(finish)
        go.set()
        got = list(m.as_completed([a, b, a, c, c, b, a], timeout=TIMEOUT))
        w.join()
        return len(got), set(got) == {a, b, c}, got[-1] is c

    assert agreed(scenario, mod) == (3, True, True)


@pytest.mark.parametrize("kind", ["list", "tuple", "set", "iterator",
                                  "generator", "dict"])
def test_any_iterable(mod, kind):
    def scenario(m):
        fs = make_futures(m, "dne")
        arg = {"list": list, "tuple": tuple, "set": set, "iterator": iter,
               "generator": lambda x: (f for f in x),
               "dict": dict.fromkeys}[kind](fs)
        return sorted(indexes(fs, m.as_completed(arg)))

    assert agreed(scenario, mod) == [0, 1, 2]


def test_done_first_then_completion_order(mod):
    def scenario(m):
        fs = make_futures(m, "pdpnpe")
        go = threading.Event()

        def finish():
            must_wait(go)
            complete(fs[4], "result")
            complete(fs[0], "cancel")
            complete(fs[2], "exception")

        w = start(finish)
        it = m.as_completed(fs, timeout=TIMEOUT)
        first = [next(it) for _ in range(3)]
        go.set()
        rest, end = drain(it)
        w.join()
        return sorted(indexes(fs, first)), indexes(fs, rest), end, \
            waiters_of(fs)

    assert agreed(scenario, mod) == (
        [1, 3, 5], [4, 0, 2], ("stop",), [0] * 6)


def test_completion_order_one_by_one(mod):
    # The consumer releases each completion only after receiving the
    # previous one, so the order is fully determined.
    def scenario(m):
        fs = make_futures(m, "ppppp")
        order = [3, 1, 4, 0, 2]
        hows = ["result", "exception", "cancel", "result", "exception"]
        received = [threading.Event() for _ in order]

        def finish():
            for k, (i, how) in enumerate(zip(order, hows)):
                complete(fs[i], how)
                must_wait(received[k])

        w = start(finish)
        got = []
        for k, f in enumerate(m.as_completed(fs, timeout=TIMEOUT)):
            got.append(f)
            received[k].set()
        w.join()
        return indexes(fs, got)

    assert agreed(scenario, mod) == [3, 1, 4, 0, 2]


def test_cancelled_not_notified_waits_for_notification(mod):
    def scenario(m):
        fs = make_futures(m, "cd")
        go = threading.Event()

        def notify():
            must_wait(go)
            assert fs[0].set_running_or_notify_cancel() is False

        w = start(notify)
        it = m.as_completed(fs, timeout=TIMEOUT)
        first = next(it)
        go.set()
        second = next(it)
        w.join()
        return indexes(fs, [first, second]), drain(it)[1]

    assert agreed(scenario, mod) == ([1, 0], ("stop",))


def test_cancel_without_notify_times_out(mod):
    def scenario(m):
        fs = make_futures(m, "cpd")
        fs[1].cancel()
        got, end = drain(m.as_completed(fs, timeout=0.05))
        return indexes(fs, got), end, waiters_of(fs)

    assert agreed(scenario, mod) == (
        [2], ("raise", concurrent.futures.TimeoutError,
              "2 (of 3) futures unfinished"), [0, 0, 0])


# --------------------------------------------------------------------------
# timeouts
# --------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", [0, -1, 0.0, 0.02])
@pytest.mark.parametrize("spec, pending", [
    ("p", 1), ("pp", 2), ("dpp", 2), ("pndrp", 3), ("ppppppppppc", 11)])
def test_timeout_message(mod, timeout, spec, pending):
    def scenario(m):
        fs = make_futures(m, spec)
        got, end = drain(m.as_completed(fs, timeout=timeout))
        return sorted(indexes(fs, got)), end, waiters_of(fs)

    done = [i for i, ch in enumerate(spec) if ch in "dn"]
    assert agreed(scenario, mod) == (
        done, ("raise", concurrent.futures.TimeoutError,
               "%d (of %d) futures unfinished" % (pending, len(spec))),
        [0] * len(spec))


def test_timeout_message_counts_distinct_futures(mod):
    def scenario(m):
        a, b, c = make_futures(m, "pdp")
        got, end = drain(m.as_completed([a, b, a, a, c, b], timeout=0))
        return len(got), end

    assert agreed(scenario, mod) == (
        1, ("raise", concurrent.futures.TimeoutError,
            "2 (of 3) futures unfinished"))


def test_timeout_after_some_complete(mod):
    def scenario(m):
        fs = make_futures(m, "ppp")
        go, received = threading.Event(), threading.Event()

        def finish():
            must_wait(go)
            complete(fs[1], "result")
            must_wait(received)

        w = start(finish)
        it = m.as_completed(fs, timeout=0.5)
        go.set()
        try:
            first = next(it)
            received.set()
            rest, end = drain(it)
        finally:
            received.set()
            w.join()
        return indexes(fs, [first] + rest), end

    assert agreed_once(scenario, mod) == (
        [1], ("raise", concurrent.futures.TimeoutError,
              "2 (of 3) futures unfinished"))


def test_timeout_error_is_the_right_class(mod):
    it = mod.as_completed([mod.Future()], timeout=0)
    with pytest.raises(concurrent.futures.TimeoutError) as info:
        next(it)
    assert type(info.value) is concurrent.futures.TimeoutError
    assert info.value.args == ("1 (of 1) futures unfinished",)
    # the iterator is finished after raising
    with pytest.raises(StopIteration):
        next(it)


def test_small_timeout_waits(mod):
    fs = make_futures(mod, "pd")
    t0 = time.monotonic()
    got, end = drain(mod.as_completed(fs, timeout=0.1))
    elapsed = time.monotonic() - t0
    assert got == [fs[1]]
    assert end == ("raise", concurrent.futures.TimeoutError,
                   "1 (of 2) futures unfinished")
    assert 0.095 <= elapsed < 2.0


def test_timeout_measured_from_first_next(mod):
    # Like the stdlib generator, nothing happens (not even reading the
    # clock) before the first next(): a consumer that starts late still
    # gets the whole timeout.
    fs = make_futures(mod, "dp")
    it = mod.as_completed(fs, timeout=0.3)
    time.sleep(0.4)  # the delay under test, not synchronisation
    t0 = time.monotonic()
    assert next(it) is fs[0]
    with pytest.raises(concurrent.futures.TimeoutError):
        next(it)
    assert 0.25 <= time.monotonic() - t0 < 2.0


# --------------------------------------------------------------------------
# laziness: like a generator, nothing happens before the first next()
# --------------------------------------------------------------------------

@pytest.mark.parametrize("fs, timeout, expected_type", [
    (None, None, TypeError),
    (5, None, TypeError),
    ([1, 2], None, AttributeError),
    ([], "soon", TypeError),
])
def test_argument_errors_start_at_first_next(mod, fs, timeout, expected_type):
    def scenario(m):
        it = m.as_completed(fs, timeout=timeout)  # must not raise
        first = outcome(next, it)[:2]
        return first, outcome(next, it)[:2]

    assert agreed(scenario, mod) == (
        ("raise", expected_type), ("raise", StopIteration))


def test_unhashable_item_errors_at_first_next(mod):
    def scenario(m):
        it = m.as_completed([[]])
        return outcome(next, it)[:2]

    assert agreed(scenario, mod) == ("raise", TypeError)


def test_nothing_installed_before_first_next(mod):
    def scenario(m):
        fs = make_futures(m, "pp")
        it = m.as_completed(fs, timeout=0)
        before = waiters_of(fs)
        got, end = drain(it)
        return before, got, end[:2], waiters_of(fs)

    assert agreed(scenario, mod) == (
        [0, 0], [], ("raise", concurrent.futures.TimeoutError), [0, 0])


def test_iterable_consumed_lazily(mod):
    def scenario(m):
        consumed = []
        fs = make_futures(m, "dd")

        def gen():
            for f in fs:
                consumed.append(f)
                yield f

        it = m.as_completed(gen())
        before = len(consumed)
        first = next(it)
        return before, len(consumed), first in fs

    assert agreed(scenario, mod) == (0, 2, True)


# --------------------------------------------------------------------------
# no waiter left behind
# --------------------------------------------------------------------------

def _check_clean_after_completion(fs):
    """Completing the futures later must neither fail nor log."""
    with LogCapture() as logs:
        for f in fs:
            if not f.done():
                f.set_result(None)
    return [r.getMessage() for r in logs.records]


@pytest.mark.parametrize("futures_of", ["mod", "oracle"])
@pytest.mark.parametrize("how", ["close", "gc", "break", "exhausted",
                                 "timeout"])
def test_no_waiter_left_behind(mod, futures_of, how):
    # futures_of="oracle": mod.as_completed over concurrent.futures futures,
    # the futures whose _waiters protocol the check below is about.
    def scenario(m):
        fm = m if futures_of == "mod" else concurrent.futures
        fs = make_futures(fm, "dpdp")
        if how == "exhausted":
            fs[1].set_result(1)
            fs[3].set_result(3)
            got = list(m.as_completed(fs, timeout=TIMEOUT))
            n = len(got)
        elif how == "timeout":
            n = len(drain(m.as_completed(fs, timeout=0.01))[0])
        else:
            it = m.as_completed(fs, timeout=TIMEOUT)
            n = 0
            for f in it:
                n += 1
                break
            del f
            if how == "close":
                it.close()
                assert outcome(next, it)[:2] == ("raise", StopIteration)
            elif how == "gc":
                del it
                gc.collect()
            elif how == "break":
                del it
        return n, waiters_of(fs), _check_clean_after_completion(fs)

    n = {"exhausted": 4, "timeout": 2, "break": 1}.get(how, 1)
    assert agreed(scenario, mod) == (n, [0, 0, 0, 0], [])


def test_close_before_first_next(mod):
    fs = make_futures(mod, "p")
    it = mod.as_completed(fs, timeout=1)
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    assert waiters_of(fs) == [0]


def test_unused_iterator_is_harmless(mod):
    fs = make_futures(mod, "pd")
    it = mod.as_completed(fs)
    del it
    gc.collect()
    fs[0].set_result(1)
    assert waiters_of(fs) == [0, 0]


def test_blocked_consumer_sees_completions_from_many_threads(mod):
    def scenario(m):
        n = 40
        fs = make_futures(m, "p" * n)
        go = threading.Event()

        def finish(part):
            must_wait(go)
            for i in part:
                complete(fs[i], ("result", "exception", "cancel")[i % 3])

        workers = [start(finish, range(k, n, 4)) for k in range(4)]
        go.set()
        got = list(m.as_completed(fs, timeout=TIMEOUT))
        for w in workers:
            w.join()
        return len(got), sorted(indexes(fs, got)) == list(range(n)), \
            waiters_of(fs) == [0] * n

    assert agreed(scenario, mod) == (40, True, True)
