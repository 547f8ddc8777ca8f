"""Thousands of futures completed from several threads while other threads
wait on them: every future ends in exactly one final state, every callback
runs exactly once, every waiter returns, nothing hangs."""

import collections
import random
import sys
import threading

import pytest

from futures_helpers import TIMEOUT, must_wait, start

pytestmark = pytest.mark.timeout(60)

N = 20000

class StressError(Exception):
    pass


@pytest.fixture(autouse=True)
def _frequent_thread_switches():
    """Switch threads every 10 us instead of 5 ms, so that the threads
    really interleave inside the operations under test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def expected_state(i):
    return "CANCELLED_AND_NOTIFIED" if i % 4 == 2 else "FINISHED"


def _complete(f, i):
    kind = i % 4
    if kind == 0:
        f.set_result(i)
    elif kind == 1:
        f.set_exception(StressError(i))
    elif kind == 2:
        assert f.cancel() is True
        assert f.set_running_or_notify_cancel() is False
    else:
        assert f.set_running_or_notify_cancel() is True
        f.set_result(i)


def recorded_futures(mod, n):
    """`n` futures of `mod`, and the list their done-callbacks append them
    to."""
    fs = [mod.Future() for _ in range(n)]
    calls = []
    for f in fs:
        f.add_done_callback(calls.append)
    return fs, calls


def start_completers(fs, count):
    """`count` helper threads that complete every future of `fs` (each its
    share, _complete) all at once, when the returned event is set."""
    go = threading.Event()

    def completer(part):
        must_wait(go)
        for i in part:
            _complete(fs[i], i)

    return go, [start(completer, range(k, len(fs), count))
                for k in range(count)]


def _check_one(m, f, i):
    """The final state of future i, seen through the public API."""
    kind = i % 4
    if kind == 2:
        try:
            f.result(timeout=TIMEOUT)
        except m.CancelledError:
            return f.cancelled() and f.done()
        return False
    if kind == 1:
        exc = f.exception(timeout=TIMEOUT)
        return type(exc) is StressError and exc.args == (i,) and f.done()
    return f.result(timeout=TIMEOUT) == i and not f.cancelled() and f.done()


def test_mixed_completions_with_concurrent_waiters(mod):
    fs = [mod.Future() for _ in range(N)]
    index = {f: i for i, f in enumerate(fs)}
    calls = []
    for f in fs:
        f.add_done_callback(calls.append)
    ready = []

    def watcher(fn):
        e = threading.Event()
        ready.append(e)

        def run():
            e.set()
            return fn()
        return run

    def wait_all():
        r = mod.wait(fs, timeout=TIMEOUT)
        return len(r.done), len(r.not_done)

    def iterate():
        seen = [index[f] for f in mod.as_completed(fs, timeout=TIMEOUT)]
        return len(seen), len(set(seen))

    def first_exception():
        r = mod.wait(fs, timeout=TIMEOUT, return_when=mod.FIRST_EXCEPTION)
        return any(not f.cancelled() and f.exception(timeout=0) is not None
                   for f in r.done)

    def first_completed_in_chunks():
        hits = 0
        for k in range(0, N, 500):
            r = mod.wait(fs[k:k + 500], timeout=TIMEOUT,
                         return_when=mod.FIRST_COMPLETED)
            hits += bool(r.done)
        return hits

    def results():
        return all(_check_one(mod, fs[i], i) for i in range(0, N, 7))

    jobs = [wait_all, iterate, first_exception, first_completed_in_chunks,
            results]
    watchers = [start(watcher(job)) for job in jobs]
    for e in ready:
        must_wait(e)

    go, completers = start_completers(fs, 4)
    go.set()
    for w in completers:
        w.join(TIMEOUT)
    outcomes = [w.join(TIMEOUT) for w in watchers]

    assert outcomes == [(N, 0), (N, N), True, N // 500, True]
    counts = collections.Counter(index[f] for f in calls)
    assert len(calls) == N and len(counts) == N
    assert [f._state for f in fs] == [expected_state(i) for i in range(N)]
    assert all(_check_one(mod, f, i) for i, f in enumerate(fs))
    assert all(list(f._waiters) == [] for f in fs)


def test_cancel_races_with_worker(mod):
    n = 5000
    fs, calls = recorded_futures(mod, n)
    go = threading.Event()

    def worker():
        must_wait(go)
        started = []
        for i, f in enumerate(fs):
            run = f.set_running_or_notify_cancel()
            started.append(run)
            if run:
                f.set_result(i)
        return started

    order = list(range(n))
    random.Random(20240501).shuffle(order)

    def canceller():
        # A shuffled order, so that it meets the worker all along the list.
        must_wait(go)
        got = [None] * n
        for i in order:
            got[i] = fs[i].cancel()
        return got

    def consumer():
        return sum(1 for _ in mod.as_completed(fs, timeout=TIMEOUT))

    ws = [start(worker), start(canceller), start(consumer)]
    go.set()
    started, cancelled, consumed = [w.join(TIMEOUT) for w in ws]

    assert consumed == n
    assert len(calls) == n and len(set(map(id, calls))) == n
    for i, f in enumerate(fs):
        assert started[i] is (not cancelled[i]), i
        if cancelled[i]:
            assert f._state == "CANCELLED_AND_NOTIFIED" and f.cancelled()
        else:
            assert f._state == "FINISHED" and f.result(timeout=0) == i


def test_concurrent_setters_exactly_one_wins(mod):
    n = 5000
    fs, calls = recorded_futures(mod, n)
    go = threading.Event()

    def setter(tag):
        must_wait(go)
        won = []
        for f in fs:
            try:
                if tag % 2:
                    f.set_exception(StressError(tag))
                else:
                    f.set_result(tag)
            except mod.InvalidStateError:
                won.append(False)
            else:
                won.append(True)
        return won

    ws = [start(setter, tag) for tag in range(4)]
    go.set()
    wins = [w.join(TIMEOUT) for w in ws]

    for i, f in enumerate(fs):
        winners = [tag for tag in range(4) if wins[tag][i]]
        assert len(winners) == 1, (i, winners)
        (tag,) = winners
        if tag % 2:
            assert f.exception(timeout=0).args == (tag,)
        else:
            assert f.result(timeout=0) == tag
    assert len(calls) == n and len(set(map(id, calls))) == n


def test_many_threads_waiting_on_each_future_in_turn(mod):
    # The producer completes future i+1 only once follower 0 has received
    # future i, so the followers mostly find each future still pending and
    # block on it.
    n = 400
    fs = [mod.Future() for _ in range(n)]
    received = [threading.Event() for _ in range(n)]

    def follow(style):
        seen = []
        for i, f in enumerate(fs):
            if style == 0:
                seen.append(f.result(timeout=TIMEOUT))
            elif style == 1:
                seen.append(f.exception(timeout=TIMEOUT))
            elif style == 2:
                r = mod.wait([f], timeout=TIMEOUT)
                seen.append(f in r.done)
            else:
                seen.append(next(mod.as_completed([f], timeout=TIMEOUT)) is f)
            if style == 0:
                received[i].set()
        return seen

    followers = [start(follow, k % 4) for k in range(8)]

    def produce():
        for i, f in enumerate(fs):
            f.set_result(i)
            must_wait(received[i], TIMEOUT)

    producer = start(produce)
    producer.join(TIMEOUT)
    results = [w.join(TIMEOUT) for w in followers]
    for k, seen in enumerate(results):
        expected = {0: list(range(n)), 1: [None] * n, 2: [True] * n,
                    3: [True] * n}[k % 4]
        assert seen == expected, k


def test_wait_first_completed_loop_drains_everything(mod):
    # The classic consumer loop: wait(FIRST_COMPLETED) on what is left.
    n = 3000
    fs = [mod.Future() for _ in range(n)]
    go, workers = start_completers(fs, 3)
    go.set()
    pending = set(fs)
    finished = set()
    rounds = 0
    while pending:
        rounds += 1
        assert rounds <= n + 1
        r = mod.wait(pending, timeout=TIMEOUT, return_when=mod.FIRST_COMPLETED)
        assert r.done, "FIRST_COMPLETED returned nothing done"
        assert not (r.done & finished)
        finished |= r.done
        pending = r.not_done
    for w in workers:
        w.join(TIMEOUT)
    assert len(finished) == n
