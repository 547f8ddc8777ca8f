"""ProcessPoolExecutor: constructor checks, submit and map, errors from the
workers, pickling errors, shutdown, initializer, max_tasks_per_child,
terminate_workers/kill_workers (3.14 API), and the resources a pool leaves
behind (fds, processes, zombies), under the fork, spawn and forkserver start
methods.

Behaviours the stdlib has are run on both modules and compared
(``agreed_once``: the stdlib's outcome is computed once, by the stdlib half
of a test, and the cfutures half compares with it); where the running
stdlib lacks an API (max_tasks_per_child before 3.11, buffersize and
terminate/kill_workers before 3.14) or is known to hang or to differ on
purpose, cfutures is checked alone against the documented behaviour, and
the comment says why.  Workers run the functions of
``process_tasks``; tests and tasks meet through files (see ``Sync``), never
through sleeps; whether a process has ended is polled with a deadline.
"""

import concurrent.futures
import concurrent.futures.process
import gc
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

import process_tasks as tasks
from futures_helpers import agreed_once, cause_kind, norm_any_addr, outcome
from process_tasks import METHODS, Sync, pool, wait_dead

REF = concurrent.futures
RemoteTraceback = concurrent.futures.process._RemoteTraceback
BROKEN_POOL = ("A child process terminated abruptly, the process pool is not"
               " usable anymore")
BROKEN_FUTURE = ("A process in the process pool was terminated abruptly while"
                 " the future was running or pending.")
SHUTDOWN = "cannot schedule new futures after shutdown"
HAS_MAX_TASKS = sys.version_info >= (3, 11)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc, fds"),
]


@pytest.fixture(params=["stdlib", "cfutures"])
def mtmod(request):
    """Like ``mod`` for max_tasks_per_child: the stdlib half runs only where
    the stdlib has it (3.11+)."""
    if request.param == "stdlib":
        if not HAS_MAX_TASKS:
            pytest.skip("the running stdlib has no max_tasks_per_child")
        return REF
    import cfutures
    return cfutures


def compare(scenario, m):
    """agreed_once() where the stdlib has the API, else cfutures alone."""
    if HAS_MAX_TASKS:
        return agreed_once(scenario, m)
    return scenario(m)


def exc_view(exc):
    """A comparable summary of an exception from a worker."""
    if exc is None:
        return None
    return (type(exc), norm_any_addr(str(exc)), cause_kind(exc))


def remote_text(exc):
    cause = exc.__cause__
    return cause.tb if isinstance(cause, RemoteTraceback) else ""


# ---- the class --------------------------------------------------------------

def test_is_the_stdlib_kind(cf):
    ex = cf.ProcessPoolExecutor(1)
    try:
        assert isinstance(ex, REF.ProcessPoolExecutor)
        assert isinstance(ex, REF.Executor)
    finally:
        ex.shutdown()
    assert cf.process.BrokenProcessPool is REF.process.BrokenProcessPool
    assert issubclass(cf.process.BrokenProcessPool, REF.BrokenExecutor)
    assert cf.ProcessPoolExecutor is cf.process.ProcessPoolExecutor


def test_futures_are_futures(mod):
    with pool(mod, "fork", max_workers=1) as (ex, _):
        f = ex.submit(tasks.square, 3)
        assert isinstance(f, REF.Future)
        assert isinstance(f, mod.Future)
        assert f.result(timeout=30) == 9


# ---- constructor ------------------------------------------------------------

def test_default_max_workers(mod):
    def scenario(m):
        ex = m.ProcessPoolExecutor()
        try:
            return ex._max_workers
        finally:
            ex.shutdown()

    # 3.13 counts the CPUs this process may use
    count = (os.process_cpu_count() if sys.version_info >= (3, 13)
             else os.cpu_count())
    assert agreed_once(scenario, mod) == (count or 1)


@pytest.mark.parametrize("n", [0, -1])
def test_max_workers_must_be_positive(mod, n):
    got = agreed_once(lambda m: outcome(m.ProcessPoolExecutor, n), mod)
    assert got == ("raise", ValueError, "max_workers must be greater than 0")


def test_initializer_must_be_callable(mod):
    got = agreed_once(lambda m: outcome(m.ProcessPoolExecutor, 1, initializer=3),
                 mod)
    assert got == ("raise", TypeError, "initializer must be a callable")


def test_max_workers_checked_before_initializer(mod):
    got = agreed_once(lambda m: outcome(m.ProcessPoolExecutor, 0, initializer=3),
                 mod)
    assert got == ("raise", ValueError, "max_workers must be greater than 0")


FORK_MESSAGE = ("max_tasks_per_child is incompatible with the 'fork'"
                " multiprocessing start method; supply a different"
                " mp_context.")


@pytest.mark.parametrize("value, method, expected", [
    ("1", None, (TypeError, "max_tasks_per_child must be an integer")),
    (1.5, None, (TypeError, "max_tasks_per_child must be an integer")),
    (0, None, (ValueError, "max_tasks_per_child must be >= 1")),
    (-2, "spawn", (ValueError, "max_tasks_per_child must be >= 1")),
    (1, "fork", (ValueError, FORK_MESSAGE)),
    (0, "fork", (ValueError, "max_tasks_per_child must be >= 1")),
])
def test_max_tasks_per_child_checks(mtmod, value, method, expected):
    def scenario(m):
        def make():
            ex = m.ProcessPoolExecutor(1, mp_context=tasks.context(method),
                                       max_tasks_per_child=value)
            ex.shutdown()
        return outcome(make)

    assert compare(scenario, mtmod) == ("raise",) + expected


def test_max_tasks_per_child_defaults_to_spawn(mtmod):
    def scenario(m):
        methods = []
        for kwargs in ({"max_tasks_per_child": 3},
                       {"max_tasks_per_child": 3,
                        "mp_context": multiprocessing.get_context(
                            "forkserver")},
                       {}):
            ex = m.ProcessPoolExecutor(1, **kwargs)
            try:
                methods.append(ex._mp_context.get_start_method())
            finally:
                ex.shutdown()
        return methods

    assert compare(scenario, mtmod) == [
        "spawn", "forkserver", multiprocessing.get_start_method()]


# ---- submit, results, exceptions --------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_submit_results_and_remote_errors(mod, method):
    def scenario(m):
        with pool(m, method) as (ex, _):
            echo = ex.submit(tasks.echo, 1, "two", [3], key=4, other=None)
            squares = [ex.submit(tasks.square, i) for i in range(8)]
            failing = ex.submit(tasks.raise_value_error, "bad input 42")
            added = ex.submit(tasks.add, b=2, a=40)
            results = (echo.result(timeout=30),
                       [f.result(timeout=30) for f in squares],
                       added.result(timeout=30))
            exc = failing.exception(timeout=30)
            text = remote_text(exc)
            return (results, exc_view(exc),
                    "Traceback (most recent call last)" in text,
                    "raise_value_error" in text,
                    "ValueError: bad input 42" in text,
                    failing.done(), failing.cancelled())

    got = agreed_once(scenario, mod)
    assert got == (
        (((1, "two", [3]), [("key", 4), ("other", None)]),
         [i * i for i in range(8)], 42),
        (ValueError, "bad input 42", RemoteTraceback),
        True, True, True, True, False)


def test_remote_error_is_raised_by_result(mod):
    def scenario(m):
        with pool(m, "fork", max_workers=1) as (ex, _):
            f = ex.submit(tasks.tenfold_positive, -7)
            try:
                f.result(timeout=30)
            except ValueError as exc:
                return exc_view(exc), "tenfold_positive" in remote_text(exc)
            return "no error"

    assert agreed_once(scenario, mod) == ((ValueError, "negative: -7",
                                      RemoteTraceback), True)


def test_idle_worker_takes_the_next_task(mod, sync):
    # With one worker busy on a long task, tasks submitted afterwards run
    # on the other, idle worker: none of them waits behind the long task.
    def scenario(m):
        sync_m = Sync(os.path.join(sync.dir, m.__name__))
        os.mkdir(sync_m.dir)
        with pool(m, "fork", sync=sync_m) as (ex, _):
            long = ex.submit(tasks.block, sync_m.dir, "long")
            busy = sync_m.started("long")
            got = []
            for i in range(4):
                f = ex.submit(tasks.pid)
                try:
                    worker = f.result(timeout=5)
                except REF.TimeoutError:
                    got.append("stuck behind the long task")
                else:
                    got.append(worker != busy)
            sync_m.release()
            return got, long.result(timeout=30)

    assert agreed_once(scenario, mod) == ([True] * 4, "long")


def test_base_exceptions_from_the_task(mod):
    def scenario(m):
        with pool(m, "fork", max_workers=1) as (ex, _):
            exits = ex.submit(sys.exit, 3)
            interrupted = ex.submit(tasks.raise_value_error, "after exit")
            e1 = exits.exception(timeout=30)
            e2 = interrupted.exception(timeout=30)
            return ((type(e1), e1.args), exc_view(e2),
                    ex.submit(tasks.square, 2).result(timeout=30))

    assert agreed_once(scenario, mod) == (
        (SystemExit, (3,)), (ValueError, "after exit", RemoteTraceback), 4)


def test_big_arguments_and_results(mod):
    def scenario(m):
        data = os.urandom(1 << 20) * 12        # 12 MiB, more than a pipe
        with pool(m, "fork") as (ex, _):
            size = ex.submit(tasks.length, data)
            back = ex.submit(tasks.echo, data)
            small = ex.submit(tasks.square, 7)
            return (size.result(timeout=30),
                    back.result(timeout=30)[0][0] == data,
                    small.result(timeout=30))

    assert agreed_once(scenario, mod) == (12 << 20, True, 49)


def test_concurrent_submitters(mod):
    def scenario(m):
        with pool(m, "fork") as (ex, _):
            out = {}

            def run(k):
                fs = [ex.submit(tasks.add, k, i) for i in range(100)]
                out[k] = [f.result(timeout=30) for f in fs]

            threads = [threading.Thread(target=run, args=(k,))
                       for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            return [out.get(k) == [k + i for i in range(100)]
                    for k in range(4)]

    assert agreed_once(scenario, mod) == [True] * 4


def test_cancelled_future_never_runs(mod, sync):
    def scenario(m):
        s = Sync(os.path.join(sync.dir, m.__name__))
        os.mkdir(s.dir)
        with pool(m, "fork", sync=s, max_workers=1) as (ex, _):
            first = ex.submit(tasks.block, s.dir, "first")
            s.started("first")
            queued = [ex.submit(tasks.block, s.dir, "q%d" % i)
                      for i in range(6)]
            cancelled = [f.cancel() for f in queued]
            s.release()
            ran = [f.result(timeout=30) for f in queued if not f.cancelled()]
            ex.shutdown(wait=True)
        started = sorted(n.partition(".")[0] for n in os.listdir(s.dir)
                         if ".started." in n)
        expected = ["first"] + ["q%d" % i for i, c in enumerate(cancelled)
                                if not c]
        # the stdlib hands up to max_workers + 1 calls to the workers
        # ahead; those cannot be cancelled, the rest can
        return (cancelled[3:], cancelled == sorted(cancelled),
                first.result(timeout=0), started == expected,
                ran == expected[1:])

    assert agreed_once(scenario, mod) == ([True] * 3, True, "first", True, True)


def test_executor_dropped_without_shutdown(mod):
    def scenario(m):
        threads = set(threading.enumerate())
        ex = m.ProcessPoolExecutor(2, mp_context=tasks.context("fork"))
        fs = [ex.submit(tasks.sleep_return, i, 0.02) for i in range(6)]
        workers = tasks.Watch(ex).processes
        del ex
        gc.collect()
        results = [f.result(timeout=30) for f in fs]
        left = wait_dead(workers)
        # the pool's thread ends by itself, having reaped the workers
        hung = tasks.join_threads(threads)
        if left:
            tasks.kill_all(workers)
        return results, left, hung, [p.exitcode for p in workers]

    assert agreed_once(scenario, mod) == (list(range(6)), [], [], [0, 0])


def test_task_never_queued_behind_a_long_task(mod, sync):
    # One worker is busy with K; a tiny task ran on the other one; then L
    # (which waits for T) and T are submitted back to back.  L takes the
    # free worker; T must wait for *a* worker, not for L: when K ends, T
    # runs there and L sees its file.  A pool that queues T behind L on
    # L's worker deadlocks them until L gives up.
    def scenario(m):
        s = Sync(os.path.join(sync.dir, m.__name__))
        os.mkdir(s.dir)
        with pool(m, "fork", sync=s) as (ex, _):
            k = ex.submit(tasks.block, s.dir, "K")
            s.started("K")
            assert ex.submit(tasks.square, 2).result(timeout=30) == 4
            waiter = ex.submit(tasks.wait_for, s.dir, "X", 5.0)
            maker = ex.submit(tasks.touch, s.dir, "X")
            s.release()         # K ends; its worker is free for T
            return (k.result(timeout=30), waiter.result(timeout=30),
                    maker.result(timeout=30))

    assert agreed_once(scenario, mod) == ("K", True, "X")


# ---- map --------------------------------------------------------------------

def _drain(iterator):
    """Items until the first exception: (items, exception summary)."""
    items = []
    try:
        for item in iterator:
            items.append(item)
    except Exception as exc:        # noqa: B902
        return items, exc_view(exc)
    return items, None


@pytest.mark.parametrize("method", METHODS)
def test_map(mod, method):
    def scenario(m):
        with pool(m, method) as (ex, _):
            plain = list(ex.map(tasks.square, range(12)))
            chunked = list(ex.map(tasks.add, range(11), range(100, 111),
                                  chunksize=3))
            errors = [_drain(ex.map(tasks.tenfold_positive,
                                    [1, 2, 3, -4, 5, -6, 7], chunksize=c))
                      for c in (1, 2, 5)]
            bad = outcome(ex.map, tasks.square, [1], chunksize=0)
            empty = list(ex.map(tasks.square, [], chunksize=4))
            return plain, chunked, errors, bad, empty

    plain, chunked, errors, bad, empty = agreed_once(scenario, mod)
    assert plain == [i * i for i in range(12)]
    assert chunked == [100 + 2 * i for i in range(11)]
    failure = (ValueError, "negative: -4", RemoteTraceback)
    # An error fails its whole chunk: the items before it in that chunk are
    # not yielded.
    assert errors == [([10, 20, 30], failure), ([10, 20], failure),
                      ([], failure)]
    assert bad == ("raise", ValueError, "chunksize must be >= 1.")
    assert empty == []


@pytest.mark.parametrize("chunksize", [1, 2])
def test_map_timeout(mod, sync, chunksize):
    def scenario(m):
        sync_m = Sync(os.path.join(sync.dir, m.__name__))
        os.mkdir(sync_m.dir)
        with pool(m, "fork", sync=sync_m) as (ex, _):
            start = time.monotonic()
            it = ex.map(tasks.block, [sync_m.dir] * 2, ["a", "b"],
                        timeout=0.3, chunksize=chunksize)
            got = outcome(next, it)
            waited = time.monotonic() - start
            sync_m.release()
            after = ex.submit(tasks.square, 5).result(timeout=30)
            return got, 0.25 <= waited < 10, after

    assert agreed_once(scenario, mod) == (("raise", REF.TimeoutError, ""), True,
                                     25)


class Counted(object):
    def __init__(self, source):
        self._source = iter(source)
        self.taken = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._source)
        self.taken += 1
        return item


@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_buffersize(cf, chunksize):
    # The 3.14 API, on every version: at most `buffersize` calls (chunks)
    # submitted ahead of the results taken, so an endless iterable works.
    with pool(cf, "fork") as (ex, _):
        src = Counted(itertools.count())
        it = ex.map(tasks.square, src, chunksize=chunksize, buffersize=2)
        assert [next(it) for _ in range(7)] == [i * i for i in range(7)]
        # 7 items taken need ceil(7/chunksize) chunks; the buffer may hold
        # 2 more chunks (one topped up before the oldest was taken).
        chunks = -(-7 // chunksize)
        assert src.taken <= (chunks + 2) * chunksize
        it.close()
        got = list(ex.map(tasks.add, range(10), range(10), buffersize=1,
                          chunksize=chunksize))
        assert got == [2 * i for i in range(10)]
        assert outcome(ex.map, tasks.square, [1], buffersize=0) == (
            "raise", ValueError, "buffersize must be None or > 0")


# ---- pickling errors --------------------------------------------------------

@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pickling_errors_land_on_the_future(mod, method):
    def scenario(m):
        with pool(m, method) as (ex, _):
            got = []
            calls = [(lambda x: x, (1,)),                 # callable
                     (tasks.echo, (threading.Lock(),)),     # argument
                     (tasks.return_lock, ()),               # result
                     (tasks.raise_locked_error, ())]        # exception
            for n, (fn, args) in enumerate(calls):
                f = ex.submit(fn, *args)
                exc = f.exception(timeout=30)
                got.append((exc_view(exc), f.done()))
                # the pool goes on
                got.append(ex.submit(tasks.square, n).result(timeout=30))
            return got

    got = agreed_once(scenario, mod)
    lock = (TypeError, "cannot pickle '_thread.lock' object", RemoteTraceback)
    assert got[1:] == [0, (lock, True), 1, (lock, True), 4, (lock, True), 9]
    assert got[0][0][2] is RemoteTraceback


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_unpicklable_exception_fails_only_its_future(cf, method):
    # The worker raises an exception that pickles but cannot be re-created
    # in the parent (TwoArgError("first") misses `b`).
    #
    # cfutures alone, as the stdlib differs here (and cfutures on purpose):
    # the stdlib's result reader fails to unpickle the result item, takes
    # that for a broken pool, and fails every pending future with
    # BrokenProcessPool (the unpickling error as __cause__); later submits
    # raise BrokenProcessPool.  cfutures knows which task the frame
    # answers, so the error -- the same class, BrokenProcessPool, with the
    # unpickling error as __cause__ -- lands on that one future and the pool
    # keeps working.
    with pool(cf, method) as (ex, watch):
        before = [ex.submit(tasks.square, i) for i in range(4)]
        bad = ex.submit(tasks.raise_two_arg_error)
        after = [ex.submit(tasks.square, i) for i in range(4, 8)]
        exc = bad.exception(timeout=30)
        assert type(exc) is concurrent.futures.process.BrokenProcessPool
        assert type(exc.__cause__) is TypeError
        assert "missing 1 required positional argument" in str(exc.__cause__)
        assert [f.result(timeout=30) for f in before + after] == [
            i * i for i in range(8)]
        assert ex.submit(tasks.add, 1, 2).result(timeout=30) == 3
        assert not ex._broken
        workers = watch.processes
    assert wait_dead(workers) == []


# ---- shutdown ---------------------------------------------------------------

def test_shutdown_wait_waits_for_queued_work(mod):
    def scenario(m):
        with pool(m, "fork") as (ex, watch):
            fs = [ex.submit(tasks.sleep_return, i, 0.02) for i in range(10)]
            workers = watch.processes
            ex.shutdown(wait=True)
            return ([f.done() for f in fs], [f.result(timeout=0) for f in fs],
                    [p.exitcode for p in workers])

    done, results, exitcodes = agreed_once(scenario, mod)
    assert done == [True] * 10
    assert results == list(range(10))
    assert exitcodes == [0, 0]


def test_shutdown_nowait_returns_at_once(mod, sync):
    def scenario(m):
        sync_m = Sync(os.path.join(sync.dir, m.__name__))
        os.mkdir(sync_m.dir)
        with pool(m, "fork", sync=sync_m) as (ex, watch):
            f = ex.submit(tasks.block, sync_m.dir, "t")
            queued = ex.submit(tasks.square, 6)
            sync_m.started("t")
            workers = watch.processes
            start = time.monotonic()
            ex.shutdown(wait=False)
            quick = time.monotonic() - start < 2.0
            state = (f.done(), outcome(ex.submit, tasks.square, 1))
            sync_m.release()
            results = (f.result(timeout=30), queued.result(timeout=30))
            left = wait_dead(workers)
        # (the pool's thread, joined on the way out, reaped them)
        return quick, state, results, left, [p.exitcode for p in workers]

    assert agreed_once(scenario, mod) == (
        True, (False, ("raise", RuntimeError, SHUTDOWN)), ("t", 36), [],
        [0, 0])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_shutdown_cancel_futures(mod, sync, method):
    def scenario(m):
        sync_m = Sync(os.path.join(sync.dir, m.__name__))
        os.mkdir(sync_m.dir)
        with pool(m, method, sync=sync_m, max_workers=1) as (ex, _):
            running = ex.submit(tasks.block, sync_m.dir, "run")
            sync_m.started("run")
            queued = [ex.submit(tasks.square, i) for i in range(10)]
            done = threading.Event()

            def shut():
                ex.shutdown(wait=True, cancel_futures=True)
                done.set()

            t = threading.Thread(target=shut)
            t.start()
            try:
                # shutdown(wait=True) waits for the running task
                waited = not done.wait(0.2)
            finally:
                sync_m.release()
                t.join(30)
            cancelled = [f.cancelled() for f in queued]
            # A few futures may already have gone to the worker (the stdlib
            # hands max_workers + 1 ahead); those run, the rest is
            # cancelled, in submission order.
            ran = cancelled.index(True) if True in cancelled else 10
            ok = all(cancelled[ran:]) and all(
                f.result(timeout=0) == i * i
                for i, f in enumerate(queued[:ran]))
            return (waited, not t.is_alive(), running.result(timeout=0),
                    ok, ran <= 3, all(f.done() for f in queued))

    assert agreed_once(scenario, mod) == (True, True, "run", True, True, True)


@pytest.mark.parametrize("wait", [True, False])
@pytest.mark.parametrize("used", [True, False])
def test_submit_after_shutdown(mod, wait, used):
    def scenario(m):
        with pool(m, "fork") as (ex, _):
            if used:
                ex.submit(tasks.square, 2).result(timeout=30)
            ex.shutdown(wait=wait)
            again = outcome(ex.shutdown)
            return outcome(ex.submit, tasks.square, 3), again

    assert agreed_once(scenario, mod) == (("raise", RuntimeError, SHUTDOWN),
                                     ("return", None))


def test_context_manager(mod):
    def scenario(m):
        ctx = multiprocessing.get_context("fork")
        with m.ProcessPoolExecutor(2, mp_context=ctx) as ex:
            fs = [ex.submit(tasks.sleep_return, i, 0.01) for i in range(6)]
            workers = tasks.Watch(ex).processes
        return ([f.done() for f in fs], [f.result() for f in fs],
                outcome(ex.submit, tasks.square, 1),
                [p.exitcode for p in workers])

    assert agreed_once(scenario, mod) == (
        [True] * 6, list(range(6)), ("raise", RuntimeError, SHUTDOWN),
        [0, 0])


def test_context_manager_exit_on_error(mod):
    def scenario(m):
        ctx = multiprocessing.get_context("fork")
        fs = []
        try:
            with m.ProcessPoolExecutor(1, mp_context=ctx) as ex:
                fs.append(ex.submit(tasks.sleep_return, 5, 0.05))
                raise KeyError("in the with block")
        except KeyError as exc:
            return str(exc), [f.result(timeout=0) for f in fs]

    assert agreed_once(scenario, mod) == ("'in the with block'", [5])


# ---- initializer ------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_initializer_runs_in_each_worker(mod, method):
    def scenario(m):
        with pool(m, method, initializer=tasks.set_global,
                  initargs=("ready",)) as (ex, watch):
            got = list(ex.map(tasks.get_global, range(6)))
            workers = watch.processes
            ex.shutdown(wait=True)
            return got, [p.exitcode for p in workers]

    got, exitcodes = agreed_once(scenario, mod)
    assert got == ["ready"] * 6
    assert exitcodes and set(exitcodes) == {0}


def _submit_view(ex, fn, *args):
    """What became of one submit: its future's outcome, or what it raised
    (the pool may already know it is broken)."""
    try:
        f = ex.submit(fn, *args)
    except Exception as exc:        # noqa: B902
        return ("submit raised", type(exc), str(exc))
    exc = f.exception(timeout=30)
    return ("future", exc_view(exc))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_failing_initializer_breaks_the_pool(mod, method):
    def scenario(m):
        with pool(m, method, initializer=tasks.failing_initializer) as (
                ex, watch):
            first = ex.submit(tasks.square, 1)
            error = exc_view(first.exception(timeout=30))
            # how fast the pool learns it is broken is a race, in the
            # stdlib as well: a submit may still return a future, which
            # then fails the same way
            more = set(_submit_view(ex, tasks.square, i) for i in range(3))
            later = outcome(ex.submit, tasks.square, 1)
            left = wait_dead(watch.processes)
            return error, more, later, left

    error, more, later, left = agreed_once(scenario, mod)
    assert error == (REF.process.BrokenProcessPool, BROKEN_FUTURE, type(None))
    assert more <= {("future", error),
                    ("submit raised", REF.process.BrokenProcessPool,
                     BROKEN_POOL)}
    assert later == ("raise", REF.process.BrokenProcessPool, BROKEN_POOL)
    assert left == []


# ---- max_tasks_per_child ----------------------------------------------------

def _runs(pids):
    """[(pid, run length)] of consecutive equal pids."""
    return [(k, len(list(g))) for k, g in itertools.groupby(pids)]


def test_max_tasks_per_child_one(mtmod):
    def scenario(m):
        with pool(m, "spawn", max_workers=1, max_tasks_per_child=1) as (
                ex, watch):
            pids = [ex.submit(tasks.pid).result(timeout=30) for _ in range(3)]
            pids += [f.result(timeout=30)
                     for f in [ex.submit(tasks.pid) for _ in range(3)]]
            ex.shutdown(wait=True)
            # every worker ended and was reaped by the pool
            return (len(set(pids)), [n for _, n in _runs(pids)],
                    [p for p in pids if tasks.proc_state(p) is not None])

    assert compare(scenario, mtmod) == (6, [1] * 6, [])


@pytest.mark.parametrize("max_workers", [1, 2])
def test_max_tasks_per_child_two(cf, max_workers):
    # cfutures alone: the stdlib from 3.11 until its gh-115634 fix hangs
    # here (no replacement worker is started once one leaves).
    with pool(cf, "spawn", max_workers=max_workers,
              max_tasks_per_child=2) as (ex, watch):
        fs = [ex.submit(tasks.pid) for _ in range(8)]
        pids = [f.result(timeout=30) for f in fs]
        ex.shutdown(wait=True)
        workers = watch.processes
    counts = [pids.count(p) for p in set(pids)]
    assert max(counts) == 2 and len(counts) >= 4
    assert [p for p in pids if tasks.proc_state(p) is not None] == []
    assert all(p.exitcode == 0 for p in workers)


# ---- terminate_workers / kill_workers (3.14 API) ----------------------------

@pytest.mark.parametrize("how", ["terminate_workers", "kill_workers"])
@pytest.mark.parametrize("method", METHODS)
def test_terminate_and_kill_workers(cf, sync, how, method):
    threads = set(threading.enumerate())
    with pool(cf, method, sync=sync) as (ex, watch):
        running = ex.submit(tasks.block, sync.dir, "run")
        sync.started("run")
        # these block too, on whatever worker takes them
        queued = [ex.submit(tasks.block, sync.dir, "q%d" % i)
                  for i in range(6)]
        workers = watch.processes
        assert len(workers) == 2
        getattr(ex, how)()
        assert exc_view(running.exception(timeout=30)) == (
            REF.process.BrokenProcessPool, BROKEN_FUTURE, type(None))
        # what no worker had taken is cancelled; a future a worker had
        # taken fails with the pool
        for f in queued:
            assert f.done()
            assert f.cancelled() or exc_view(f.exception(timeout=0)) == (
                REF.process.BrokenProcessPool, BROKEN_FUTURE, type(None))
        assert sum(f.cancelled() for f in queued) >= 3
        assert wait_dead(workers) == []
        assert tasks.join_threads(threads) == []    # the pool reaped them
        # killed or terminated, none exited by itself; with kill_workers a
        # worker may get the pool's own SIGTERM first (the pool breaks as
        # soon as the first one dies and terminates the rest)
        allowed = {-signal.SIGTERM} if how == "terminate_workers" else {
            -signal.SIGKILL, -signal.SIGTERM}
        codes = [p.exitcode for p in workers]
        assert set(codes) <= allowed, codes
        got = outcome(ex.submit, tasks.square, 1)
        assert got in (("raise", RuntimeError, SHUTDOWN),
                       ("raise", REF.process.BrokenProcessPool, BROKEN_POOL))
        assert ex._shutdown_thread


@pytest.mark.parametrize("how", ["terminate_workers", "kill_workers"])
def test_terminate_and_kill_idle_or_unused(cf, how):
    with pool(cf, "fork") as (ex, _):
        getattr(ex, how)()          # no worker yet: just shuts down
        assert outcome(ex.submit, tasks.square, 1) == (
            "raise", RuntimeError, SHUTDOWN)
    with pool(cf, "fork") as (ex, watch):
        assert ex.submit(tasks.square, 2).result(timeout=30) == 4
        workers = watch.processes
        getattr(ex, how)()
        assert wait_dead(workers) == []
        assert outcome(ex.submit, tasks.square, 1)[:2] in (
            ("raise", RuntimeError), ("raise", REF.process.BrokenProcessPool))


# ---- resources: fds, zombies, processes -------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_no_fds_or_zombies_left(mod, method):
    tasks.warm_up(method)

    def scenario(m):
        gc.collect()    # fds of earlier tests' garbage are not ours
        before = tasks.open_fds()
        ex = m.ProcessPoolExecutor(2, mp_context=tasks.context(method))
        watch = tasks.Watch(ex)
        try:
            assert list(ex.map(tasks.square, range(20))) == [
                i * i for i in range(20)]
            pids = watch.pids
            ex.shutdown(wait=True)
        finally:
            ex.shutdown(wait=False)
            if wait_dead(watch.processes):
                tasks.kill_all(watch.processes)
        # reaped by the pool (forkserver workers: by the fork server)
        in_proc = [pid for pid in pids if tasks.proc_state(pid) is not None]
        reaped = []
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                reaped.append(pid)
        codes = [p.exitcode for p in watch.processes]
        # A Process object keeps its sentinel fd while it lives: drop ours.
        del watch, ex
        gc.collect()
        after = tasks.open_fds()
        return (len(pids), in_proc, reaped == pids, codes,
                {fd: after[fd] for fd in set(after) - set(before)},
                {fd: before[fd] for fd in set(before) - set(after)})

    assert agreed_once(scenario, mod) == (2, [], True, [0, 0], {}, {})


# ---- interpreter exit without shutdown --------------------------------------

EXIT_CHILD = r"""
import importlib, multiprocessing, sys
which, method, tests, mode = sys.argv[1:5]
sys.path.insert(0, tests)
import process_tasks
m = importlib.import_module(
    "concurrent.futures" if which == "stdlib" else "cfutures")
if __name__ == "__main__":
    ctx = multiprocessing.get_context(method)
    ex = m.ProcessPoolExecutor(2, mp_context=ctx)
    # one write per line: PYTHONUNBUFFERED may be set, and workers share
    # the pipe
    first = ex.submit(process_tasks.square, 7).result()
    sys.stdout.write("first %d\n" % first)
    sys.stdout.flush()
    fs = [ex.submit(process_tasks.print_line, "task %d" % i) for i in range(4)]
    late = ex.submit(process_tasks.sleep_print, "late", 0.3)
    sys.stdout.write("pids %s\n" % " ".join(map(str, ex._processes)))
    if mode == "dropped":
        del ex      # the executor is collected; its queued work still runs
    elif mode == "nowait":
        ex.shutdown(wait=False)
    sys.stdout.write("main done\n")
    sys.stdout.flush()
    # no shutdown: exit must wait for the queued work, then end the workers
"""


def _child_env(m):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [root, env.get("PYTHONPATH")] if p)
    return env


def run_exit_child(m, method, mode, timeout=60):
    which = "stdlib" if m is REF else "cfutures"
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, "-c", EXIT_CHILD, which, method, tests_dir, mode]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_child_env(m),
                            universal_newlines=True, start_new_session=True)
    try:
        start = time.monotonic()
        out, err = proc.communicate(timeout=timeout)
        return out, err, proc.returncode, time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.communicate()


@pytest.mark.parametrize("method, mode", [
    ("fork", "kept"), ("spawn", "kept"), ("forkserver", "dropped"),
    ("fork", "nowait")])
def test_interpreter_exit_without_shutdown(mod, method, mode):
    def scenario(m):
        out, err, rc, took = run_exit_child(m, method, mode)
        lines = out.splitlines()
        pids = [int(p) for line in lines if line.startswith("pids ")
                for p in line.split()[1:]]
        lines = [line for line in lines if not line.startswith("pids ")]
        left = tasks.wait_gone(pids, 10.0)
        # the queued work ran (the late task after "main done"), then the
        # workers ended
        return (lines[:1], sorted(lines[1:]), lines[-1], err, rc, took < 20,
                len(pids) > 0, left)

    assert agreed_once(scenario, mod) == (
        ["first 49"],
        ["late", "main done"] + ["task %d" % i for i in range(4)], "late",
        "", 0, True, True, [])


# ---- an unrelated forked child does not hold the pool up --------------------

def test_shutdown_not_held_by_a_later_forked_child(mod, sync):
    # A process forked after the pool started (a multiprocessing.Process, or
    # another library's fork-based pool) inherits every fd the parent holds.
    # Shutting the pool down must not wait for that process to end.
    def scenario(m):
        sync_m = Sync(os.path.join(sync.dir, m.__name__))
        os.mkdir(sync_m.dir)
        ctx = multiprocessing.get_context("fork")
        other = t = None
        with pool(m, "fork", sync=sync_m) as (ex, watch):
            assert ex.submit(tasks.square, 3).result(timeout=30) == 9
            other = ctx.Process(target=tasks.block, args=(sync_m.dir, "other"))
            try:
                with warnings.catch_warnings():
                    # 3.12+: fork with the pool's thread running
                    warnings.simplefilter("ignore", DeprecationWarning)
                    other.start()
                sync_m.started("other")
                start = time.monotonic()
                done = threading.Event()
                t = threading.Thread(target=lambda: (ex.shutdown(wait=True),
                                                     done.set()))
                t.start()
                finished = done.wait(5.0)
                took = time.monotonic() - start
            finally:
                sync_m.release()
                other.join(30)
                if t is not None:
                    t.join(30)
            return finished, took < 5.0, wait_dead(watch.processes)

    assert agreed_once(scenario, mod) == (True, True, [])


# ---- workers that cannot be started -----------------------------------------

@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.parametrize("what", ["initializer", "initargs"])
def test_worker_start_error_raised_by_submit(mod, method, what):
    # Under spawn/forkserver the initializer and its arguments are pickled
    # to start a worker; when that fails, submit raises the pickling error
    # (the stdlib: on every submit, as each tries to start a worker again).
    def scenario(m):
        kwargs = ({"initializer": lambda: None} if what == "initializer" else
                  {"initializer": tasks.set_global,
                   "initargs": (threading.Lock(),)})
        with pool(m, method, **kwargs) as (ex, watch):
            first = outcome(ex.submit, tasks.square, 1)
            second = outcome(ex.submit, tasks.square, 2)
            shut = outcome(ex.shutdown)
            return (norm_any_addr(str(first)), second[:2], shut,
                    wait_dead(watch.processes))

    got = agreed_once(scenario, mod)
    assert "SystemError" not in got[0]
