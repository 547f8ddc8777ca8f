"""ClusterExecutor (cfutures.distributed) and `python -m cfutures
--process-pool=dask://...`, on a real Dask cluster.

One Dask cluster (a scheduler and 2 worker processes of one thread,
loopback, started with Dask's own commands) serves the whole file; its
client is made before the first test, so its threads are nobody's leak.  The executor contract (test_executor_contract)
is bound to ClusterExecutor with the stdlib's ProcessPoolExecutor as the
oracle; then what is the cluster's own: cancel reaching Dask, the
max_workers bound, a worker killed mid-task, Dask futures in cfutures'
wait() and as_completed(), and the launcher running the lesson's
CPU-bound exercises unchanged on a separately started scheduler.

Without `distributed` (a Python with no wheel for it) the file is skipped,
and the skip prints why.  The tests that start processes or clusters of
their own (the launcher's runs, worker and scheduler deaths, interpreter
exits, a LocalCluster) and the 10,000 futures run on the newest Python
(`newest_only`), to keep `make test` within CI's time; the contract and
the rest run on every version, 3.9 with the older distributed (2024.8).
"""
import asyncio
import concurrent.futures
import contextlib
import copyreg
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

# Importing distributed installs tblib's pickling of every exception class
# (distributed/utils.py), process-wide: exceptions then pickle with their
# causes and tracebacks.  pytest imports this file in every process that runs
# tests, and the rest of the suite checks the stdlib's pickling of errors, so
# that is undone here (the ClusterExecutor's exceptions are pickled on the
# workers, which keep it).
_PICKLING = dict(copyreg.dispatch_table)
distributed = pytest.importorskip(
    "distributed", reason="Dask's distributed is not installed for this Python "
                          "(pip install 'cfutures[dask]'): no cluster tests")
copyreg.dispatch_table.clear()
copyreg.dispatch_table.update(_PICKLING)

import cfutures                                    # noqa: E402
import process_tasks as tasks                      # noqa: E402
from cfutures.distributed import ClusterExecutor   # noqa: E402
from futures_helpers import (BROKEN_FUTURE, BROKEN_POOL, ROOT, TIMEOUT,  # noqa: E402
                             child_env, exc_view, run_child, wait_until)
from process_tasks import Sync                     # noqa: E402
from test_executor_contract import ExecutorContract, ProcessPoolMixin, shared  # noqa: E402,F401

pytestmark = pytest.mark.timeout(120)

REF = concurrent.futures
CLUSTER = {}        # "address", "client": the file's cluster (see `cluster`)


@contextlib.contextmanager
def dask_cluster(directory, workers=2):
    """A scheduler and `workers` workers of one thread, started as a user
    starts them (`dask scheduler`, `dask worker`), each a process of its
    own, on the loopback interface: yields (address, the scheduler's
    Popen, a function that starts one more worker).  Tasks go to the workers at once (no scheduler-side queuing, as
    in ClusterExecutor's own clusters); a task may fail once (a worker dies
    under it) and is run again, the second death fails it (KilledWorker),
    so that a test need not kill four workers."""
    scheduler_file = os.path.join(str(directory), "scheduler.json")
    dask_cli = os.path.join(os.path.dirname(sys.executable), "dask")
    common = ["--scheduler-file", scheduler_file, "--no-dashboard", "--host", "127.0.0.1"]
    env = child_env(dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1",
                         DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="inf"))
    procs = []

    def start(*args):
        procs.append(subprocess.Popen(
            [dask_cli, *args] + common, cwd=str(directory), env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    def start_worker():
        start("worker", "--nthreads", "1")

    try:
        start("scheduler", "--port", "0")
        wait_until(lambda: os.path.exists(scheduler_file)
                   and os.path.getsize(scheduler_file) > 0, what="the scheduler")
        for _ in range(workers):
            start_worker()
        with open(scheduler_file) as f:
            address = json.load(f)["address"]
        yield address, procs[0], start_worker
    finally:
        for p in procs:         # each a session of its own: a worker and its nanny
            os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()


@pytest.fixture(scope="module", autouse=True)
def cluster(tmp_path_factory):
    """The file's cluster (dask_cluster).  Not a LocalCluster: its scheduler
    would run in the test process, taking turns with the test on one GIL
    (10,000 futures took 50-80 s instead of 12).  ClusterExecutor() and
    dask://local start LocalClusters of their own below."""
    with dask_cluster(tmp_path_factory.mktemp("dask")) as (address, _, _):
        client = distributed.Client(address, set_as_default=False, timeout=TIMEOUT)
        client.wait_for_workers(2, timeout=TIMEOUT)
        # Start the threads Dask starts once per process, on first use, so
        # that no test sees them as its own: the one that runs its futures'
        # done-callbacks, and its offload thread (a LocalCluster's uses it).
        done = threading.Event()
        client.submit(tasks.square, 1).add_done_callback(lambda f: done.set())
        assert done.wait(TIMEOUT)
        distributed.utils._offload_executor.submit(int).result(TIMEOUT)
        CLUSTER.update(address=address, client=client)
        yield address
        CLUSTER.clear()
        client.close()


def worker_pids(client=None):
    return sorted((client or CLUSTER["client"]).run(os.getpid).values())


# ---- the executor contract --------------------------------------------------

class BridgeWatch(object):
    """What the contract's watch is for a ClusterExecutor: its thread (the
    bridge), which ends once the executor has closed what it opened, and
    the workers it could use (max_workers, or the cluster's size)."""

    processes = ()

    def __init__(self, ex):
        self.thread = ex._bridge.thread
        self.workers = ex._max_workers or len(worker_pids())

    def update(self):
        return self


class TestClusterExecutor(ProcessPoolMixin, ExecutorContract):
    """The contract, ClusterExecutor against the stdlib's ProcessPoolExecutor
    (fork).  The cluster's workers are Dask's: the exit codes the contract
    compares are one per worker the executor could use, 0 once its bridge
    thread has ended (it has let go of them all), and worker_count() is the
    cluster's size (test_max_workers_bounds_running_calls checks the bound)."""

    METHOD = "fork"
    SHARED = False
    SUBMITS = 25

    def make(self, m, max_workers=None, **kwargs):
        if m is REF:
            return super().make(m, max_workers, **kwargs)
        return ClusterExecutor(CLUSTER["address"], max_workers=max_workers, **kwargs)

    def pool(self, m, sync=None, max_workers=2, **kwargs):
        if m is REF:
            return super().pool(m, sync, max_workers, **kwargs)
        ex = self.make(m, max_workers, **kwargs)
        return tasks.cleaned_up(ex, BridgeWatch(ex), sync)

    def announced(self, f):
        wait_until(f.running, what="the start of the call reached the client")

    def worker_count(self, ex):
        if isinstance(ex, ClusterExecutor):
            return len(worker_pids())
        return super().worker_count(ex)

    def exit_codes(self, watch):
        if isinstance(watch, BridgeWatch):
            watch.thread.join(TIMEOUT)
            return [None if watch.thread.is_alive() else 0] * watch.workers
        return super().exit_codes(watch)

    def still_running(self, watch):
        if isinstance(watch, BridgeWatch):
            watch.thread.join(TIMEOUT)
            return [watch.thread] if watch.thread.is_alive() else []
        return super().still_running(watch)

    def test_failing_initializer_breaks_the_pool(self, mod):
        # As a process pool's: the first future fails, then submit()
        # raises, with the stdlib's class and words; the cluster says more:
        # the __cause__ is the initializer's own error, with the worker's
        # traceback (the stdlib logs it in the dead worker).
        if mod is REF:
            return super().test_failing_initializer_breaks_the_pool(mod)
        with self.pool(mod, initializer=tasks.failing_initializer) as (ex, watch):
            first = ex.submit(tasks.square, 1).exception(timeout=TIMEOUT)
            wait_until(lambda: ex._bridge.phase.name == "BROKEN", what="broken")
            later = submit_outcome(ex)
            ex.shutdown(wait=True)
            after = submit_outcome(ex)
            left = self.still_running(watch)
        assert exc_view(first)[:2] == (REF.process.BrokenProcessPool, BROKEN_FUTURE)
        assert isinstance(first.__cause__, RuntimeError)
        assert str(first.__cause__) == "initializer failed on purpose"
        assert later == after == (REF.process.BrokenProcessPool, BROKEN_POOL)
        assert left == []
        # the plugin is gone with the executor: a new worker would not run it
        assert worker_plugins() == set()


def submit_outcome(ex):
    try:
        ex.submit(tasks.square, 1)
    except Exception as exc:        # noqa: B902
        return type(exc), str(exc)
    return "accepted"


def worker_plugins():
    names = CLUSTER["client"].run_on_scheduler(
        lambda dask_scheduler: list(dask_scheduler.worker_plugins))
    return {n for n in names if n.startswith("cfutures-")}


# ---- what is the cluster's own ----------------------------------------------

@pytest.fixture
def ex():
    with ClusterExecutor(CLUSTER["address"]) as executor:
        yield executor


def test_futures_work_wherever_futures_go(ex):
    fs = [ex.submit(tasks.square, i) for i in range(5)]
    assert all(type(f) is cfutures.Future and isinstance(f, REF.Future) for f in fs)
    # the stdlib's own wait() and as_completed() (its private protocol)
    assert len(REF.wait(fs, timeout=TIMEOUT).done) == 5
    assert sorted(f.result() for f in REF.as_completed(fs, timeout=TIMEOUT)) == [0, 1, 4, 9, 16]

    async def awaited():
        return await asyncio.wrap_future(ex.submit(tasks.add, 2, 3))

    assert asyncio.run(awaited()) == 5
    assert isinstance(ex, REF.Executor) and isinstance(ex, cfutures.Executor)


def test_remote_exception_has_the_workers_traceback(ex):
    error = ex.submit(tasks.raise_value_error, "from a worker").exception(timeout=TIMEOUT)
    assert type(error) is ValueError and str(error) == "from a worker"
    cause = error.__cause__
    assert type(cause) is REF.process._RemoteTraceback
    assert "raise_value_error" in str(cause) and "ValueError: from a worker" in str(cause)


def test_what_cannot_be_pickled_fails_its_future_as_in_a_pool(ex):
    def scenario(submit):
        arg = submit(tasks.square, threading.Lock()).exception(timeout=TIMEOUT)
        result = submit(tasks.return_lock).exception(timeout=TIMEOUT)
        return exc_view(arg), exc_view(result)

    with REF.ProcessPoolExecutor(1) as pool:
        expected = scenario(pool.submit)
    assert scenario(ex.submit) == expected
    # lambdas and closures go too (Dask sends them with cloudpickle)
    offset = 10
    assert ex.submit(lambda x: x + offset, 1).result(timeout=TIMEOUT) == 11


def test_map_every_way(ex):
    assert list(ex.map(tasks.square, range(7))) == [i * i for i in range(7)]
    assert list(ex.map(tasks.add, range(9), range(9), chunksize=4)) == list(range(0, 18, 2))
    assert sorted(ex.map(tasks.square, range(6), ordered=False)) == [0, 1, 4, 9, 16, 25]
    assert list(ex.map(tasks.square, range(20), buffersize=2)) == [i * i for i in range(20)]


def test_started_calls_are_running_and_cannot_be_cancelled(ex, tmp_path):
    s = Sync(tmp_path)
    running = ex.submit(tasks.block, s.dir, "run")
    s.started("run")
    wait_until(running.running, what="RUNNING")
    assert running.cancel() is False
    s.release()
    assert running.result(timeout=TIMEOUT) == "run"


def test_cancel_of_a_queued_call_cancels_its_dask_task(ex, tmp_path):
    # Two calls take both workers; the third waits in Dask's queue.
    s = Sync(tmp_path)
    busy = [ex.submit(tasks.block, s.dir, tag) for tag in ("a", "b")]
    s.started_some(["a", "b"], 2)
    queued = ex.submit(tasks.block, s.dir, "queued")
    wait_until(lambda: dask_keys() >= 3, what="the third task in Dask")
    assert queued.cancel() is True
    wait_until(lambda: dask_keys() == 2, what="the cancelled task gone from Dask")
    assert queued._state == "CANCELLED_AND_NOTIFIED"
    s.release()
    assert [f.result(timeout=TIMEOUT) for f in busy] == ["a", "b"]
    assert sorted(n.partition(".")[0] for n in os.listdir(s.dir)
                  if ".started." in n) == ["a", "b"]


def dask_keys():
    """How many tasks of executors the scheduler holds."""
    return CLUSTER["client"].run_on_scheduler(
        lambda dask_scheduler: sum(1 for k in dask_scheduler.tasks if "-cfutures-" in str(k)))


def test_max_workers_bounds_running_calls(tmp_path):
    s = Sync(tmp_path)
    with ClusterExecutor(CLUSTER["address"], max_workers=1) as ex:
        fs = [ex.submit(tasks.block, s.dir, "t%d" % i) for i in range(3)]
        s.started("t0")
        assert dask_keys() == 1         # the others wait here
        assert not any(f.cancelled() for f in fs)
        assert fs[2].cancel() is True   # waiting here: dropped at once
        s.release()
        assert [f.result(timeout=TIMEOUT) for f in fs[:2]] == ["t0", "t1"]


def test_shutdown_closes_only_what_the_executor_opened():
    client = CLUSTER["client"]
    with ClusterExecutor(client=client) as ex:
        assert ex.client is client
        assert ex.submit(tasks.square, 3).result(timeout=TIMEOUT) == 9
    assert client.status == "running"       # not ours to close
    with pytest.raises(TypeError, match="an address or a client, not both"):
        ClusterExecutor(CLUSTER["address"], client=client)
@pytest.mark.newest_only
def test_its_own_local_cluster_is_closed_with_it():
    before = set(threading.enumerate())
    with ClusterExecutor(max_workers=1, initializer=tasks.set_global,
                         initargs=("set up",)) as ex:
        assert ex.submit(tasks.get_global).result(timeout=TIMEOUT) == "set up"
        workers = list(ex.client.run(os.getpid).values())
    assert len(workers) == 1
    assert tasks.wait_gone(workers) == []
    assert tasks.join_threads(before) == []


def test_dropped_without_shutdown_it_still_finishes_and_closes():
    before = set(threading.enumerate())
    ex = ClusterExecutor(CLUSTER["address"])
    f = ex.submit(tasks.square, 6)
    thread = ex._bridge.thread
    del ex
    assert f.result(timeout=TIMEOUT) == 36
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert tasks.join_threads(before) == []


def test_accepted_calls_complete_under_concurrent_cancel_and_shutdown(tmp_path):
    # Submitters, cancellers and a shutdown(cancel_futures=True) at once:
    # every future ends, done or cancelled, and nothing hangs.
    ex = ClusterExecutor(CLUSTER["address"], max_workers=2)
    fs, lock = [], threading.Lock()

    def submitter():
        for i in range(40):
            try:
                f = ex.submit(tasks.square, i)
            except RuntimeError:
                return
            with lock:
                fs.append(f)

    def canceller():
        for _ in range(200):
            with lock:
                mine = list(fs[-5:])
            for f in mine:
                f.cancel()

    threads = [threading.Thread(target=t) for t in (submitter, submitter, canceller)]
    for t in threads:
        t.start()
    time.sleep(0.05)            # (not synchronisation: lets a few run first)
    ex.shutdown(wait=True, cancel_futures=True)
    for t in threads:
        t.join(TIMEOUT)
    assert all(f.done() for f in fs)
    assert REF.wait(fs, timeout=TIMEOUT).not_done == set()


def test_ctrl_c_in_the_with_block_ends_it_promptly(tmp_path):
    # What has not started is cancelled; a running call gets half a second,
    # then its future fails as a pool's whose workers were stopped.
    s = Sync(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with ClusterExecutor(CLUSTER["address"], max_workers=1) as ex:
            running = ex.submit(tasks.block, s.dir, "run")
            queued = ex.submit(tasks.square, 2)
            s.started("run")
            wait_until(running.running, what="RUNNING")
            interrupted = time.monotonic()
            raise KeyboardInterrupt
    ended = time.monotonic() - interrupted
    s.release()
    assert queued.cancelled()
    assert exc_view(running.exception(timeout=0))[:2] == (
        REF.process.BrokenProcessPool, BROKEN_FUTURE)
    assert 0.4 < ended < 10
@pytest.mark.newest_only
def test_the_scheduler_dying_fails_the_calls_and_hangs_nothing(tmp_path):
    with dask_cluster(tmp_path, workers=1) as (address, scheduler, _):
        ex = ClusterExecutor(address)
        assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4
        f = ex.submit(tasks.sleep_return, "late", 30)
        wait_until(f.running, what="RUNNING")
        scheduler.kill()
        error = f.exception(timeout=TIMEOUT)
        assert exc_view(error)[:2] == (REF.process.BrokenProcessPool, BROKEN_FUTURE)
        # As a pool that lost a worker: broken, at once (not after Dask's
        # client has tried to reconnect for 30 s).
        submitting = time.monotonic()
        with pytest.raises(REF.process.BrokenProcessPool, match=BROKEN_POOL):
            ex.submit(tasks.square, 3)
        assert time.monotonic() - submitting < 5
        shutting = time.monotonic()
        ex.shutdown(wait=True)
        assert time.monotonic() - shutting < TIMEOUT


@pytest.mark.newest_only
def test_a_worker_joining_whose_initializer_fails_breaks_the_executor(tmp_path, caplog):
    # Dask only logs a worker plugin's failure on a worker that joins
    # later, and gives that worker tasks all the same: no call may run
    # there uninitialized.  As a process pool whose initializer fails in a
    # worker it starts later (max_tasks_per_child, say): the executor
    # breaks, the future fails with the stdlib's error, caused by the
    # initializer's own (with the worker's traceback).
    marker = tmp_path / "fail-from-now-on"
    with dask_cluster(tmp_path, workers=1) as (address, _, start_worker):
        client = distributed.Client(address, set_as_default=False, timeout=TIMEOUT)
        ex = ClusterExecutor(address, initializer=tasks.fail_if_exists, initargs=(str(marker),))
        try:
            assert ex.submit(tasks.square, 3).result(timeout=TIMEOUT) == 9
            first = set(worker_pids(client))
            marker.write_text("")
            start_worker()
            client.wait_for_workers(2, timeout=TIMEOUT)
            # only the new worker is left to run calls
            client.retire_workers([a for a, pid in client.run(os.getpid).items()
                                   if pid in first], close_workers=True)
            wait_until(lambda: len(client.scheduler_info()["workers"]) == 1,
                       what="the first worker to leave")
            error = ex.submit(tasks.square, 4).exception(timeout=TIMEOUT)
            assert exc_view(error)[:2] == (REF.process.BrokenProcessPool, BROKEN_FUTURE)
            assert type(error.__cause__) is RuntimeError
            assert str(error.__cause__) == "initializer failed on purpose"
            assert "fail_if_exists" in str(error.__cause__.__cause__)   # the worker's traceback
            with pytest.raises(REF.process.BrokenProcessPool, match=BROKEN_POOL):
                ex.submit(tasks.square, 5)
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
            client.close()


def test_dropped_by_its_own_callbacks_while_the_bridge_holds_its_lock():
    # The last reference to the executor is in a done-callback of a
    # cancelled call that waits here; the bridge drops it while it holds
    # its lock, and the executor's finalizer runs there (found by review:
    # it deadlocked).
    def cb(executor, f):
        pass

    def make():
        ex = ClusterExecutor(CLUSTER["address"], max_workers=1)
        first = ex.submit(tasks.sleep_return, "first", 0.3)
        cancelled = [ex.submit(tasks.square, i) for i in range(2)]
        cancelled[0].add_done_callback(functools.partial(cb, ex))
        assert all(f.cancel() for f in cancelled)
        return ex._bridge, first

    bridge, first = make()
    assert first.result(timeout=TIMEOUT) == "first"
    bridge.thread.join(TIMEOUT)
    assert not bridge.thread.is_alive()


def test_an_ended_executor_leaves_no_start_events_on_the_scheduler():
    def topics():
        return {k for k in CLUSTER["client"].get_events() if k.startswith("cfutures-")}

    before = topics()
    with ClusterExecutor(CLUSTER["address"]) as ex:
        assert list(ex.map(tasks.square, range(20))) == [i * i for i in range(20)]
        topic = ex._bridge.topic
        assert topic in topics()
    assert topics() <= before


@pytest.mark.newest_only
@pytest.mark.parametrize("made", ["in a daemon thread", "after exit began"])
def test_interpreter_exit_waits_for_the_calls_and_ends(made):
    # As the stdlib's pools: at exit the calls still finish (their
    # callbacks run), then the interpreter ends; an executor made in a
    # daemon thread or after the exit hook ran included (found by review:
    # lost futures, a hang).
    program = textwrap.dedent("""
        import sys, threading, time
        from cfutures.distributed import ClusterExecutor
        import process_tasks as tasks
        import cfutures._dask   # (after exit began nothing can register atexit)
        keep = []

        def work():
            if sys.argv[2] == "after exit began":
                threading.main_thread().join()
            ex = ClusterExecutor(sys.argv[1])
            keep.append(ex)
            try:
                f = ex.submit(tasks.sleep_return, 1, 0.3)
            except RuntimeError as error:
                print(error, flush=True)
                return
            f.add_done_callback(lambda f: print("done-callback ran", flush=True))

        t = threading.Thread(target=work, daemon=sys.argv[2] != "after exit began")
        t.start()
        if t.daemon:
            t.join()
    """)
    rc, out, err = run_child(["-c", program, CLUSTER["address"], made], timeout=60)
    assert rc == 0, err
    assert out == ("done-callback ran\n" if made == "in a daemon thread" else
                   "cannot schedule new futures after interpreter shutdown\n")


# ---- Dask's own futures in cfutures' wait() and as_completed() --------------

# 10,000 Dask futures take ~15 s here (Dask's per-task cost): the newest
# Python takes them, every version 1,000 (conftest.py's newest_only).
@pytest.mark.parametrize("count", [1000, pytest.param(10000, marks=pytest.mark.newest_only)])
def test_as_completed_over_many_dask_futures_yields_each_once(count):
    client = CLUSTER["client"]
    dask_fs = client.map(tasks.square, range(count), pure=False)
    plain = REF.Future()
    ours = cfutures.Future()
    seen = []
    for f in cfutures.as_completed(dask_fs + [plain, ours], timeout=120):
        seen.append(f)
        if len(seen) == 100:        # the other kinds finish in the middle
            plain.set_result("stdlib")
            ours.set_result("cfutures")
    assert len(seen) == count + 2 and len(set(map(id, seen))) == count + 2
    assert set(map(id, seen)) == set(map(id, dask_fs + [plain, ours]))
    assert sum(client.gather(dask_fs)) == sum(i * i for i in range(count))


def test_wait_takes_dask_futures_mixed_with_others(tmp_path):
    client = CLUSTER["client"]
    s = Sync(tmp_path)
    blocked = client.submit(tasks.block, s.dir, "held", pure=False)
    failing = client.submit(tasks.raise_value_error, "dask", pure=False)
    plain = REF.Future()
    done, not_done = cfutures.wait([blocked, failing, plain], timeout=TIMEOUT,
                                   return_when=cfutures.FIRST_EXCEPTION)
    assert done == {failing} and not_done == {blocked, plain}
    done, not_done = cfutures.wait([blocked, plain], timeout=0.1)
    assert done == set() and not_done == {blocked, plain}
    s.release()
    done, _ = cfutures.wait([blocked, plain], return_when=cfutures.FIRST_COMPLETED,
                            timeout=TIMEOUT)
    assert done == {blocked} and blocked.result() == "held"


# ---- python -m cfutures --process-pool=dask://... ---------------------------

EXERCISES = ("exercise1_map_threads_vs_processes.py", "exercise3_pipeline.py")


def exercise(name, *launcher_args, env=None):
    """(return code, stdout, stderr) of the lesson's exercise, unchanged,
    run by plain python (no launcher_args) or by the launcher."""
    script = [os.path.join(ROOT, "examples", name), "--impl", "stdlib"]
    if launcher_args:
        return run_child(["-m", "cfutures", *launcher_args] + script, env=env,
                         timeout=90)
    return run_child(script, env=env, timeout=90)


# Worker deaths: the cluster's nannies restart the dead workers.
@pytest.mark.newest_only
def test_a_worker_killed_mid_task_the_task_runs_again(tmp_path):
    # Dask runs the call again on a worker that lives; the user gets its
    # result, never a hang.
    s = Sync(tmp_path)
    with ClusterExecutor(CLUSTER["address"]) as ex:
        f = ex.submit(tasks.block, s.dir, "victim")
        s.started("victim")
        first = [n for n in os.listdir(s.dir) if n.startswith("victim.started.")]
        os.kill(int(first[0].rpartition(".")[2]), signal.SIGKILL)
        wait_until(lambda: len([n for n in os.listdir(s.dir)
                                if n.startswith("victim.started.")]) == 2,
                   what="the call started again")
        s.release()
        assert f.result(timeout=TIMEOUT) == "victim"
        wait_until(lambda: len(worker_pids(ex.client)) == 2, what="the nanny's new worker")
@pytest.mark.newest_only
def test_a_call_that_kills_every_worker_fails_as_in_a_broken_pool():
    # (allowed-failures is 1 here: the second death gives KilledWorker)
    with ClusterExecutor(CLUSTER["address"]) as ex:
        error = ex.submit(tasks.crash, "sigkill").exception(timeout=60)
        assert exc_view(error)[:2] == (REF.process.BrokenProcessPool, BROKEN_FUTURE)
        assert type(error.__cause__).__name__ == "KilledWorker"
        wait_until(lambda: len(worker_pids(ex.client)) == 2, timeout=60, what="workers back")
        assert ex.submit(tasks.square, 7).result(timeout=TIMEOUT) == 49   # goes on


@pytest.mark.newest_only
@pytest.mark.parametrize("name", EXERCISES)
def test_the_lessons_exercises_run_unchanged_on_a_cluster(name):
    local = exercise(name)
    assert local[0] == 0 and local[1], local
    on_cluster = exercise(name, "--process-pool=dask://" + CLUSTER["address"].split("://")[1])

    assert on_cluster == local
@pytest.mark.newest_only
def test_the_launcher_puts_processpoolexecutor_on_dask_local():
    # CFUTURES_PROCESS_POOL as the option; the calls run on Dask workers;
    # the variable is not passed on to the processes the program starts.
    program = """
        import concurrent.futures as cf, os
        from concurrent.futures.process import ProcessPoolExecutor as Same
        from process_tasks import on_dask_worker
        with cf.ProcessPoolExecutor(max_workers=2) as ex:
            print(cf.ProcessPoolExecutor is Same,
                  isinstance(ex, cf.Executor), set(ex.map(on_dask_worker, range(4))),
                  os.environ.get("CFUTURES_PROCESS_POOL"))
    """
    env = dict(os.environ, CFUTURES_PROCESS_POOL="dask://local")
    rc, out, err = run_child(["-m", "cfutures", "-c", textwrap.dedent(program)], env=env,
                             timeout=90)
    assert (rc, out) == (0, "True True {True} None\n"), err


def test_the_launcher_refuses_what_it_cannot_use():
    rc, out, err = run_child(["-m", "cfutures", "--process-pool=tcp://x:1", "-c", "pass"])
    assert (rc, out) == (2, "")
    assert err.endswith("--process-pool: expected dask://HOST:PORT or dask://local, "
                        "not 'tcp://x:1'\n")
    # without distributed: what to install, before the program runs
    rc, out, err = run_child(["-c", textwrap.dedent("""
        import sys
        sys.modules["distributed"] = None
        import cfutures.__main__ as launcher
        sys.exit(launcher.main(["--process-pool=dask://local", "-c", "print('ran')"]))
    """)])
    assert (rc, out) == (2, "")
    assert "pip install 'cfutures[dask]'" in err


def test_without_dask_the_executor_says_what_to_install():
    rc, out, err = run_child(["-c", textwrap.dedent("""
        import sys
        sys.modules["distributed"] = None
        import cfutures, cfutures.distributed
        try:
            cfutures.distributed.ClusterExecutor()
        except ImportError as error:
            print(error)
    """)])
    assert (rc, err) == (0, "")
    assert out == ("cfutures.distributed.ClusterExecutor needs Dask's distributed package, "
                   "which is not installed: pip install 'cfutures[dask]'\n")


def test_importing_cfutures_never_imports_dask():
    rc, out, err = run_child(["-c", textwrap.dedent("""
        import sys
        import cfutures, cfutures.distributed
        from cfutures import ProcessPoolExecutor, ThreadPoolExecutor, wait
        print(sorted(m for m in ("dask", "distributed") if m in sys.modules))
    """)])
    assert (rc, out, err) == (0, "[]\n", "")
