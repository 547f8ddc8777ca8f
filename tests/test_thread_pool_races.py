"""ThreadPoolExecutor under concurrent submitters: races around starting
workers.

The stdlib starts a worker and adds it to ``_threads`` under
``_shutdown_lock``, which ``submit()`` and ``shutdown()`` both take, so

- ``shutdown(wait=True)`` returns only after every task that ``submit()``
  accepted has finished, even while other threads are submitting;
- a pool never has more than ``max_workers`` threads;
- worker names are ``<prefix>_0`` .. ``<prefix>_<max_workers-1>``, unique;
- a task that calls ``shutdown(wait=True)`` on its own pool finds its own
  thread in ``_threads`` and gets ``RuntimeError('cannot join current
  thread')`` on its future; ``shutdown(wait=False)`` from a task works.

Each race test runs many short rounds with a tiny switch interval
(``sys.setswitchinterval(1e-6)``, restored afterwards) to widen the windows,
counts the rounds that went wrong and asserts none did, on both modules.
Every blocking call is bounded.
"""

import random
import sys
import threading
import time

import pytest

from futures_helpers import (SHUTDOWN, TIMEOUT, join_all, outcome,
                             pool_threads, unique_prefix)

ROUNDS = 100

pytestmark = pytest.mark.timeout(60)

# ---- helpers ----------------------------------------------------------------

@pytest.fixture
def tiny_switch_interval():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


_never = threading.Event()


def short_task():
    """A task that takes about a millisecond (the event is never set)."""
    _never.wait(0.001)
    return 1


def jitter(rnd, upto):
    """Busy-wait a random time in [0, upto) s: a random moment to act."""
    deadline = time.perf_counter() + rnd.uniform(0, upto)
    while time.perf_counter() < deadline:
        pass


def start_submitters(ex, n, per_thread, fs, errors, barrier):
    """n threads, each submitting short_task up to per_thread times into fs,
    stopping at the first RuntimeError of a shut-down pool."""

    def submitter():
        try:
            barrier.wait()
            for _ in range(per_thread):
                try:
                    fs.append(ex.submit(short_task))
                except RuntimeError as exc:
                    if str(exc) != SHUTDOWN:
                        raise
                    return
        except BaseException as exc:  # noqa: B902 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=submitter) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


# ---- (a) shutdown(wait=True) waits for every accepted task ------------------

def shutdown_while_submitting(mod, rounds=ROUNDS, workers=4, submitters=2,
                              per_thread=10, upto=0.002):
    """Rounds in which shutdown(wait=True) returned while a future that
    submit() had returned was not done: [(round, pending, live workers)]."""
    rnd = random.Random(1234)
    bad = []
    for r in range(rounds):
        prefix = unique_prefix("sd")
        ex = mod.ThreadPoolExecutor(workers, thread_name_prefix=prefix)
        fs, errors = [], []
        barrier = threading.Barrier(submitters + 1, timeout=TIMEOUT)
        threads = start_submitters(ex, submitters, per_thread, fs, errors,
                                   barrier)
        barrier.wait()
        jitter(rnd, upto)
        ex.shutdown(wait=True)
        pending = [f for f in list(fs) if not f.done()]
        alive = [t.name for t in pool_threads(prefix) if t.is_alive()]
        join_all(threads)
        if errors:
            raise errors[0]
        if pending:
            bad.append((r, len(pending), alive))
        # Let the stragglers finish before the next round.
        done, not_done = mod.wait(fs, timeout=TIMEOUT)
        assert not not_done
        join_all(pool_threads(prefix))
    return bad


def test_shutdown_wait_waits_for_tasks_of_concurrent_submitters(
        mod, tiny_switch_interval):
    bad = shutdown_while_submitting(mod)
    assert bad == [], (
        "%d of %d rounds: shutdown(wait=True) returned with futures still "
        "pending; first (round, pending, live workers): %r"
        % (len(bad), ROUNDS, bad[:5]))


# ---- (b) and (d) threads and their names under concurrent submitters --------

def burst_rounds(mod, rounds=ROUNDS, workers=4, submitters=4, per_thread=10):
    """Per round: (peak live pool threads seen, names of ex._threads, names
    seen by the tasks, the pool's prefix)."""
    out = []
    for _ in range(rounds):
        prefix = unique_prefix("burst")
        ex = mod.ThreadPoolExecutor(workers, thread_name_prefix=prefix)
        peak = [0]
        seen_names = set()
        lock = threading.Lock()

        def task():
            live = max(len(pool_threads(prefix)), len(ex._threads))
            with lock:
                seen_names.add(threading.current_thread().name)
                peak[0] = max(peak[0], live)
            return short_task()

        fs, errors = [], []
        barrier = threading.Barrier(submitters, timeout=TIMEOUT)

        def submitter():
            try:
                barrier.wait()
                for _ in range(per_thread):
                    fs.append(ex.submit(task))
            except BaseException as exc:  # noqa: B902
                errors.append(exc)

        threads = [threading.Thread(target=submitter)
                   for _ in range(submitters)]
        for t in threads:
            t.start()
        join_all(threads)
        if errors:
            raise errors[0]
        done, not_done = mod.wait(fs, timeout=TIMEOUT)
        assert not not_done
        peak[0] = max(peak[0], len(pool_threads(prefix)), len(ex._threads))
        names = sorted(t.name for t in ex._threads)
        ex.shutdown(wait=True)
        join_all(pool_threads(prefix))
        out.append((peak[0], names, seen_names, prefix))
    return out


_BURSTS = {}    # module name -> burst_rounds(mod, workers=BURST_WORKERS)
BURST_WORKERS = 4


def shared_burst_rounds(mod):
    """burst_rounds(mod, workers=BURST_WORKERS), run once per module for the
    two tests below, which check different things of the same rounds (the
    caller holds tiny_switch_interval)."""
    if mod.__name__ not in _BURSTS:
        _BURSTS[mod.__name__] = burst_rounds(mod, workers=BURST_WORKERS)
    return _BURSTS[mod.__name__]


def test_never_more_than_max_workers_threads(mod, tiny_switch_interval):
    workers = BURST_WORKERS
    rounds = shared_burst_rounds(mod)
    over = [peak for peak, _, _, _ in rounds if peak > workers]
    assert over == [], (
        "%d of %d rounds had more than max_workers=%d threads (peaks %r)"
        % (len(over), len(rounds), workers, sorted(set(over))))


def test_thread_names_unique_with_concurrent_submitters(
        mod, tiny_switch_interval):
    workers = BURST_WORKERS
    bad = []
    for peak, names, seen, prefix in shared_burst_rounds(mod):
        allowed = {"%s_%d" % (prefix, i) for i in range(workers)}
        short = [n[len(prefix):] for n in names]
        if len(set(names)) != len(names) or not set(names) <= allowed:
            bad.append(("_threads", short))
        elif not seen <= set(names):
            bad.append(("seen by tasks", sorted(n[len(prefix):]
                                                for n in seen)))
    assert bad == [], (
        "%d of %d rounds: worker names not unique '<prefix>_<n>', "
        "n < %d; first: %r" % (len(bad), ROUNDS, workers, bad[:5]))


# ---- (c) shutdown from inside a task of the same pool -----------------------

@pytest.mark.parametrize("workers", [1, 4])
def test_shutdown_wait_inside_task_cannot_join_current_thread(mod, workers):
    outcomes = []
    for _ in range(20):
        ex = mod.ThreadPoolExecutor(workers)
        try:
            f = ex.submit(lambda: ex.shutdown(wait=True))
            outcomes.append(outcome(f.result, TIMEOUT))
        finally:
            ex.shutdown(wait=True)
        assert outcome(ex.submit, int) == ("raise", RuntimeError,
                                           SHUTDOWN)
    wrong = [o for o in outcomes
             if o != ("raise", RuntimeError, "cannot join current thread")]
    assert wrong == [], (
        "%d of 20: a task's shutdown(wait=True) on its own pool did not "
        "raise 'cannot join current thread'; got %r"
        % (len(wrong), sorted(set(map(repr, wrong)))))


def test_shutdown_nowait_then_wait_inside_task(mod):
    # shutdown(wait=False) from a task returns, the pool then refuses new
    # work, and a later shutdown(wait=True) in the same task still cannot
    # join its own thread.
    def task():
        return [outcome(ex.shutdown, wait=False),
                outcome(ex.submit, int),
                outcome(ex.shutdown, wait=True)]

    ex = mod.ThreadPoolExecutor(2)
    try:
        got = ex.submit(task).result(TIMEOUT)
    finally:
        ex.shutdown(wait=True)
    assert got == [("return", None),
                   ("raise", RuntimeError, SHUTDOWN),
                   ("raise", RuntimeError, "cannot join current thread")]
