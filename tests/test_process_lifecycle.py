"""ProcessPoolExecutor lifecycle: what must always finish, and what a pool
costs while it waits.

1. max_tasks_per_child never deadlocks: a worker that leaves after its
   quota is replaced while work is queued, also during shutdown (the
   ``with`` block, an explicit shutdown(wait=True), interpreter exit).
2. Accepted => completes: a future submit() returned always ends (result,
   exception or cancelled), even when the pool is shut down or breaks while
   submit() is pickling the call; and shutdown(wait=True) then returns.
3. Ctrl-C (a BaseException that is not an Exception) raised while the call
   is pickled is never stored in a future.  The stdlib pickles in its queue
   feeder thread, where it dies with that thread (and the pool with it);
   cfutures pickles in submit(), which must raise it; the pool stays usable.
4. A broken pool never hangs in shutdown() when a worker survives SIGTERM,
   and leaves no worker process running.
5. Workers start on demand as in the stdlib: under spawn and forkserver a
   worker starts only when no idle one can take the task; under fork all
   max_workers start at the first submit.
6. Queued tasks do not each hold a pickled copy of their arguments: the
   parent's peak memory with 20 queued tasks sharing a 20 MB argument stays
   near the stdlib's.

Where the running stdlib lacks the API or itself hangs or crashes, the
stdlib half is skipped or cfutures is checked alone, and the comment says
why.  Cases that hang on a wrong build run in a child interpreter (a session
of its own, killed as a group at the end); every wait is bounded.
"""

import concurrent.futures
import concurrent.futures.process
import gc
import os
import signal
import sys
import threading
import time

import pytest

import process_tasks as tasks
from futures_helpers import (BROKEN_FUTURE, SHUTDOWN, TIMEOUT, outcome,
                             run_child, start_child, wait_until, which)
from process_tasks import Sync, pool, wait_dead, wait_gone

REF = concurrent.futures
BrokenProcessPool = concurrent.futures.process.BrokenProcessPool

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc, signals"),
]


def future_view(f, timeout=TIMEOUT):
    """How a future ended; "still pending" if it did not within timeout.
    Never raises what the future holds (a KeyboardInterrupt would end the
    test session)."""
    try:
        exc = f.exception(timeout=timeout)
    except REF.TimeoutError:
        return "still pending"
    except REF.CancelledError:
        return "cancelled"
    if exc is None:
        return ("result", f.result(timeout=0))
    return ("raise", type(exc), str(exc))


# ---- 1. max_tasks_per_child never deadlocks ---------------------------------

MAX_TASKS_CHILD = r"""
import multiprocessing, sys
import process_tasks
from child import futures
which, method, mode = sys.argv[1:4]
m = futures(which)

if __name__ == "__main__":
    ctx = multiprocessing.get_context(method)
    if mode == "with":
        with m.ProcessPoolExecutor(2, mp_context=ctx,
                                   max_tasks_per_child=1) as ex:
            fs = [ex.submit(process_tasks.print_pid, "task %d" % i)
                  for i in range(6)]
    else:
        ex = m.ProcessPoolExecutor(2, mp_context=ctx, max_tasks_per_child=1)
        fs = [ex.submit(process_tasks.print_pid, "task %d" % i)
              for i in range(6)]
        if mode == "shutdown":
            ex.shutdown(wait=True)
        elif mode == "nowait":
            ex.shutdown(wait=False)
    if mode in ("with", "shutdown"):
        # every future done when shutdown returned; one process per task
        done = sum(f.done() for f in fs)
        pids = len(set(f.result(timeout=0) for f in fs))
        sys.stdout.write("done %d pids %d\n" % (done, pids))
    sys.stdout.write("main done\n")
    sys.stdout.flush()
    # "exit", "nowait": no (waiting) shutdown; interpreter exit waits for
    # the queued work, which needs replacement workers
"""

TASK_LINES = ["task %d" % i for i in range(6)]


def run_max_tasks_child(m, method, mode):
    rc, out, err = run_child(["-c", MAX_TASKS_CHILD, which(m), method, mode])
    return sorted(out.splitlines()), err, rc


@pytest.mark.parametrize("method, mode", [
    ("spawn", "with"), ("forkserver", "with"), ("spawn", "shutdown")])
def test_max_tasks_per_child_shutdown_waits_for_all(mtmod, method, mode):
    # 6 tasks, 2 workers, one task per worker: shutdown(wait=True) must
    # start replacement workers for the 4 tasks still queued (a wrong build
    # runs 2 and hangs with 4 pending).
    got = run_max_tasks_child(mtmod, method, mode)
    assert got == (["done 6 pids 6", "main done"] + TASK_LINES, "", 0)


def test_max_tasks_per_child_interpreter_exit(mtmod):
    # No shutdown at all: interpreter exit waits for every queued task.
    got = run_max_tasks_child(mtmod, "forkserver", "exit")
    assert got == (["main done"] + TASK_LINES, "", 0)


def test_max_tasks_per_child_exit_after_shutdown_nowait(cf):
    # shutdown(wait=False), then interpreter exit: "Regardless of the value
    # of wait, the entire Python program will not exit until all pending
    # futures are done executing" (the documentation).  cfutures alone: the
    # stdlib 3.11-3.13 breaks here -- its manager thread dies with
    # "TypeError: object of type 'NoneType' has no len()" in
    # _adjust_process_count (shutdown set _processes to None) and only 2 of
    # the 6 tasks run.
    got = run_max_tasks_child(cf, "spawn", "nowait")
    assert got == (["main done"] + TASK_LINES, "", 0)


# ---- 2. accepted => completes -----------------------------------------------

# A future that submit() returned must end one way or another.  The outcomes
# accepted: the task ran (result 25: the argument reduces to int 5), or it
# failed with the pool, or it was cancelled.
ACCEPTED = [("result", 25), "cancelled",
            ("raise", BrokenProcessPool, BROKEN_FUTURE),
            ("raise", RuntimeError, SHUTDOWN)]

# How long __reduce__ waits for the other thread's shutdown.  The stdlib's
# shutdown(wait=True) cannot return while its feeder thread pickles (it
# waits for this very task), so there this bound is always spent.
HELPER_BOUND = 1.0


class ShutdownWhilePickled(object):
    """Pickles as the int 5; while being pickled, another thread calls
    ex.shutdown(wait=True) and is waited for (bounded)."""

    def __init__(self, ex):
        self.ex = ex
        self.helper = None

    def __reduce__(self):
        if self.helper is None:
            self.helper = threading.Thread(target=self.ex.shutdown)
            self.helper.start()
            self.helper.join(HELPER_BOUND)
        return (int, (5,))

    def settled(self):
        """Whether the other thread's shutdown returned (waited for)."""
        self.helper.join(TIMEOUT)
        return not self.helper.is_alive()


class BreakWhilePickled(object):
    """Pickles as the int 5; while being pickled, a worker is killed with
    SIGKILL, and the pool is waited for (bounded) until it knows."""

    def __init__(self, ex):
        self.ex = ex
        self.noticed = None

    def __reduce__(self):
        if self.noticed is None:
            victim = sorted(self.ex._processes)[0]
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 10.0
            while not self.ex._broken and time.monotonic() < deadline:
                time.sleep(0.005)
            self.noticed = bool(self.ex._broken)
        return (int, (5,))

    def settled(self):
        """Whether the pool knew it was broken before pickling ended (the
        stdlib pickles in its feeder thread: waits for that to end)."""
        wait_until(lambda: self.noticed is not None, what="the pickling")
        return self.noticed is True


def bounded_shutdown(ex, timeout=TIMEOUT):
    """Whether ex.shutdown(wait=True) returned within timeout."""
    t = threading.Thread(target=ex.shutdown, daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive()


# What happens while submit() pickles the call, and how the stdlib's
# future ends then (observed on 3.9-3.13).
WHILE_PICKLED = {
    # The shutdown is made by another thread, and completes (in a wrong
    # build) before submit() has queued the call: the future is lost.  The
    # stdlib's shutdown waits for the task, which runs.
    "shutdown": (ShutdownWhilePickled, ("result", 25)),
    # The stdlib pickles later, in its feeder thread: the break comes
    # after submit() returned, and the future fails with the pool.
    "break": (BreakWhilePickled, ("raise", BrokenProcessPool,
                                  BROKEN_FUTURE)),
}


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("event", ["shutdown", "break"])
def test_while_submit_pickles(mod, event, method):
    pickled, stdlib_view = WHILE_PICKLED[event]
    with pool(mod, method) as (ex, watch):
        assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4  # warm
        arg = pickled(ex)
        f = ex.submit(tasks.square, arg)
        view = future_view(f, 10)
        settled = arg.settled()
        returned = bounded_shutdown(ex)
        left = wait_dead(watch.processes)
    assert view in ACCEPTED, view
    assert (settled, returned, left) == (True, True, [])
    if mod is REF:
        assert view == stdlib_view


# ---- 3. Ctrl-C while the call is pickled ------------------------------------

class InterruptWhilePickled(object):
    """Raises `kind` (a BaseException, not an Exception) when pickled."""

    def __init__(self, kind):
        self.kind = kind

    def __reduce__(self):
        raise self.kind("while pickled")


class ThreadExceptions(object):
    """Collects what threads end with (threading.excepthook), as
    (type, str, whether it is the stdlib's queue feeder thread)."""

    def __init__(self):
        self.seen = []

    def hook(self, args):
        self.seen.append((args.exc_type, str(args.exc_value),
                          args.thread is not None
                          and args.thread.name == "QueueFeederThread"))

    def __enter__(self):
        self.saved = threading.excepthook
        threading.excepthook = self.hook
        return self

    def __exit__(self, *exc):
        threading.excepthook = self.saved
        return False


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_while_submit_pickles(mod, kind):
    with ThreadExceptions() as threads, pool(mod, "fork") as (ex, watch):
        assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4  # warm
        got = outcome(ex.submit, tasks.square, InterruptWhilePickled(kind))
        if mod is REF:
            # The stdlib pickles in its queue feeder thread: the exception
            # ends that thread (threading.excepthook gets it), it is never
            # stored in the future, which stays running for good; the pool
            # is dead (nothing reaches the workers any more).  Observed on
            # 3.9-3.13.
            assert got[0] == "return"
            f = got[1]
            wait_until(lambda: threads.seen, 10, "the feeder thread's end")
            assert threads.seen == [(kind, "while pickled", True)]
            assert not f.done()
            # Clean-up only: kill the workers so that the pool breaks and
            # its manager thread ends.
            for p in watch.processes:
                os.kill(p.pid, signal.SIGKILL)
            assert future_view(f) == (
                "raise", BrokenProcessPool, BROKEN_FUTURE)
            return
        # cfutures pickles in submit(): the exception propagates to its
        # caller and no future holds it; the pool goes on working.
        if got[0] == "return":
            pytest.fail("submit() returned; the future holds %r"
                        % (future_view(got[1], 5),))
        assert got == ("raise", kind, "while pickled")
        assert threads.seen == []
        assert ex.submit(tasks.square, 3).result(timeout=TIMEOUT) == 9
        assert bounded_shutdown(ex)
        assert wait_dead(watch.processes) == []


# ---- 4. a worker that survives SIGTERM --------------------------------------

SIGTERM_CHILD = r"""
import multiprocessing, os, signal, sys, threading
import process_tasks
from child import futures, say
which, method, directory = sys.argv[1:4]
m = futures(which)

if __name__ == "__main__":
    sync = process_tasks.Sync(directory)
    ctx = multiprocessing.get_context(method)
    ex = m.ProcessPoolExecutor(2, mp_context=ctx,
                               initializer=process_tasks.ignore_sigterm)
    fs = [ex.submit(process_tasks.block, directory, tag)
          for tag in ("blocked", "victim")]
    pids = sync.started_some(["blocked", "victim"], 2)
    say("pids %d %d" % (pids["blocked"], pids["victim"]))
    os.kill(pids["victim"], signal.SIGKILL)
    t = threading.Thread(target=ex.shutdown, daemon=True)
    t.start()
    t.join(10)
    say("shutdown %s" % ("returned" if not t.is_alive() else "hung"))
    say("left %r" % (process_tasks.wait_gone(list(pids.values()), 5),))
    say("futures %r" % ([f.done() and type(f.exception(0)).__name__
                         for f in fs],))
    # the blocked task is never released: exit without waiting for it
    os._exit(0)
"""


SIGTERM_METHODS = ["fork", "forkserver"]


@pytest.fixture(scope="module")
def sigterm_children(tmp_path_factory):
    """{method: child} for the test below, both children started at once
    (at the first use): each spends most of its time waiting for the grace
    a worker gets between SIGTERM and SIGKILL.  Their blocked tasks are
    released at the end."""
    children, syncs = {}, []
    try:
        for method in SIGTERM_METHODS:
            s = Sync(tmp_path_factory.mktemp("sigterm-" + method))
            syncs.append(s)
            children[method] = start_child(
                ["-c", SIGTERM_CHILD, "cfutures", method, s.dir])
        yield children
    finally:
        for s in syncs:
            s.release()
        for child in children.values():
            child.kill()
            child.close()


@pytest.mark.parametrize("method", SIGTERM_METHODS)
def test_broken_pool_shutdown_with_worker_ignoring_sigterm(cf,
                                                            sigterm_children,
                                                            method):
    # cfutures alone: the stdlib hangs here on every version -- its broken-
    # pool path terminates (SIGTERM) the remaining workers and then joins
    # them, so shutdown(wait=True) waits as long as the blocked task runs
    # (3.9 and 3.11 return once it is released; 3.13 not even then).
    # (longer than TIMEOUT: the child's own bounds, 10 s and 5 s, come
    # after the grace the pool gives a worker between SIGTERM and SIGKILL)
    rc, out, err = sigterm_children[method].finish(40)
    lines = out.splitlines()
    pids = [int(p) for line in lines if line.startswith("pids ")
            for p in line.split()[1:]]
    lines = [line for line in lines if not line.startswith("pids ")]
    assert (lines, err, rc) == (
        ["shutdown returned", "left []",
         "futures ['BrokenProcessPool', 'BrokenProcessPool']"], "", 0)
    assert len(pids) == 2 and wait_gone(pids) == []


# ---- 5. workers start on demand ---------------------------------------------

def wait_idle_token(ex):
    """The stdlib counts idle workers with a semaphore its manager thread
    releases only after it has set the result: a submit right after
    result() returned could find no idle worker yet and start another.
    Wait for the release (stdlib only; cfutures has no such attribute)."""
    sem = getattr(ex, "_idle_worker_semaphore", None)
    if sem is not None:
        wait_until(lambda: sem._value > 0, 10, "the idle-worker token")


def sequential_counts(ex, n):
    """len(_processes) after each of n tasks run one at a time, and the
    number of distinct processes that ran them."""
    counts, pids = [], set()
    for i in range(n):
        if i:
            wait_idle_token(ex)
        pids.add(ex.submit(tasks.pid).result(timeout=TIMEOUT))
        counts.append(len(ex._processes))
    return counts, len(pids)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_workers_start_on_demand(mod, sync, method):
    with pool(mod, method, sync=sync, max_workers=4) as (ex, watch):
        counts, used = sequential_counts(ex, 5)
        # a burst of blocking tasks: a new worker for each task no idle
        # worker can take, up to max_workers
        tags = ["b%d" % i for i in range(6)]
        fs = [ex.submit(tasks.block, sync.dir, tag) for tag in tags]
        running = sync.started_some(tags, 4)
        burst = len(ex._processes)
        sync.release()
        assert [f.result(timeout=TIMEOUT) for f in fs] == tags
    assert (counts, used, burst, len(set(running.values()))) == (
        [1] * 5, 1, 4, 4)


def test_one_task_starts_one_worker_of_many(mod):
    with pool(mod, "spawn", max_workers=64) as (ex, watch):
        assert ex.submit(tasks.square, 3).result(timeout=TIMEOUT) == 9
        assert len(ex._processes) == 1


def test_fork_starts_all_workers_at_first_submit(mod):
    # The stdlib 3.9-3.13 never starts fork workers later (gh-90622: forking
    # from its manager thread is unsafe): all start at the first submit.
    with pool(mod, "fork", max_workers=4) as (ex, watch):
        counts, used = sequential_counts(ex, 3)
        assert counts == [4, 4, 4] and 1 <= used <= 3
        assert len(watch.pids) == 4


# ---- 6. queued tasks do not hold pickled copies -----------------------------

def status_bytes(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s in /proc/self/status" % key)


def reset_peak():
    """Reset VmHWM (peak RSS) to the current RSS; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


MB = 1 << 20
QUEUED = 20      # tasks: enough that a copy each (400 MB) is far over the bound


def peak_while_queued(m, sync):
    """How much the parent's resident memory rose, at its peak, while
    QUEUED tasks sharing one 20 MB argument queued behind a blocked worker
    and then ran."""
    s = sync.sub(which(m))
    data = os.urandom(20 * MB)
    with pool(m, "fork", sync=s, max_workers=1) as (ex, watch):
        first = ex.submit(tasks.block, s.dir, "first")
        s.started("first")
        gc.collect()
        base = status_bytes("VmRSS")
        peak_known = reset_peak()
        fs = [ex.submit(tasks.length, data) for _ in range(QUEUED)]
        after_submit = status_bytes("VmRSS")
        s.release()
        assert [f.result(timeout=2 * TIMEOUT) for f in fs] == [len(data)] * QUEUED
        assert first.result(timeout=TIMEOUT) == "first"
        if peak_known:
            peak = status_bytes("VmHWM")
        else:
            peak = max(after_submit, status_bytes("VmRSS"))
    return peak - base


_STDLIB_PEAK = []       # the stdlib's peak_while_queued(), once measured


def test_queued_tasks_share_their_argument(mod, sync):
    # Measured: the parent's peak RSS (VmHWM, reset just before the submits
    # through /proc/self/clear_refs) over the submits and the runs, minus
    # the RSS before.  RSS sees every copy, however it was allocated (a
    # pickle in a C buffer escapes tracemalloc); the peak does not depend on
    # when the stdlib's feeder thread happens to pickle, nor on whether
    # freed memory went back to the system.  The stdlib keeps at most a
    # couple of pickled calls at a time (its call queue holds max_workers +
    # 1): about 40 MB here on 3.9-3.13; a pickled copy per queued task is
    # 400 MB.  Bound: 3x the stdlib measured in this process (by the stdlib
    # half of this test, just before; by this half itself when it runs
    # alone), but no less than 120 MB, so that a stdlib run that reused
    # memory already resident (and so measured less) cannot make the bound
    # unfairly tight.
    if mod is REF or not _STDLIB_PEAK:
        _STDLIB_PEAK[:] = [peak_while_queued(REF, sync)]
    ref = _STDLIB_PEAK[0]
    assert ref < 200 * MB, "stdlib: %d MB" % (ref // MB)
    if mod is REF:
        return
    got = peak_while_queued(mod, sync)
    bound = max(3 * ref, 120 * MB)
    assert got < bound, "cfutures: %d MB, stdlib: %d MB" % (
        got // MB, ref // MB)
