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
the comment says why.  Workers run the functions of ``process_tasks``;
tests and tasks meet through files (see ``Sync``), never through sleeps;
whether a process has ended is polled with a deadline.

What every executor does (argument checks, the shutdown modes, the context
manager, a failing initializer, concurrent submitters, map) is the executor
contract, in test_executor_contract.py; this file holds what is particular
to the process pool.
"""

import concurrent.futures
import concurrent.futures.process
import gc
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings

import pytest

import process_tasks as tasks
from futures_helpers import (BROKEN_FUTURE, BROKEN_POOL, HAS_MAX_TASKS, SHUTDOWN, TIMEOUT,
                             Counted, agreed_once, default_max_workers, exc_view,
                             norm_any_addr, outcome, start_child, wait_until, which)
from process_tasks import METHODS, pool, wait_dead

REF = concurrent.futures
RemoteTraceback = concurrent.futures.process._RemoteTraceback

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc, fds"),
]


def compare(scenario, m):
    """agreed_once() where the stdlib has the API, else cfutures alone."""
    if HAS_MAX_TASKS:
        return agreed_once(scenario, m)
    return scenario(m)


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


# ---- constructor ------------------------------------------------------------

def test_default_max_workers(mod):
    # 3.13 counts the CPUs this process may use
    count = (os.process_cpu_count() if sys.version_info >= (3, 13)
             else os.cpu_count())
    assert agreed_once(lambda m: default_max_workers(m.ProcessPoolExecutor),
                       mod) == (count or 1)


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
            results = (echo.result(timeout=TIMEOUT),
                       [f.result(timeout=TIMEOUT) for f in squares],
                       added.result(timeout=TIMEOUT))
            exc = failing.exception(timeout=TIMEOUT)
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
                f.result(timeout=TIMEOUT)
            except ValueError as exc:
                return exc_view(exc), "tenfold_positive" in remote_text(exc)
            return "no error"

    assert agreed_once(scenario, mod) == ((ValueError, "negative: -7",
                                      RemoteTraceback), True)


def test_idle_worker_takes_the_next_task(mod, sync):
    # With one worker busy on a long task, tasks submitted afterwards run
    # on the other, idle worker: none of them waits behind the long task.
    def scenario(m):
        sync_m = sync.sub(m.__name__)
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
            return got, long.result(timeout=TIMEOUT)

    assert agreed_once(scenario, mod) == ([True] * 4, "long")


def test_base_exceptions_from_the_task(mod):
    def scenario(m):
        with pool(m, "fork", max_workers=1) as (ex, _):
            exits = ex.submit(sys.exit, 3)
            interrupted = ex.submit(tasks.raise_value_error, "after exit")
            e1 = exits.exception(timeout=TIMEOUT)
            e2 = interrupted.exception(timeout=TIMEOUT)
            return ((type(e1), e1.args), exc_view(e2),
                    ex.submit(tasks.square, 2).result(timeout=TIMEOUT))

    assert agreed_once(scenario, mod) == (
        (SystemExit, (3,)), (ValueError, "after exit", RemoteTraceback), 4)


def test_big_arguments_and_results(mod):
    def scenario(m):
        data = os.urandom(1 << 20) * 12        # 12 MiB, more than a pipe
        with pool(m, "fork") as (ex, _):
            size = ex.submit(tasks.length, data)
            back = ex.submit(tasks.echo, data)
            small = ex.submit(tasks.square, 7)
            return (size.result(timeout=TIMEOUT),
                    back.result(timeout=TIMEOUT)[0][0] == data,
                    small.result(timeout=TIMEOUT))

    assert agreed_once(scenario, mod) == (12 << 20, True, 49)


def test_executor_dropped_without_shutdown(mod):
    def scenario(m):
        threads = set(threading.enumerate())
        ex = m.ProcessPoolExecutor(2, mp_context=tasks.context("fork"))
        fs = [ex.submit(tasks.sleep_return, i, 0.02) for i in range(6)]
        workers = tasks.Watch(ex).processes
        del ex
        gc.collect()
        results = [f.result(timeout=TIMEOUT) for f in fs]
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
        s = sync.sub(m.__name__)
        with pool(m, "fork", sync=s) as (ex, _):
            k = ex.submit(tasks.block, s.dir, "K")
            s.started("K")
            assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4
            waiter = ex.submit(tasks.wait_for, s.dir, "X", 5.0)
            maker = ex.submit(tasks.touch, s.dir, "X")
            s.release()         # K ends; its worker is free for T
            return (k.result(timeout=TIMEOUT), waiter.result(timeout=TIMEOUT),
                    maker.result(timeout=TIMEOUT))

    assert agreed_once(scenario, mod) == ("K", True, "X")


# ---- map --------------------------------------------------------------------


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
                exc = f.exception(timeout=TIMEOUT)
                got.append((exc_view(exc), f.done()))
                # the pool goes on
                got.append(ex.submit(tasks.square, n).result(timeout=TIMEOUT))
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
        exc = bad.exception(timeout=TIMEOUT)
        assert type(exc) is concurrent.futures.process.BrokenProcessPool
        assert type(exc.__cause__) is TypeError
        assert "missing 1 required positional argument" in str(exc.__cause__)
        assert tasks.goes_on(ex, before + after) == (
            [i * i for i in range(8)], 3, False)
        workers = watch.processes
    assert wait_dead(workers) == []


# ---- max_tasks_per_child ----------------------------------------------------

def _runs(pids):
    """[(pid, run length)] of consecutive equal pids."""
    return [(k, len(list(g))) for k, g in itertools.groupby(pids)]


def test_max_tasks_per_child_one(mtmod):
    def scenario(m):
        with pool(m, "spawn", max_workers=1, max_tasks_per_child=1) as (
                ex, watch):
            pids = [ex.submit(tasks.pid).result(timeout=TIMEOUT) for _ in range(3)]
            pids += [f.result(timeout=TIMEOUT)
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
        pids = [f.result(timeout=TIMEOUT) for f in fs]
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
        assert exc_view(running.exception(timeout=TIMEOUT)) == (
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
        assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4
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
import multiprocessing, sys
import process_tasks
from child import futures, say
which, method, mode, directory = sys.argv[1:5]
m = futures(which)
if __name__ == "__main__":
    ctx = multiprocessing.get_context(method)
    ex = m.ProcessPoolExecutor(2, mp_context=ctx)
    say("first %d" % ex.submit(process_tasks.square, 7).result())
    fs = [ex.submit(process_tasks.print_line, "task %d" % i) for i in range(4)]
    # prints once the test lets it, after every other line
    late = ex.submit(process_tasks.block_print, directory, "late")
    say("pids %s" % " ".join(map(str, ex._processes)))
    if mode == "dropped":
        del ex      # the executor is collected; its queued work still runs
    elif mode == "nowait":
        ex.shutdown(wait=False)
    say("main done")
    # no shutdown: exit must wait for the queued work, then end the workers
"""


EARLY_LINES = {"first 49", "main done"} | {"task %d" % i for i in range(4)}


def run_exit_child(m, method, mode, sync):
    """Run EXIT_CHILD; its late task is let go once the child printed every
    other line: its main script has ended by then, and only the
    interpreter's exit can wait for the task."""
    begin = time.monotonic()
    child = start_child(["-c", EXIT_CHILD, which(m), method, mode, sync.dir])
    try:
        wait_until(lambda: EARLY_LINES <= set(child.output()[0].splitlines()),
                   what="the child's lines before the late task's")
    finally:
        sync.release()
    # the test checks itself that the workers ended: not reaped for it
    rc, out, err = child.finish(reap_group=False)
    return out, err, rc, time.monotonic() - begin


@pytest.mark.parametrize("method, mode", [
    ("fork", "kept"), ("spawn", "kept"), ("forkserver", "dropped"),
    ("fork", "nowait")])
def test_interpreter_exit_without_shutdown(mod, sync, method, mode):
    def scenario(m):
        out, err, rc, took = run_exit_child(m, method, mode,
                                            sync.sub(m.__name__))
        lines = out.splitlines()
        pids = [int(p) for line in lines if line.startswith("pids ")
                for p in line.split()[1:]]
        lines = [line for line in lines if not line.startswith("pids ")]
        left = tasks.wait_gone(pids)
        # the queued work ran (the late task after "main done", at exit),
        # then the workers ended
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
        sync_m = sync.sub(m.__name__)
        ctx = multiprocessing.get_context("fork")
        other = t = None
        with pool(m, "fork", sync=sync_m) as (ex, watch):
            assert ex.submit(tasks.square, 3).result(timeout=TIMEOUT) == 9
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
                other.join(TIMEOUT)
                if t is not None:
                    t.join(TIMEOUT)
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
