"""wait(): return conditions, already-done and cancelled futures, duplicates,
timeouts, invalid arguments, futures completed by other threads."""

import concurrent.futures
import threading
import time

import pytest

from futures_helpers import (TIMEOUT, MyError, agreed, complete, make_futures,
                             must_wait, outcome, start)

pytestmark = pytest.mark.timeout(60)

ALL, FIRST, EXC = "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"
RETURN_WHENS = [ALL, FIRST, EXC]
DNDF = concurrent.futures._base.DoneAndNotDoneFutures


def split(fs, r):
    """(done indexes, not_done indexes) of a wait() result, sorted."""
    index = {f: i for i, f in enumerate(fs)}
    return (sorted(index[f] for f in r.done),
            sorted(index[f] for f in r.not_done))


def no_waiters_left(fs):
    return all(list(f._waiters) == [] for f in fs)


def test_result_type(mod):
    fs = make_futures(mod, "dp")
    r = mod.wait(fs, timeout=0)
    assert type(r) is DNDF
    assert type(r.done) is set and type(r.not_done) is set
    assert r._fields == ("done", "not_done")
    done, not_done = r
    assert done == {fs[0]} and not_done == {fs[1]}
    assert r.done is done


@pytest.mark.parametrize("return_when", RETURN_WHENS + ["bogus", None])
def test_empty(mod, return_when):
    def scenario(m):
        r = m.wait([], timeout=None, return_when=return_when)
        return type(r) is DNDF, r.done, r.not_done

    assert agreed(scenario, mod) == (True, set(), set())


@pytest.mark.parametrize("return_when", RETURN_WHENS + ["bogus"])
@pytest.mark.parametrize("spec", ["d", "e", "n", "dn", "den", "z"])
def test_all_done_returns_at_once(mod, return_when, spec):
    # Nothing to wait for: no waiting, so no check of return_when either.
    def scenario(m):
        fs = make_futures(m, spec)
        t0 = time.monotonic()
        r = m.wait(fs, return_when=return_when)
        return split(fs, r), time.monotonic() - t0 < 1.0, no_waiters_left(fs)

    assert agreed(scenario, mod) == (
        (list(range(len(spec))), []), True, True)


@pytest.mark.parametrize("spec, return_when, expected", [
    # FIRST_COMPLETED returns at once when anything is done
    ("dp", FIRST, ([0], [1])),
    ("pep", FIRST, ([1], [0, 2])),
    ("npr", FIRST, ([0], [1, 2])),
    # FIRST_EXCEPTION returns at once only for a real exception
    ("ep", EXC, ([0], [1])),
    ("dep", EXC, ([0, 1], [2])),
    ("dp", EXC, ([0], [1])),      # timeout=0 ends it
    ("np", EXC, ([0], [1])),      # cancelled is not an exception
    ("zp", EXC, ([0], [1])),      # set_exception(None) is not one either
    ("dp", ALL, ([0], [1])),
    ("rp", ALL, ([], [0, 1])),
    ("rp", FIRST, ([], [0, 1])),
])
@pytest.mark.parametrize("timeout", [0, -1])
def test_partially_done(mod, spec, return_when, expected, timeout):
    def scenario(m):
        fs = make_futures(m, spec)
        t0 = time.monotonic()
        r = m.wait(fs, timeout=timeout, return_when=return_when)
        return split(fs, r), time.monotonic() - t0 < 1.0, no_waiters_left(fs)

    assert agreed(scenario, mod) == (expected, True, True)


@pytest.mark.parametrize("return_when", RETURN_WHENS)
@pytest.mark.parametrize("timeout", [0, -5])
def test_cancelled_not_notified_is_not_done_for_wait(mod, return_when,
                                                     timeout):
    # cancel() makes done() True, yet wait() only counts the future once
    # set_running_or_notify_cancel() moved it to CANCELLED_AND_NOTIFIED.
    def scenario(m):
        fs = make_futures(m, "cdp")
        r = m.wait(fs, timeout=timeout, return_when=return_when)
        return split(fs, r), fs[0].done()

    expected_done = {ALL: [1], FIRST: [1], EXC: [1]}[return_when]
    assert agreed(scenario, mod) == ((expected_done, [0, 2]), True)


def test_notify_cancel_wakes_wait(mod):
    def scenario(m):
        fs = make_futures(m, "cc")
        go = threading.Event()

        def notify():
            must_wait(go)
            assert fs[1].set_running_or_notify_cancel() is False

        w = start(notify)
        go.set()
        r = m.wait(fs, timeout=TIMEOUT, return_when=FIRST)
        w.join()
        return split(fs, r)

    assert agreed(scenario, mod) == ([1], [0])


def test_cancel_alone_does_not_wake_wait(mod):
    # A pending future cancelled (but never notified) while wait() runs is
    # reported as not done when the timeout ends.
    def scenario(m):
        fs = make_futures(m, "p")
        go = threading.Event()

        def cancel():
            must_wait(go)
            assert fs[0].cancel() is True

        w = start(cancel)
        go.set()
        t0 = time.monotonic()
        r = m.wait(fs, timeout=0.2, return_when=FIRST)
        elapsed = time.monotonic() - t0
        w.join()
        return split(fs, r), elapsed >= 0.19, fs[0].done()

    assert agreed(scenario, mod) == (([], [0]), True, True)


@pytest.mark.parametrize("return_when", ["bogus", None, "first_completed", 1])
def test_invalid_return_when_raises_only_when_waiting(mod, return_when):
    def scenario(m):
        pending = make_futures(m, "dp")
        res = outcome(m.wait, pending, timeout=0, return_when=return_when)
        done = make_futures(m, "dn")
        no_wait = m.wait(done, return_when=return_when)
        return res, no_waiters_left(pending), split(done, no_wait)

    assert agreed(scenario, mod) == (
        ("raise", ValueError, "Invalid return condition: %r" % (return_when,)),
        True, ([0, 1], []))


def test_invalid_return_when_with_first_completed_style_shortcut(mod):
    # The FIRST_COMPLETED shortcut does not apply to an unknown condition:
    # a done future among pending ones still leads to the ValueError.
    def scenario(m):
        fs = make_futures(m, "dp")
        return outcome(m.wait, fs, None, "FIRST")

    assert agreed(scenario, mod) == (
        "raise", ValueError, "Invalid return condition: 'FIRST'")


def test_return_when_compared_by_value(mod):
    def scenario(m):
        fs = make_futures(m, "dp")
        first = "".join(["FIRST_", "COMPLETED"])
        exc = "".join(["FIRST_", "EXCEPTION"])
        r1 = m.wait(fs, timeout=5, return_when=first)
        fs2 = make_futures(m, "ep")
        r2 = m.wait(fs2, timeout=5, return_when=exc)
        return split(fs, r1), split(fs2, r2)

    assert agreed(scenario, mod) == (([0], [1]), ([0], [1]))


def test_module_constants_are_accepted(mod):
    fs = make_futures(mod, "dp")
    r = mod.wait(fs, timeout=5, return_when=mod.FIRST_COMPLETED)
    assert r.done == {fs[0]}
    fs = make_futures(mod, "ep")
    r = mod.wait(fs, timeout=5, return_when=mod.FIRST_EXCEPTION)
    assert r.done == {fs[0]}
    fs = make_futures(mod, "dd")
    r = mod.wait(fs, timeout=5, return_when=mod.ALL_COMPLETED)
    assert r.done == set(fs)


def test_duplicates(mod):
    def scenario(m):
        a, b, c = make_futures(m, "dpn")
        r = m.wait([a, a, b, b, c, a], timeout=0)
        return (len(r.done), len(r.not_done), r.done == {a, c},
                r.not_done == {b})

    assert agreed(scenario, mod) == (2, 1, True, True)


def test_duplicates_completed_while_waiting(mod):
    def scenario(m):
        a, b = make_futures(m, "pp")
        go = threading.Event()

        def finish():
            must_wait(go)
            a.set_result(1)
            b.set_exception(MyError())

        w = start(finish)
        go.set()
        r = m.wait([a, b, a, b, b], timeout=TIMEOUT)
        w.join()
        return r.done == {a, b}, r.not_done, no_waiters_left([a, b])

    assert agreed(scenario, mod) == (True, set(), True)


@pytest.mark.parametrize("kind", ["list", "tuple", "set", "frozenset",
                                  "iterator", "generator", "dict"])
def test_any_iterable(mod, kind):
    def scenario(m):
        fs = make_futures(m, "dnp")
        arg = {"list": list, "tuple": tuple, "set": set,
               "frozenset": frozenset, "iterator": iter,
               "generator": lambda x: (f for f in x),
               "dict": dict.fromkeys}[kind](fs)
        return split(fs, m.wait(arg, timeout=0))

    assert agreed(scenario, mod) == ([0, 1], [2])


def test_not_iterable(mod):
    def scenario(m):
        return outcome(m.wait, 5)[:2], outcome(m.wait, None)[:2]

    assert agreed(scenario, mod) == (("raise", TypeError),) * 2


def test_keyword_arguments(mod):
    fs = make_futures(mod, "dp")
    r = mod.wait(fs=fs, timeout=0, return_when=mod.FIRST_COMPLETED)
    assert r.done == {fs[0]}
    r = mod.wait(fs, 0, mod.ALL_COMPLETED)
    assert r.not_done == {fs[1]}


@pytest.mark.parametrize("return_when", [ALL, EXC])
def test_small_timeout(mod, return_when):
    def scenario(m):
        fs = make_futures(m, "dpr")
        t0 = time.monotonic()
        r = m.wait(fs, timeout=0.05, return_when=return_when)
        elapsed = time.monotonic() - t0
        return split(fs, r), 0.045 <= elapsed < 2.0, no_waiters_left(fs)

    assert agreed(scenario, mod) == (([0], [1, 2]), True, True)


def test_small_timeout_first_completed_waits(mod):
    fs = make_futures(mod, "pr")
    t0 = time.monotonic()
    r = mod.wait(fs, timeout=0.05, return_when=FIRST)
    assert 0.045 <= time.monotonic() - t0 < 2.0
    assert r.done == set() and r.not_done == set(fs)


# --------------------------------------------------------------------------
# completions from other threads while wait() blocks
# --------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", [None, 30])
def test_all_completed_by_other_threads(mod, timeout):
    def scenario(m):
        fs = make_futures(m, "pppdp")
        go = threading.Event()

        def finish(f, how):
            must_wait(go)
            complete(f, how)

        workers = [start(finish, fs[0], "result"),
                   start(finish, fs[1], "exception"),
                   start(finish, fs[2], "cancel"),
                   start(finish, fs[4], "result")]
        go.set()
        r = m.wait(fs, timeout=timeout)
        for w in workers:
            w.join()
        return split(fs, r), no_waiters_left(fs)

    assert agreed(scenario, mod) == (([0, 1, 2, 3, 4], []), True)


@pytest.mark.parametrize("how", ["result", "exception", "cancel"])
def test_first_completed_by_other_thread(mod, how):
    def scenario(m):
        fs = make_futures(m, "ppp")
        go, returned = threading.Event(), threading.Event()

        def finish():
            must_wait(go)
            complete(fs[1], how)
            must_wait(returned)
            complete(fs[0], "result")
            complete(fs[2], "result")

        w = start(finish)
        go.set()
        try:
            r = m.wait(fs, timeout=TIMEOUT, return_when=FIRST)
        finally:
            returned.set()
            w.join()
        return split(fs, r), no_waiters_left(fs)

    assert agreed(scenario, mod) == (([1], [0, 2]), True)


def test_first_exception_by_other_thread(mod):
    def scenario(m):
        fs = make_futures(m, "pppp")
        go, returned = threading.Event(), threading.Event()

        def finish():
            must_wait(go)
            complete(fs[0], "result")
            complete(fs[3], "cancel")
            complete(fs[2], "exception")
            must_wait(returned)
            complete(fs[1], "result")

        w = start(finish)
        go.set()
        try:
            r = m.wait(fs, timeout=TIMEOUT, return_when=EXC)
        finally:
            returned.set()
            w.join()
        return split(fs, r), no_waiters_left(fs)

    assert agreed(scenario, mod) == (([0, 2, 3], [1]), True)


@pytest.mark.parametrize("last", ["result", "cancel"])
def test_first_exception_without_exception_waits_for_all(mod, last):
    def scenario(m):
        fs = make_futures(m, "dpp")
        go = threading.Event()

        def finish():
            must_wait(go)
            complete(fs[1], "result")
            complete(fs[2], last)

        w = start(finish)
        go.set()
        r = m.wait(fs, timeout=TIMEOUT, return_when=EXC)
        w.join()
        return split(fs, r)

    assert agreed(scenario, mod) == ([0, 1, 2], [])


def test_timeout_with_partial_completion(mod):
    def scenario(m):
        fs = make_futures(m, "pp")
        go, returned = threading.Event(), threading.Event()
        finished_first = threading.Event()

        def finish():
            must_wait(go)
            complete(fs[0], "result")
            finished_first.set()
            must_wait(returned)
            complete(fs[1], "result")

        w = start(finish)
        go.set()
        try:
            must_wait(finished_first)
            r = m.wait(fs, timeout=0.1)
        finally:
            returned.set()
            w.join()
        return split(fs, r), no_waiters_left(fs)

    assert agreed(scenario, mod) == (([0], [1]), True)


def test_running_future_finishing_while_waited(mod):
    def scenario(m):
        fs = make_futures(m, "rr")
        go = threading.Event()

        def finish():
            must_wait(go)
            fs[0].set_result("a")
            fs[1].set_exception(MyError("b"))

        w = start(finish)
        go.set()
        r = m.wait(fs, timeout=TIMEOUT)
        w.join()
        return split(fs, r), fs[0].result(), repr(fs[1].exception())

    assert agreed(scenario, mod) == (([0, 1], []), "a", "MyError('b')")


def test_many_threads_waiting_on_the_same_futures(mod):
    def scenario(m):
        fs = make_futures(m, "ppp")
        ready = [threading.Event() for _ in range(6)]

        def waiter(i, return_when):
            ready[i].set()
            r = m.wait(fs, timeout=TIMEOUT, return_when=return_when)
            return r.done == set(fs) if return_when == ALL else len(r.done) > 0

        waiters = [start(waiter, i, RETURN_WHENS[i % 3]) for i in range(6)]
        for e in ready:
            must_wait(e)
        complete(fs[0], "exception")
        complete(fs[1], "cancel")
        complete(fs[2], "result")
        results = [w.join() for w in waiters]
        return results, no_waiters_left(fs)

    assert agreed(scenario, mod) == ([True] * 6, True)


def test_wait_returns_the_given_objects(mod):
    class Tagged(mod.Future):
        pass

    fs = [Tagged(), mod.Future()]
    fs[0].set_result(1)
    fs[0].tag = "a"
    r = mod.wait(fs, timeout=0)
    (only,) = r.done
    assert only is fs[0] and only.tag == "a"
    (other,) = r.not_done
    assert other is fs[1]
