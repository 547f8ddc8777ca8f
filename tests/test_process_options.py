"""ProcessPoolExecutor's options beyond the stdlib: task_timeout and
options(timeout=), isolate_crashes, cancel_running, max_memory_per_child,
pickler='cloudpickle'.

Each is off by default, and then the stdlib's behaviour holds (the rest of
the suite checks that, and where a default is checked here, it is against
the stdlib).  With the option, the task it concerns fails (or is cancelled)
alone, its worker is replaced, the pool goes on, and nothing is left
behind: every pool here is shut down with wait=True and then no worker
process, fd or thread of it may remain (`clean_pool`).  Tasks announce
when they begin through a file holding the monotonic time, so the tests
measure from the task's start, as the timeout's clock does.
"""
import concurrent.futures
import contextlib
import gc
import itertools
import os
import sys
import threading
import time

import pytest

import cfutures
import option_tasks
import process_tasks as tasks
from cfutures.process import WorkerDied
from futures_helpers import TIMEOUT as WAIT, agreed, agreed_once, outcome

REF = concurrent.futures
BrokenProcessPool = REF.process.BrokenProcessPool
METHODS = tasks.METHODS

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux signals, /proc"),
]


def child_pids():
    """The pids of this process's children, zombies included."""
    pids = set()
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % name) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid():
            pids.add(int(name))
    return pids


@contextlib.contextmanager
def clean_pool(method, max_workers=2, m=cfutures, **options):
    """A pool with `options`; on the way out it is shut down (waiting), and
    none of its processes (replaced ones included), fds or threads may be
    left."""
    tasks.warm_up(method)
    gc.collect()
    fds = tasks.open_fds()
    threads = set(threading.enumerate())
    children = child_pids()
    ex = m.ProcessPoolExecutor(max_workers, mp_context=tasks.context(method), **options)
    try:
        yield ex
        ex.shutdown(wait=True)
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 15.0
        while child_pids() - children and time.monotonic() < deadline:
            time.sleep(0.01)
        left = child_pids() - children
        for pid in left:
            os.kill(pid, 9)
    assert left == set(), "worker processes left"
    assert tasks.join_threads(threads, 10.0) == []
    gc.collect()
    after = tasks.open_fds()
    assert {fd: after[fd] for fd in set(after) - set(fds)} == {}


def mark_path(tmp_path, name):
    return str(tmp_path / name)


def wait_for_mark(path, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.002)
    return option_tasks.read_mark(path)


def exception_at(f):
    """(the future's exception, the monotonic time it was seen)."""
    exc = f.exception(timeout=WAIT)
    return exc, time.monotonic()


# ---- the arguments -----------------------------------------------------------

@pytest.mark.parametrize("kwargs, error", [
    ({"task_timeout": 0}, (ValueError, "task_timeout must be > 0")),
    ({"task_timeout": -1.5}, (ValueError, "task_timeout must be > 0")),
    ({"task_timeout": "1"}, (TypeError, "task_timeout must be a number of seconds or None, not str")),
    ({"task_timeout": True}, (TypeError, "task_timeout must be a number of seconds or None, not bool")),
    ({"max_memory_per_child": 0}, (ValueError, "max_memory_per_child must be > 0")),
    ({"max_memory_per_child": 1.5}, (TypeError, "max_memory_per_child must be an integer or None, not float")),
    ({"pickler": "dill"}, (ValueError, "pickler must be None, 'pickle' or 'cloudpickle', not 'dill'")),
])
def test_bad_options_are_refused(kwargs, error):
    with pytest.raises(error[0]) as info:
        cfutures.ProcessPoolExecutor(1, **kwargs)
    assert str(info.value) == error[1]


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        cfutures.ProcessPoolExecutor(1, None, None, (), None, 1.0)


def test_missing_cloudpickle_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)      # import fails
    with pytest.raises(ImportError) as info:
        cfutures.ProcessPoolExecutor(1, pickler="cloudpickle")
    assert "pip install 'cfutures[cloudpickle]'" in str(info.value)


# ---- task_timeout --------------------------------------------------------------

TIMEOUT = 0.5
LATE = 1.5          # the bar is S + 0.5 s (benchmarks/option_latency.py measures
                    # it); a loaded test machine may wake this thread later
EARLY = 0.05


@pytest.mark.parametrize("method", METHODS)
def test_task_timeout_fails_that_task_and_the_pool_goes_on(method, tmp_path):
    path = mark_path(tmp_path, "forever")
    with clean_pool(method, task_timeout=TIMEOUT) as ex:
        others = [ex.submit(option_tasks.pid_after, 0.05) for _ in range(6)]
        hung = ex.submit(option_tasks.sleep_forever, path)
        pid, began = wait_for_mark(path)
        exc, failed_at = exception_at(hung)
        assert type(exc) is REF.TimeoutError
        assert str(exc) == ("the task ran longer than its timeout of 0.5 seconds; "
                            "its worker process was stopped")
        # (`began` is the task's own mark, written a moment after its worker
        # started it, when the clock started: up to EARLY before the mark)
        assert TIMEOUT - EARLY <= failed_at - began <= TIMEOUT + LATE
        assert all(isinstance(f.result(timeout=WAIT), int) for f in others)
        assert tasks.wait_reaped([pid], 5.0) == []          # stopped, and reaped
        # the replacement takes the next tasks
        assert [ex.submit(option_tasks.square, i).result(timeout=WAIT) for i in range(3)] == [0, 1, 4]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_only_worker_timed_out_then_idle_pool_takes_work(method, tmp_path):
    # The slot is empty and nothing waits when its worker is gone: the next
    # submit must start a worker (a fork pool otherwise starts all at once).
    path = mark_path(tmp_path, "forever")
    with clean_pool(method, max_workers=1, task_timeout=TIMEOUT) as ex:
        f = ex.submit(option_tasks.sleep_forever, path)
        pid, _ = wait_for_mark(path)
        assert type(f.exception(timeout=WAIT)) is REF.TimeoutError
        assert tasks.wait_reaped([pid], 5.0) == []
        time.sleep(0.1)      # not synchronisation: lets the I/O thread go idle first
        assert ex.submit(option_tasks.square, 8).result(timeout=WAIT) == 64


def test_task_timeout_counts_from_the_start_of_the_task(tmp_path):
    # One worker: the second task waits 0.4 s behind the first, then runs
    # 0.4 s -- under a 0.6 s limit counted from its start, not from submit.
    with clean_pool("fork", max_workers=1, task_timeout=0.6) as ex:
        first = ex.submit(option_tasks.pid_after, 0.4)
        second = ex.submit(option_tasks.pid_after, 0.4)
        assert first.result(timeout=WAIT) == second.result(timeout=WAIT)


def test_worker_ignoring_sigterm_stuck_in_c_is_killed(tmp_path):
    path = mark_path(tmp_path, "stuck")
    with clean_pool("fork", task_timeout=TIMEOUT) as ex:
        f = ex.submit(option_tasks.stuck_in_c, path)
        pid, began = wait_for_mark(path)
        exc, failed_at = exception_at(f)
        assert type(exc) is REF.TimeoutError
        assert failed_at - began <= TIMEOUT + LATE
        # SIGTERM is ignored: SIGKILL follows after the grace (1 s)
        assert tasks.wait_reaped([pid], 5.0) == []
        assert ex.submit(option_tasks.square, 7).result(timeout=WAIT) == 49


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_options_timeout_per_task(method, tmp_path):
    path = mark_path(tmp_path, "forever")
    with clean_pool(method) as ex:
        limited = ex.options(timeout=0.3)
        f = limited.submit(option_tasks.sleep_forever, path)
        slow = ex.submit(option_tasks.pid_after, 0.6)           # the pool has no limit
        pid, began = wait_for_mark(path)
        exc, failed_at = exception_at(f)
        assert type(exc) is REF.TimeoutError and "0.3 seconds" in str(exc)
        assert failed_at - began <= 0.3 + LATE
        assert isinstance(slow.result(timeout=WAIT), int)
        assert list(limited.map(option_tasks.square, range(5), chunksize=2)) == [0, 1, 4, 9, 16]
        # options() leaves kwargs to fn, and None means no limit
        assert ex.options(timeout=None).submit(divmod, 7, 2).result(timeout=WAIT) == (3, 1)
        with pytest.raises(ValueError):
            ex.options(timeout=0)


def test_default_pool_does_not_time_out_tasks(mod):
    # The stdlib has no limit: a task runs as long as it takes.
    def scenario(m):
        with m.ProcessPoolExecutor(1) as ex:
            return ex.submit(option_tasks.pid_after, 1.0).exception(timeout=WAIT)
    assert agreed_once(scenario, mod) is None


# ---- isolate_crashes -------------------------------------------------------------

@pytest.mark.parametrize("method, kind, exitcode, signal_name", [
    ("fork", "exit", 3, None), ("spawn", "exit", 3, None), ("forkserver", "exit", 3, None),
    ("fork", "segfault", -11, "SIGSEGV")])
def test_isolated_crash_among_100_tasks(method, kind, exitcode, signal_name, tmp_path):
    path = mark_path(tmp_path, "crash")
    with clean_pool(method, isolate_crashes=True) as ex:
        before = [ex.submit(option_tasks.square, i) for i in range(50)]
        doomed = ex.submit(option_tasks.marked_crash, path, kind)
        after = [ex.submit(option_tasks.square, i) for i in range(50, 100)]
        exc, failed_at = exception_at(doomed)
        pid, began = option_tasks.read_mark(path)
        assert type(exc) is WorkerDied and isinstance(exc, BrokenProcessPool)
        assert (exc.pid, exc.exitcode, exc.signal) == (pid, exitcode, signal_name)
        assert str(exc).startswith("Worker process %d " % pid)
        assert str(exc).endswith("while running option_tasks.marked_crash")
        assert failed_at - began <= 0.5
        assert [f.result(timeout=WAIT) for f in before + after] == [i * i for i in range(100)]
        assert ex.submit(option_tasks.square, 9).result(timeout=WAIT) == 81


def test_crash_without_isolation_breaks_the_pool_naming_the_worker(mod, tmp_path):
    # The stdlib's error, message and later refusal; cfutures adds a cause.
    def scenario(m):
        path = mark_path(tmp_path, "crash-" + m.__name__)
        with clean_pool("fork", m=m) as ex:
            f = ex.submit(option_tasks.marked_crash, path, "exit")
            exc = f.exception(timeout=WAIT)
            refused = outcome(ex.submit, option_tasks.square, 1)
            pid, _ = option_tasks.read_mark(path)
            return type(exc), str(exc), refused, exc.__cause__, pid
    for m in (REF, cfutures):
        kind, text, refused, cause, pid = scenario(m)
        assert kind is BrokenProcessPool
        assert text == ("A process in the process pool was terminated abruptly while the "
                        "future was running or pending.")
        assert refused[:2] == ("raise", BrokenProcessPool)
        if m is cfutures:
            assert type(cause) is WorkerDied
            assert str(cause) == ("Worker process %d exited with code 3 while running "
                                  "option_tasks.marked_crash" % pid)
        else:
            assert cause is None        # the stdlib adds pid and exit code from 3.15


def test_worker_dying_in_its_initializer_breaks_even_an_isolating_pool():
    # No task to blame (it never started one): replacing it would loop.
    with clean_pool("fork", isolate_crashes=True, initializer=os._exit, initargs=(4,)) as ex:
        exc = ex.submit(option_tasks.square, 2).exception(timeout=WAIT)
        assert type(exc) is BrokenProcessPool
        assert type(exc.__cause__) is WorkerDied
        assert "exited with code 4 before it started a task" in str(exc.__cause__)


def test_worker_died_pickles():
    import pickle
    e = pickle.loads(pickle.dumps(WorkerDied("m", 12, -9, "SIGKILL")))
    assert (type(e), str(e), e.pid, e.exitcode, e.signal) == (WorkerDied, "m", 12, -9, "SIGKILL")


# ---- cancel_running ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_cancel_running_task_stuck_in_c(method, tmp_path):
    path = mark_path(tmp_path, "stuck")
    with clean_pool(method, cancel_running=True) as ex:
        f = ex.submit(option_tasks.stuck_in_c, path)
        called = threading.Event()
        f.add_done_callback(lambda _: called.set())
        pid, _ = wait_for_mark(path)
        assert f.running()
        assert f.cancel() is True
        assert f.cancelled() and f.done() and called.is_set()
        with pytest.raises(REF.CancelledError):
            f.result(timeout=0)
        assert REF.wait([f], timeout=0).done == {f}
        assert tasks.wait_reaped([pid], 5.0) == []          # SIGTERM ignored: SIGKILL
        assert ex.submit(option_tasks.square, 5).result(timeout=WAIT) == 25


def test_cancel_running_wakes_a_waiter(tmp_path):
    path = mark_path(tmp_path, "forever")
    with clean_pool("fork", cancel_running=True) as ex:
        f = ex.submit(option_tasks.sleep_forever, path)
        wait_for_mark(path)
        seen = []
        waiter = threading.Thread(target=lambda: seen.append(outcome(f.result, timeout=WAIT)))
        waiter.start()
        time.sleep(0.05)     # not synchronisation: the waiter may or may not be parked yet
        assert f.cancel()
        waiter.join(WAIT)
        assert seen == [("raise", REF.CancelledError, "")]


def test_without_cancel_running_a_running_task_cannot_be_cancelled(mod, tmp_path):
    def scenario(m):
        path = mark_path(tmp_path, "forever-" + m.__name__)
        with clean_pool("fork", m=m) as ex:
            f = ex.submit(option_tasks.pid_after, 0.5)
            time.sleep(0.2)
            while not f.running():
                time.sleep(0.01)
            return f.cancel(), f.result(timeout=WAIT) > 0
    assert agreed_once(scenario, mod) == (False, True)


def test_cancel_running_leaves_finished_and_pending_alone():
    with clean_pool("fork", max_workers=1, cancel_running=True) as ex:
        done = ex.submit(option_tasks.square, 3)
        assert done.result(timeout=WAIT) == 9
        assert done.cancel() is False
        first = ex.submit(option_tasks.pid_after, 0.3)
        queued = ex.submit(option_tasks.square, 4)
        assert queued.cancel() is True            # pending: cancelled as in the stdlib
        assert isinstance(first.result(timeout=WAIT), int)


# ---- max_memory_per_child -----------------------------------------------------------

@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_over_its_memory_is_replaced(method):
    # A fresh worker's size depends on the start method (a forked one maps
    # the parent's pages): the limit is that plus 120 MB, so a worker
    # leaving 50 MB more each call is replaced after its second or third.
    mib = 1024 * 1024
    with cfutures.ProcessPoolExecutor(1, mp_context=tasks.context(method)) as probe:
        fresh = probe.submit(option_tasks.rss_bytes).result(timeout=WAIT)
    limit = fresh + 120 * mib
    with clean_pool(method, max_workers=1, max_memory_per_child=limit) as ex:
        answers = [f.result(timeout=WAIT) for f in
                   [ex.submit(option_tasks.leak_50mb, i) for i in range(7)]]
        assert [i for i, _ in answers] == list(range(7))
        pids = [pid for _, pid in answers]
        runs = [len(list(group)) for _, group in itertools.groupby(pids)]
        assert len(runs) >= 2 and max(runs) <= 3, runs
        assert ex.submit(option_tasks.rss_bytes).result(timeout=WAIT) < limit


# ---- pickler="cloudpickle" ------------------------------------------------------------

@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_cloudpickle_sends_lambdas_and_closures(method):
    pytest.importorskip("cloudpickle")
    offset = 10
    with clean_pool(method, pickler="cloudpickle") as ex:
        assert ex.submit(lambda x: x + 1, 1).result(timeout=WAIT) == 2
        assert list(ex.map(lambda x: x + offset, range(3))) == [10, 11, 12]
        # results come back with plain pickle: a result only cloudpickle
        # could send fails on its own future, and the pool goes on
        exc = ex.submit(eval, "lambda: 0").exception(timeout=WAIT)
        assert exc is not None
        assert ex.submit(option_tasks.square, 6).result(timeout=WAIT) == 36


def test_default_pickler_refuses_a_lambda_as_the_stdlib(mod):
    def scenario(m):
        with m.ProcessPoolExecutor(1, mp_context=tasks.context("spawn")) as ex:
            exc = ex.submit(lambda: 1).exception(timeout=WAIT)
            return type(exc).__name__
    assert agreed(scenario, mod) in ("PicklingError", "AttributeError")
