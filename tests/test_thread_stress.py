"""A million tiny tasks through a 32-worker ThreadPoolExecutor while three
other threads cancel random futures, wait() on random slices with small
timeouts, and iterate as_completed() over random slices.

Afterwards every future is in exactly one final state -- finished with its
own result, or cancelled (exactly those a cancel() call returned True for) --
none is lost, every done-callback ran once, and nothing hung.

The full 1,000,000 tasks run on cfutures only (about 4-5 s on 2 cores).  The
stdlib does not fit the time budget with a million: measured here, 100,000
tasks already took 33 s under the contention of 35 threads (20,000 take
~1.3 s).  So the oracle runs the same scenario with 20,000 tasks: it checks
that the test itself is sound, not the speed.
"""

import collections
import concurrent.futures
import functools
import random
import threading
import time

import pytest

REF = concurrent.futures
N_CFUTURES = 1000000
N_STDLIB = 20000
WORKERS = 32
WAIT = 50.0                 # bound of every blocking call
CALLBACK_EVERY = 10         # a done-callback on every 10th future

pytestmark = pytest.mark.timeout(110)


# (the newest Python only: the races it drives are in the C code, the same
# on every version, and it takes ~20 s)
@pytest.mark.newest_only
def test_million_tasks_with_concurrent_cancel_wait_as_completed(mod):
    n = N_STDLIB if mod is REF else N_CFUTURES
    fs = []
    stop = threading.Event()
    errors = []
    cancelled_true = set()          # indices whose cancel() returned True
    stats = collections.Counter()
    fired = []                      # indices whose done-callback ran

    def helper(seed):
        """A helper thread's body: step(rnd, k), k the number of futures
        submitted so far (at least one), again and again until stopped; an
        error is kept and stops every helper."""
        def wrap(step):
            def run():
                rnd = random.Random(seed)
                try:
                    while not stop.is_set():
                        k = len(fs)
                        if k == 0:
                            stop.wait(0.001)
                            continue
                        step(rnd, k)
                except BaseException as exc:  # noqa: B902
                    errors.append(exc)
                    stop.set()
            run.__name__ = step.__name__
            return run
        return wrap

    @helper(1)
    def canceller(rnd, k):
        # Mostly the recent (likely still queued) futures.
        lo = max(0, k - 2000) if rnd.random() < 0.8 else 0
        i = rnd.randrange(lo, k)
        if fs[i].cancel():
            cancelled_true.add(i)
            stats["cancelled"] += 1
        stats["cancel calls"] += 1

    modes = [mod.FIRST_COMPLETED, mod.FIRST_EXCEPTION, mod.ALL_COMPLETED]

    @helper(2)
    def waiter(rnd, k):
        a = rnd.randrange(k)
        part = fs[a:a + rnd.randrange(1, 1000)]
        done, not_done = mod.wait(part, timeout=rnd.choice([0, 0.001, 0.005]),
                                  return_when=rnd.choice(modes))
        assert not (done & not_done)
        assert done | not_done == set(part)
        assert all(f.done() for f in done)
        stats["wait calls"] += 1

    @helper(3)
    def completer(rnd, k):
        a = rnd.randrange(k)
        part = fs[a:a + rnd.randrange(1, 1000)]
        seen = set()
        try:
            for f in mod.as_completed(part, timeout=0.01):
                assert f.done()
                assert f not in seen
                seen.add(f)
        except mod.TimeoutError:
            pass
        assert seen <= set(part)
        if len(seen) == len(part):
            stats["as_completed full"] += 1
        stats["as_completed calls"] += 1

    def record(i, f):
        fired.append(i)

    helpers = [threading.Thread(target=t, name="stress-%s" % t.__name__)
               for t in (canceller, waiter, completer)]
    ex = mod.ThreadPoolExecutor(WORKERS)
    t0 = time.monotonic()
    try:
        for t in helpers:
            t.start()
        submit = ex.submit
        append = fs.append
        for i in range(n):
            f = submit(int, i)
            if i % CALLBACK_EVERY == 0:
                f.add_done_callback(functools.partial(record, i))
            append(f)
            if errors:
                break
        submitted = time.monotonic()
        done, not_done = mod.wait(fs, timeout=WAIT)
        assert not not_done, "%d futures never completed" % len(not_done)
    finally:
        stop.set()
        deadline = time.monotonic() + WAIT
        for t in helpers:
            t.join(max(0.0, deadline - time.monotonic()))
        ex.shutdown(wait=True, cancel_futures=True)
    elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in helpers), "a helper thread hung"
    assert not any(t.is_alive() for t in ex._threads)
    if errors:
        raise errors[0]

    # Every future: in exactly one final state.
    assert len(fs) == n
    assert len(set(map(id, fs))) == n
    finished = cancelled = 0
    for i, f in enumerate(fs):
        state = f._state
        if state == "FINISHED":
            assert not f.cancelled()
            assert f.result(0) == i
            assert i not in cancelled_true
            finished += 1
        elif state in ("CANCELLED", "CANCELLED_AND_NOTIFIED"):
            assert f.cancelled() and f.done()
            assert i in cancelled_true
            cancelled += 1
        else:
            raise AssertionError("future %d left in state %s" % (i, state))
    assert finished + cancelled == n
    assert cancelled == len(cancelled_true)

    # Every done-callback ran exactly once.
    counts = collections.Counter(fired)
    assert set(counts) == set(range(0, n, CALLBACK_EVERY))
    assert set(counts.values()) == {1}

    # The helpers really ran alongside.
    assert stats["cancel calls"] > 0
    assert stats["wait calls"] > 0
    assert stats["as_completed calls"] > 0
    print("\n%s: %d tasks, submitted in %.2f s, total %.2f s, %r"
          % (mod.__name__, n, submitted - t0, elapsed, dict(stats)))
