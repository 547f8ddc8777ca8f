"""A worker process that dies abruptly breaks the pool, as in the stdlib.

A worker ends with os._exit(3), is killed from outside with SIGKILL,
segfaults, or is killed for memory (SIGKILL after an allocation fails under
RLIMIT_AS, standing in for the OOM killer); or an idle worker is killed.
Then, in both modules alike:

- every pending future (running or queued) fails with BrokenProcessPool
  "A process in the process pool was terminated abruptly while the future
  was running or pending.",
- a later submit raises BrokenProcessPool "A child process terminated
  abruptly, the process pool is not usable anymore",
- no worker process is left running, and nothing hangs (every wait here is
  bounded).

Tests and workers meet through files (process_tasks.Sync): running tasks
announce their pid, and the test tells one of them to crash, or kills it.
"""

import concurrent.futures
import concurrent.futures.process
import contextlib
import os
import signal
import sys
import threading

import pytest

import process_tasks as tasks
from futures_helpers import (BROKEN_FUTURE, BROKEN_POOL, TIMEOUT, agreed_once, exc_view,
                             outcome)
from process_tasks import pool, wait_dead

REF = concurrent.futures
BrokenProcessPool = concurrent.futures.process.BrokenProcessPool
BROKEN = (BrokenProcessPool, BROKEN_FUTURE, type(None))

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux signals, /proc"),
]


def future_view(f, timeout=TIMEOUT):
    """How a future ended; 'still pending' if it did not within timeout."""
    try:
        return exc_view(f.exception(timeout=timeout))
    except REF.TimeoutError:
        return "still pending"
    except REF.CancelledError:
        return "cancelled"


TAGS = ["b%d" % i for i in range(4)]


@contextlib.contextmanager
def two_running(m, method, s):
    """A pool (two workers) given a block_or_crash task for each of TAGS:
    yields (executor, watch, the futures, {tag: pid} of the two that run)
    once two run."""
    with pool(m, method, sync=s) as (ex, watch):
        fs = [ex.submit(tasks.block_or_crash, s.dir, tag) for tag in TAGS]
        yield ex, watch, fs, s.started_some(TAGS, 2)

CASES = [("exit", "fork"), ("sigkill", "fork"), ("segfault", "fork"),
         ("oom", "fork"),
         ("exit", "spawn"), ("sigkill", "spawn"),
         ("exit", "forkserver"), ("sigkill", "forkserver")]


@pytest.mark.parametrize("kind, method", CASES)
def test_worker_dies_while_running_a_task(mod, sync, kind, method):
    def scenario(m):
        s = sync.sub(m.__name__)
        with pool(m, method, sync=s) as (ex, watch):
            # Four blocking tasks on two workers: two run (one per worker),
            # two wait; then a few more queue behind them.
            blocked = [ex.submit(tasks.block_or_crash, s.dir, tag)
                       for tag in TAGS]
            running = s.started_some(TAGS, 2)
            queued = [ex.submit(tasks.square, i) for i in range(4)]
            workers = watch.processes
            victim = sorted(running.values())[0]
            if kind == "sigkill":
                os.kill(victim, signal.SIGKILL)     # from outside
            else:
                s.order_crash(victim, kind)         # the task itself
            views = [future_view(f) for f in blocked + queued]
            later = outcome(ex.submit, tasks.square, 2)
            left = wait_dead(workers)
            broken = ex._broken
        # the pool's thread, joined on the way out, has reaped the workers
        code = [p.exitcode for p in workers if p.pid == victim]
        return (len(workers), len(set(running.values())), views, later,
                left, broken, code)

    got = agreed_once(scenario, mod)
    code = {"exit": 3, "segfault": -signal.SIGSEGV}.get(kind, -signal.SIGKILL)
    assert got == (2, 2, [BROKEN] * 8,
                   ("raise", BrokenProcessPool, BROKEN_POOL), [], BROKEN_POOL,
                   [code])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_idle_worker_killed(mod, method):
    def scenario(m):
        with pool(m, method) as (ex, watch):
            # two tasks at once: both workers exist (the stdlib starts spawn
            # workers one per submit)
            done = [ex.submit(tasks.square, i) for i in range(2)]
            results = [f.result(timeout=TIMEOUT) for f in done]
            workers = watch.processes
            os.kill(sorted(p.pid for p in workers)[0], signal.SIGKILL)
            # The pool notices on its own, with no submit to trigger it.
            broke = tasks_wait(lambda: ex._broken, 10.0)
            later = outcome(ex.submit, tasks.square, 3)
            left = wait_dead(workers)
            return (len(workers), results, [f.result(timeout=0) for f in done],
                    broke, later, left)

    assert agreed_once(scenario, mod) == (
        2, [0, 1], [0, 1], BROKEN_POOL,
        ("raise", BrokenProcessPool, BROKEN_POOL), [])


def tasks_wait(predicate, timeout):
    """The predicate's first true value, polled until timeout (None)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(0.005)


@pytest.mark.parametrize("kind", ["exit", "sigkill"])
def test_worker_dies_during_map(mod, kind):
    def scenario(m):
        with pool(m, "fork") as (ex, watch):
            it = ex.map(tasks.crash_on, range(8), [5] * 8, [kind] * 8)
            items = []
            try:
                for item in it:
                    items.append(item)
            except Exception as exc:    # noqa: B902
                error = exc_view(exc)
            else:
                error = None
            left = wait_dead(watch.processes)
            # what came before the crash may or may not have been read
            return (items == list(range(len(items))) and len(items) <= 5,
                    error, outcome(ex.submit, tasks.square, 1), left)

    assert agreed_once(scenario, mod) == (
        True, BROKEN, ("raise", BrokenProcessPool, BROKEN_POOL), [])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_waiters_wake_when_a_worker_dies(mod, sync, method):
    # Threads blocked in result(), wait() and as_completed() with no
    # timeout all return when the pool breaks.
    def scenario(m):
        s = sync.sub(m.__name__)
        with two_running(m, method, s) as (ex, watch, fs, running):
            outcomes = {}

            def run(name, fn):
                try:
                    outcomes[name] = ("return", fn())
                except BaseException as exc:    # noqa: B902
                    outcomes[name] = exc_view(exc)

            waiters = [
                threading.Thread(target=run, args=("result", fs[0].result)),
                threading.Thread(target=run, args=(
                    "wait", lambda: len(m.wait(fs).done))),
                threading.Thread(target=run, args=(
                    "as_completed", lambda: len(list(m.as_completed(fs))))),
            ]
            for t in waiters:
                t.start()
            s.order_crash(sorted(running.values())[-1], "exit")
            for t in waiters:
                t.join(TIMEOUT)
            hung = [t.name for t in waiters if t.is_alive()]
            s.release()     # lets a hung waiter's task end (cleanup)
            return hung, sorted(outcomes.items()), wait_dead(watch.processes)

    assert agreed_once(scenario, mod) == (
        [], [("as_completed", ("return", 4)), ("result", BROKEN),
             ("wait", ("return", 4))], [])


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_worker_dies_during_shutdown(mod, sync, method):
    # shutdown(wait=True) is waiting for running work when a worker dies:
    # it returns, and the futures fail with the pool.
    def scenario(m):
        s = sync.sub(m.__name__)
        with two_running(m, method, s) as (ex, watch, fs, running):
            finished = threading.Event()

            def shut():
                ex.shutdown(wait=True)
                finished.set()

            t = threading.Thread(target=shut)
            t.start()
            try:
                s.order_crash(sorted(running.values())[0], "exit")
                returned = finished.wait(TIMEOUT)
            finally:
                s.release()
                t.join(TIMEOUT)
            return (returned, [future_view(f, 0) for f in fs],
                    wait_dead(watch.processes))

    assert agreed_once(scenario, mod) == (True, [BROKEN] * 4, [])


def test_worker_killed_while_a_big_task_is_sent(mod, sync):
    # The parent is still writing a large call to a worker that reads
    # nothing (it is busy) when that worker is killed: no hang, no busy
    # loop on the broken pipe; the pool breaks as usual.
    #
    # The stdlib before 3.11 hangs here: its queue feeder thread stays
    # blocked writing to the call queue's pipe (cpython gh-94777, fixed in
    # 3.11); there cfutures is checked alone.
    def scenario(m):
        s = sync.sub(m.__name__)
        with pool(m, "fork", sync=s, max_workers=1) as (ex, watch):
            busy = ex.submit(tasks.block_or_crash, s.dir, "busy")
            pid = s.started("busy")
            big = ex.submit(tasks.length, b"x" * (32 << 20))
            after = ex.submit(tasks.square, 3)
            os.kill(pid, signal.SIGKILL)
            views = [future_view(f) for f in (busy, big, after)]
            return (views, outcome(ex.submit, tasks.square, 1),
                    wait_dead(watch.processes))

    expected = ([BROKEN] * 3, ("raise", BrokenProcessPool, BROKEN_POOL), [])
    if sys.version_info >= (3, 11):
        assert agreed_once(scenario, mod) == expected
    elif mod is REF:
        pytest.skip("this stdlib hangs here (gh-94777, fixed in 3.11)")
    else:
        assert scenario(mod) == expected



@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_no_fds_or_zombies_left_after_a_crash(mod, sync, method):
    import gc
    tasks.warm_up(method)

    def scenario(m):
        s = sync.sub(m.__name__)
        gc.collect()
        before = tasks.open_fds()
        threads = set(threading.enumerate())
        ex = m.ProcessPoolExecutor(2, mp_context=tasks.context(method))
        watch = tasks.Watch(ex)
        try:
            fs = [ex.submit(tasks.block_or_crash, s.dir, tag) for tag in TAGS]
            running = s.started_some(TAGS, 2)
            pids = watch.pids
            s.order_crash(sorted(running.values())[0], "exit")
            views = [future_view(f) for f in fs]
            ex.shutdown(wait=True)
        finally:
            s.release()
            ex.shutdown(wait=False)
            if wait_dead(watch.processes):
                tasks.kill_all(watch.processes)
        hung = tasks.join_threads(threads)
        zombies = tasks.wait_reaped(pids, 5.0)
        del watch, ex, fs
        gc.collect()
        after = tasks.open_fds()
        return (views, hung, zombies,
                {fd: after[fd] for fd in set(after) - set(before)})

    assert agreed_once(scenario, mod) == ([BROKEN] * 4, [], [], {})
