"""Reference and memory leaks in the C code, found by repetition.

Each scenario runs many times after a warm-up; the memory still allocated
afterwards (tracemalloc, which sees every Python allocation) must not grow
with the number of repetitions.  A leaked reference keeps its object — and
its memory — alive, so this catches refcount leaks without a debug build.
"""
import gc
import threading
import tracemalloc

import pytest

import cfutures
import concurrent.futures as stdlib

from futures_helpers import TIMEOUT

ROUNDS = 2000


def growth_per_round(scenario, rounds=ROUNDS, windows=2):
    """Memory growth per round: the smallest growth per round over `windows`
    windows of `rounds` rounds each, measured after a first window that only
    settles.  A leak grows in every window by the same amount per round;
    one-off costs (caches, a list that grew once, allocator arenas still
    settling: measured up to ~10 bytes per round in the first window, under
    1 in the second, for the process pool; a single window of ~40 bytes per
    round now and then on a loaded machine, for short windows: those ask for
    more windows) land in some windows and do not count."""
    for _ in range(200):            # warm-up: caches, free lists, interned names
        scenario()
    tracemalloc.start()
    try:
        checkpoints = []
        for _ in range(windows + 1):
            for _ in range(rounds):
                scenario()
            gc.collect()
            checkpoints.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    return min(after - before for before, after in zip(checkpoints, checkpoints[1:])) / rounds


class Boom(Exception):
    pass


def future_lifecycle():
    f = cfutures.Future()
    f.add_done_callback(lambda f: None)
    f.set_result(object())
    f.result()
    repr(f)
    g = cfutures.Future()
    g.set_exception(Boom("x"))
    try:
        g.result()
    except Boom:
        pass
    g.exception()
    h = cfutures.Future()
    h.cancel()
    h.set_running_or_notify_cancel()
    try:
        h.result()
    except stdlib.CancelledError:
        pass
    try:
        h.set_result(1)
    except stdlib.InvalidStateError:
        pass


def failing_callback():
    f = cfutures.Future()
    f.add_done_callback(lambda f: 1 / 0)
    f.set_result(1)


def timeouts():
    f = cfutures.Future()
    for call in (f.result, f.exception):
        try:
            call(timeout=0)
        except stdlib.TimeoutError:
            pass
    cfutures.wait([f], timeout=0)
    try:
        list(cfutures.as_completed([f], timeout=0))
    except stdlib.TimeoutError:
        pass


def mixed_waits():
    ours, theirs = cfutures.Future(), stdlib.Future()
    done = cfutures.Future()
    done.set_result(1)
    fs = [ours, theirs, done]
    cfutures.wait(fs, timeout=0)
    it = cfutures.as_completed(fs)
    next(it)
    ours.set_result(2)
    theirs.set_exception(Boom())
    cfutures.wait(fs, return_when=cfutures.FIRST_EXCEPTION)
    list(it)
    stdlib.wait([cfutures.Future()], timeout=0)
    assert theirs._waiters == []


def waited_across_threads():
    f = cfutures.Future()
    t = threading.Thread(target=f.set_result, args=(3,))
    t.start()
    f.result(timeout=TIMEOUT)
    t.join(TIMEOUT)


def abandoned_iterator():
    f = cfutures.Future()
    it = cfutures.as_completed([f, stdlib.Future()])
    del it


# Fewer rounds where a round is costly and settles at once: a thread start
# per round (about a millisecond), measured at under 0.2 bytes per round from 300 rounds
# on, 3.9-3.13.  (mixed_waits keeps ROUNDS: one-off growth there measured
# up to ~12 bytes per round at 300 rounds.)
ROUNDS_OF = {waited_across_threads: 500}


@pytest.mark.parametrize("scenario", [future_lifecycle, failing_callback, timeouts, mixed_waits,
                                      waited_across_threads, abandoned_iterator])
def test_no_growth(scenario, caplog):
    caplog.set_level(100)           # keep the logged callback errors out of memory
    # A leak here is at least one object per round: ~50 bytes and up.
    assert growth_per_round(scenario, ROUNDS_OF.get(scenario, ROUNDS)) < 8


# ---- executors: the per-task paths in C ------------------------------------

def _square(x):
    return x * x


def _fail(x):
    raise ValueError(x)


def test_thread_pool_tasks_do_not_grow():
    with cfutures.ThreadPoolExecutor(2) as ex:
        def scenario():
            ex.submit(_square, 3).result(timeout=TIMEOUT)
            assert ex.submit(_fail, 1).exception(timeout=TIMEOUT) is not None
            list(ex.map(_square, range(3), buffersize=2))
        assert growth_per_round(scenario, rounds=500) < 8


def test_process_pool_tasks_do_not_grow():
    # More rounds than elsewhere: each one goes through a worker process, and
    # one-off allocations (linecache for the formatted tracebacks, allocator
    # arenas) need many rounds to average out; a leak stays constant per round.
    lock = threading.Lock()
    with cfutures.ProcessPoolExecutor(1) as ex:
        def scenario():
            ex.submit(_square, 3).result(timeout=TIMEOUT)
            assert ex.submit(_fail, 1).exception(timeout=TIMEOUT) is not None
            # the pickling error lands on the future, in the parent
            assert ex.submit(_square, lock).exception(timeout=TIMEOUT) is not None
            list(ex.map(_square, range(4), chunksize=2))
        assert growth_per_round(scenario, rounds=1000) < 8
