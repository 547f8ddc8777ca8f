"""ThreadPoolExecutor: constructor, submit, worker reuse, shutdown,
initializer, an executor dropped without shutdown, interpreter exit, fork.

Every behaviour runs against concurrent.futures (the oracle) and cfutures
through the ``mod`` fixture; where the outcome must match, the scenario is
run on both and compared (``agreed``).  Sequencing uses events and barriers;
every blocking call is bounded.
"""

import concurrent.futures
import concurrent.futures.thread
import gc
import importlib
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref

import pytest

from futures_helpers import agreed, outcome

REF = concurrent.futures          # the oracle
WAIT = 10.0                       # bound of every blocking call
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKEN_MSG = ("A thread initializer failed, the thread pool is not usable "
              "anymore")

_prefix_counter = iter(range(10 ** 9))


# ---- helpers ----------------------------------------------------------------

def must(event, timeout=WAIT):
    assert event.wait(timeout), "event not set within %s s" % timeout


def thread_module(mod):
    return importlib.import_module(mod.__name__ + ".thread")


def unique_prefix(tag):
    return "tp%s-%d-%d" % (tag, os.getpid(), next(_prefix_counter))




def wait_until(predicate, timeout=WAIT, what="condition"):
    """Poll an internal state no event can signal."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.0005)


def settle_idle(ex):
    """The stdlib's worker marks itself idle (``_idle_semaphore.release()``)
    a few bytecodes *after* it completed the future, so a submit made right
    after ``result()`` may, rarely, start a second thread.  Wait for the
    oracle to be idle; cfutures parks its worker before it can lose the GIL,
    so there is nothing to wait for."""
    sem = getattr(ex, "_idle_semaphore", None)
    if sem is not None and type(ex) is REF.ThreadPoolExecutor:
        wait_until(lambda: sem._value > 0, what="stdlib worker idle")


class Helper(object):
    """A helper thread running fn(*args); join() is bounded and re-raises."""

    def __init__(self, fn, *args):
        self.value = self.error = None
        self.done = threading.Event()
        self._fn, self._args = fn, args
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.value = self._fn(*self._args)
        except BaseException as exc:  # noqa: B902
            self.error = exc
        finally:
            self.done.set()

    def join(self, timeout=WAIT):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "helper thread did not finish"
        if self.error is not None:
            raise self.error
        return self.value


def pool_threads(prefix):
    return [t for t in threading.enumerate()
            if t.name.startswith(prefix + "_")]


def join_all(threads, timeout=WAIT):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    assert not alive, "worker threads still alive: %r" % (alive,)


def run_child(code, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, encoding="utf-8",
                          errors="replace", timeout=timeout)


def raiser(exc):
    raise exc


# ---- constructor ------------------------------------------------------------

def test_default_max_workers_matches_running_stdlib(mod):
    ex = mod.ThreadPoolExecutor()
    ref = REF.ThreadPoolExecutor()
    try:
        assert ex._max_workers == ref._max_workers
    finally:
        ex.shutdown()
        ref.shutdown()


@pytest.mark.parametrize("cpus", [None, 0, 1, 3, 27, 28, 100])
def test_default_max_workers_follows_cpu_count(mod, monkeypatch, cpus):
    # 3.13+ computes from os.process_cpu_count(), earlier versions from
    # os.cpu_count(); the other function is set to a decoy, so using the
    # wrong one shows.
    if hasattr(os, "process_cpu_count"):
        monkeypatch.setattr(os, "process_cpu_count", lambda: cpus)
        monkeypatch.setattr(os, "cpu_count", lambda: 11)
    else:
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)

    def scenario(m):
        ex = m.ThreadPoolExecutor()
        try:
            return ex._max_workers
        finally:
            ex.shutdown()

    assert agreed(scenario, mod) == min(32, (cpus or 1) + 4)


@pytest.mark.parametrize("n", [0, -1, -100])
def test_max_workers_must_be_positive(mod, n):
    with pytest.raises(ValueError) as info:
        mod.ThreadPoolExecutor(n)
    assert str(info.value) == "max_workers must be greater than 0"
    with pytest.raises(ValueError) as info:
        mod.ThreadPoolExecutor(max_workers=n)
    assert str(info.value) == "max_workers must be greater than 0"


@pytest.mark.parametrize("max_workers", [2.0, 2.5, float("inf"), 2 ** 63,
                                         10 ** 30])
def test_max_workers_any_number_as_stdlib(mod, max_workers):
    # The stdlib only compares max_workers with 0 and with the thread count:
    # floats and integers beyond Py_ssize_t work.
    def scenario(m):
        ex = m.ThreadPoolExecutor(max_workers)
        try:
            return (ex._max_workers, ex.submit(pow, 2, 3).result(WAIT))
        finally:
            ex.shutdown()

    assert agreed(scenario, mod) == (max_workers, 8)


def test_initializer_must_be_callable(mod):
    with pytest.raises(TypeError) as info:
        mod.ThreadPoolExecutor(2, initializer=5)
    assert str(info.value) == "initializer must be a callable"

    def scenario(m):
        return [outcome(m.ThreadPoolExecutor, 0, initializer=5),
                outcome(m.ThreadPoolExecutor, 1, initializer="f")]

    agreed(scenario, mod)


@pytest.mark.parametrize("initargs", ["[1, 'a']", "(x for x in (1, 'a'))",
                                      "iter((1, 'a'))"])
def test_initargs_any_iterable(mod, initargs):
    # The stdlib calls initializer(*initargs): any iterable works (consumed
    # by the first worker if it is an iterator).  In a child: a native
    # implementation assuming a tuple could crash.
    code = """
        import %s as m
        got = []
        ex = m.ThreadPoolExecutor(1, initializer=lambda *a: got.append(a),
                                  initargs=%s)
        print(ex.submit(pow, 2, 2).result(10), got)
        ex.shutdown()
    """

    def scenario(m):
        got = run_child(code % (m.__name__, initargs))
        return got.returncode, got.stdout, got.stderr

    assert agreed(scenario, mod) == (0, "4 [(1, 'a')]\n", "")


def test_thread_names_with_prefix(mod):
    prefix = unique_prefix("named")
    barrier = threading.Barrier(3, timeout=WAIT)

    def task():
        barrier.wait()
        return threading.current_thread().name

    with mod.ThreadPoolExecutor(3, thread_name_prefix=prefix) as ex:
        names = sorted(f.result(WAIT) for f in
                       [ex.submit(task) for _ in range(3)])
        assert ex._thread_name_prefix == prefix
    assert names == [prefix + "_0", prefix + "_1", prefix + "_2"]


def test_default_thread_name_prefix(mod):
    ex1 = mod.ThreadPoolExecutor(1)
    ex2 = mod.ThreadPoolExecutor(1)
    try:
        m1 = re.match(r"^ThreadPoolExecutor-(\d+)$", ex1._thread_name_prefix)
        m2 = re.match(r"^ThreadPoolExecutor-(\d+)$", ex2._thread_name_prefix)
        assert m1 and m2, (ex1._thread_name_prefix, ex2._thread_name_prefix)
        # One counter per class, one step per executor.
        assert int(m2.group(1)) == int(m1.group(1)) + 1
        name = ex1.submit(lambda: threading.current_thread().name).result(WAIT)
        assert name == ex1._thread_name_prefix + "_0"
    finally:
        ex1.shutdown()
        ex2.shutdown()


@pytest.mark.parametrize("prefix", ["", None])
def test_empty_prefix_means_default(mod, prefix):
    ex = mod.ThreadPoolExecutor(1, thread_name_prefix=prefix)
    try:
        name = ex.submit(lambda: threading.current_thread().name).result(WAIT)
        assert re.match(r"^ThreadPoolExecutor-\d+_0$", name), name
    finally:
        ex.shutdown()


def test_non_str_thread_name_prefix(mod):
    # The stdlib formats the name with '%s_%d', so any object works.  Run in
    # a child: a native formatter that assumes a str could crash.
    code = """
        import threading
        import %s as m
        ex = m.ThreadPoolExecutor(1, thread_name_prefix=123)
        print(repr(ex._thread_name_prefix))
        print(ex.submit(lambda: threading.current_thread().name).result(10))
        ex.shutdown()
    """
    got = run_child(code % mod.__name__)
    assert (got.returncode, got.stdout, got.stderr) == (0, "123\n123_0\n", "")


def test_workers_are_real_threads(mod):
    prefix = unique_prefix("real")
    local = threading.local()
    local.value = "main"

    def first():
        local.value = "worker"
        t = threading.current_thread()
        return t, threading.get_ident()

    def second():
        return getattr(local, "value", None), threading.current_thread()

    ex = mod.ThreadPoolExecutor(1, thread_name_prefix=prefix)
    try:
        t, ident = ex.submit(first).result(WAIT)
        assert isinstance(t, threading.Thread)
        assert t.ident == ident
        assert t in threading.enumerate()
        assert t.is_alive()
        assert t.name == prefix + "_0"
        assert set(ex._threads) == {t}
        assert t.daemon is False            # non-daemon, as since 3.9
        assert pool_threads(prefix) == [t]
        # threading.local is per worker thread and persists between tasks.
        value, t2 = ex.submit(second).result(WAIT)
        assert t2 is t
        assert value == "worker"
        assert local.value == "main"
    finally:
        ex.shutdown(wait=True)
    assert not t.is_alive()
    assert t not in threading.enumerate()


# ---- submit -----------------------------------------------------------------

def test_submit_args_and_kwargs(mod):
    def echo(*args, **kwargs):
        return args, kwargs

    with mod.ThreadPoolExecutor(2) as ex:
        assert ex.submit(echo).result(WAIT) == ((), {})
        assert ex.submit(echo, 1, 2).result(WAIT) == ((1, 2), {})
        assert ex.submit(echo, 1, a=2).result(WAIT) == ((1,), {"a": 2})
        # 'fn' and 'self' are ordinary keyword arguments of the call.
        assert ex.submit(echo, fn=3).result(WAIT) == ((), {"fn": 3})
        assert ex.submit(echo, 0, self=1, fn=2).result(WAIT) == (
            (0,), {"self": 1, "fn": 2})
        big = tuple(range(50))
        assert ex.submit(echo, *big, **{"k%d" % i: i for i in range(20)}
                         ).result(WAIT) == (big, {"k%d" % i: i
                                                  for i in range(20)})


def test_submit_returns_future_of_the_module(mod):
    with mod.ThreadPoolExecutor(1) as ex:
        f = ex.submit(int)
        assert isinstance(f, mod.Future)
        assert isinstance(f, REF.Future)
        assert f.result(WAIT) == 0


def test_submit_without_fn(mod):
    def scenario(m):
        ex = m.ThreadPoolExecutor(1)
        try:
            return [outcome(ex.submit), outcome(ex.submit, fn=len)]
        finally:
            ex.shutdown()

    got = agreed(scenario, mod)
    assert all(o[0] == "raise" and o[1] is TypeError for o in got), got


def test_exception_in_task_lands_on_future(mod):
    err = ValueError("boom")
    with mod.ThreadPoolExecutor(1) as ex:
        f = ex.submit(raiser, err)
        assert f.exception(WAIT) is err
        with pytest.raises(ValueError) as info:
            f.result(WAIT)
        assert info.value is err
        # The worker survived.
        assert ex.submit(pow, 2, 4).result(WAIT) == 16
        assert len(ex._threads) == 1


class MyBaseError(BaseException):
    pass


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit,
                                      MyBaseError])
def test_base_exception_in_task_lands_on_future(mod, exc_type):
    err = exc_type("stop")
    with mod.ThreadPoolExecutor(1) as ex:
        f = ex.submit(raiser, err)
        assert f.exception(WAIT) is err
        with pytest.raises(exc_type) as info:
            f.result(WAIT)
        assert info.value is err
        assert f._state == "FINISHED"
        settle_idle(ex)
        assert ex.submit(pow, 3, 2).result(WAIT) == 9
        assert len(ex._threads) == 1


@pytest.mark.parametrize("wait", [True, False])
def test_submit_after_shutdown(mod, wait):
    ex = mod.ThreadPoolExecutor(1)
    assert ex.submit(int).result(WAIT) == 0
    ex.shutdown(wait=wait)
    with pytest.raises(RuntimeError) as info:
        ex.submit(int)
    assert str(info.value) == "cannot schedule new futures after shutdown"
    ex.shutdown()


def test_submit_after_shutdown_without_threads(mod):
    ex = mod.ThreadPoolExecutor(1)
    ex.shutdown()
    with pytest.raises(RuntimeError) as info:
        ex.submit(int)
    assert str(info.value) == "cannot schedule new futures after shutdown"
    assert len(ex._threads) == 0


def test_cancelled_before_run_is_skipped(mod):
    def scenario(m):
        started, go = threading.Event(), threading.Event()
        ran = []

        def task(i):
            if i == 0:
                started.set()
                must(go)
            ran.append(i)
            return i

        ex = m.ThreadPoolExecutor(1)
        try:
            fs = [ex.submit(task, i) for i in range(3)]
            must(started)
            cancels = [f.cancel() for f in fs]
            before = [f._state for f in fs]
        finally:
            go.set()
            ex.shutdown(wait=True)
        return (cancels, before, [f._state for f in fs], ran,
                outcome(fs[1].result, 0)[:2])

    assert agreed(scenario, mod) == (
        [False, True, True], ["RUNNING", "CANCELLED", "CANCELLED"],
        # The worker took the cancelled items and notified them.
        ["FINISHED", "CANCELLED_AND_NOTIFIED", "CANCELLED_AND_NOTIFIED"],
        [0], ("raise", REF.CancelledError))


def test_concurrent_submitters(mod):
    n_threads, per_thread = 4, 5000
    barrier = threading.Barrier(n_threads, timeout=WAIT)
    ex = mod.ThreadPoolExecutor(3)

    def submitter(k):
        barrier.wait()
        return [ex.submit(int, k * per_thread + i) for i in range(per_thread)]

    try:
        helpers = [Helper(submitter, k) for k in range(n_threads)]
        fs = [f for h in helpers for f in h.join()]
        done, not_done = mod.wait(fs, timeout=WAIT)
        assert not not_done
        assert sorted(f.result(0) for f in fs) == list(
            range(n_threads * per_thread))
        assert len(ex._threads) <= 3
    finally:
        ex.shutdown()


# ---- worker reuse -----------------------------------------------------------

def test_idle_worker_reused(mod):
    with mod.ThreadPoolExecutor(8) as ex:
        idents = set()
        for _ in range(20):
            idents.add(ex.submit(threading.get_ident).result(WAIT))
            settle_idle(ex)
        assert len(idents) == 1
        assert len(ex._threads) == 1


def test_idle_workers_reused_after_burst(mod):
    barrier = threading.Barrier(4, timeout=WAIT)
    with mod.ThreadPoolExecutor(8) as ex:
        for _ in range(3):
            for f in [ex.submit(barrier.wait) for _ in range(4)]:
                f.result(WAIT)
            if type(ex) is REF.ThreadPoolExecutor:
                wait_until(lambda: ex._idle_semaphore._value >= 4,
                           what="stdlib workers idle")
            # Four idle workers: the next burst of four starts none.
            assert len(ex._threads) == 4


def test_burst_uses_up_to_max_workers(mod):
    n = 4
    barrier = threading.Barrier(n, timeout=WAIT)

    def meet():
        barrier.wait()      # only passes if n workers run at once
        return threading.get_ident()

    go = threading.Event()

    def blocked():
        must(go)
        return threading.get_ident()

    with mod.ThreadPoolExecutor(n) as ex:
        idents = {f.result(WAIT) for f in [ex.submit(meet) for _ in range(n)]}
        assert len(idents) == n
        assert len(ex._threads) == n
        fs = [ex.submit(blocked) for _ in range(3 * n)]
        assert len(ex._threads) == n        # never more than max_workers
        go.set()
        more = {f.result(WAIT) for f in fs}
        assert more <= idents
        assert len(ex._threads) == n


# ---- shutdown ---------------------------------------------------------------

def test_shutdown_wait_waits_for_running_and_queued(mod):
    started, go = threading.Event(), threading.Event()

    def first():
        started.set()
        must(go)
        return 1

    prefix = unique_prefix("sw")
    ex = mod.ThreadPoolExecutor(1, thread_name_prefix=prefix)
    f1 = ex.submit(first)
    f2 = ex.submit(pow, 2, 3)
    must(started)
    workers = pool_threads(prefix)
    h = Helper(ex.shutdown, True)
    # shutdown(wait=True) must still be waiting: f1 is blocked.
    assert not h.done.wait(0.2)
    assert f1.running() and not f2.done()
    go.set()
    h.join()
    assert (f1.result(0), f2.result(0)) == (1, 8)
    assert workers and not any(t.is_alive() for t in workers)


def test_shutdown_nowait_returns_at_once(mod):
    started, go = threading.Event(), threading.Event()

    def first():
        started.set()
        must(go)
        return 1

    prefix = unique_prefix("snw")
    ex = mod.ThreadPoolExecutor(1, thread_name_prefix=prefix)
    f1 = ex.submit(first)
    f2 = ex.submit(pow, 2, 5)
    must(started)
    workers = pool_threads(prefix)
    h = Helper(ex.shutdown, False)
    try:
        h.join()                            # returns while f1 is blocked
        assert ex._shutdown is True
        assert f1.running() and not f2.done()
    finally:
        go.set()
    # Running and queued tasks still finish.
    assert f1.result(WAIT) == 1
    assert f2.result(WAIT) == 32
    join_all(workers)


def test_shutdown_cancel_futures(mod):
    def scenario(m):
        started, go = threading.Event(), threading.Event()
        ran = []

        def task(i):
            if i == 0:
                started.set()
                must(go)
            ran.append(i)
            return i

        ex = m.ThreadPoolExecutor(1)
        fs = [ex.submit(task, i) for i in range(4)]
        must(started)
        try:
            ex.shutdown(wait=False, cancel_futures=True)
            during = [(f._state, f.cancelled(), f.running()) for f in fs]
        finally:
            go.set()
        ex.shutdown(wait=True)
        after = [(f._state, f.cancelled(), f.done()) for f in fs]
        return during, after, fs[0].result(0), ran

    during, after, result, ran = agreed(scenario, mod)
    assert during[0] == ("RUNNING", False, True)
    assert during[1:] == [("CANCELLED", True, False)] * 3
    assert after[0] == ("FINISHED", False, True)
    assert after[1:] == [("CANCELLED", True, True)] * 3
    assert result == 0 and ran == [0]


def test_shutdown_twice_and_shutdown_attribute(mod):
    ex = mod.ThreadPoolExecutor(2)
    assert ex._shutdown is False
    assert ex.submit(int, "7").result(WAIT) == 7
    ex.shutdown(wait=False)
    assert ex._shutdown is True
    ex.shutdown()
    ex.shutdown(wait=True, cancel_futures=True)
    assert ex._shutdown is True


def test_shutdown_signature(mod):
    def scenario(m):
        ex = m.ThreadPoolExecutor(1)
        try:
            # cancel_futures is keyword-only.
            return [outcome(ex.shutdown, True, True)[:2],
                    outcome(ex.shutdown, wait=False, cancel_futures=False)]
        finally:
            ex.shutdown()

    assert agreed(scenario, mod) == [("raise", TypeError), ("return", None)]


def test_context_manager(mod):
    prefix = unique_prefix("cm")
    go = threading.Event()
    with mod.ThreadPoolExecutor(2, thread_name_prefix=prefix) as ex:
        assert ex.__enter__() is ex
        f = ex.submit(lambda: must(go) or 5)
        workers = pool_threads(prefix)
        assert not ex._shutdown
        go.set()
    assert ex._shutdown is True
    assert f.result(0) == 5                  # __exit__ waited
    assert workers and not any(t.is_alive() for t in workers)


def test_context_manager_does_not_swallow(mod):
    with pytest.raises(ZeroDivisionError):
        with mod.ThreadPoolExecutor(1) as ex:
            f = ex.submit(pow, 2, 2)
            1 / 0
    assert ex._shutdown is True
    assert f.result(0) == 4


# ---- initializer ------------------------------------------------------------

def test_initializer_runs_once_per_worker(mod):
    calls = []
    state = threading.local()
    lock = threading.Lock()

    def init(a, b):
        with lock:
            calls.append((threading.current_thread(), a, b))
        state.ready = (a, b)

    n = 3
    barrier = threading.Barrier(n, timeout=WAIT)

    def task(meet):
        if meet:
            barrier.wait()
        return getattr(state, "ready", None), threading.current_thread()

    ex = mod.ThreadPoolExecutor(n, initializer=init, initargs=(1, "x"))
    try:
        first = [f.result(WAIT) for f in
                 [ex.submit(task, True) for _ in range(n)]]
        later = [f.result(WAIT) for f in
                 [ex.submit(task, False) for _ in range(20)]]
        threads = set(ex._threads)
    finally:
        ex.shutdown()
    assert len(calls) == n
    assert {c[0] for c in calls} == threads
    assert all(c[1:] == (1, "x") for c in calls)
    # Every task ran in an initialized worker.
    assert all(r == (1, "x") for r, _ in first + later)
    assert {t for _, t in first + later} <= threads


def test_initializer_attributes(mod):
    def init(*args):
        pass

    def scenario(m):
        ex = m.ThreadPoolExecutor(1, initializer=init, initargs=(1, 2))
        try:
            return (ex._initializer is init, ex._initargs, ex._broken)
        finally:
            ex.shutdown()

    assert agreed(scenario, mod) == (True, (1, 2), False)


def test_broken_thread_pool_is_stdlib_class(mod):
    assert (thread_module(mod).BrokenThreadPool
            is concurrent.futures.thread.BrokenThreadPool)
    assert issubclass(thread_module(mod).BrokenThreadPool, mod.BrokenExecutor)


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt])
def test_failing_initializer_breaks_pool(mod, caplog, exc_type):
    broken_cls = concurrent.futures.thread.BrokenThreadPool
    gate = threading.Event()

    def init():
        must(gate)
        raise exc_type("init failed")

    ran = []
    ex = mod.ThreadPoolExecutor(2, initializer=init)
    try:
        fs = [ex.submit(ran.append, i) for i in range(3)]
        gate.set()
        for f in fs:
            exc = f.exception(WAIT)
            assert type(exc) is broken_cls
            assert str(exc) == BROKEN_MSG
        assert ex._broken == BROKEN_MSG
        with pytest.raises(broken_cls) as info:
            ex.submit(int)
        assert str(info.value) == BROKEN_MSG
    finally:
        gate.set()
        ex.shutdown(wait=True)
    # Broken wins over shut down.
    with pytest.raises(broken_cls):
        ex.submit(int)
    assert ran == []
    records = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert len(records) == 2                # one per worker thread
    for r in records:
        assert r.levelno == logging.CRITICAL
        assert r.getMessage() == "Exception in initializer:"
        assert r.exc_info and type(r.exc_info[1]) is exc_type
        assert str(r.exc_info[1]) == "init failed"


# ---- an executor dropped without shutdown -----------------------------------

def test_dropped_executor_lets_workers_exit(mod):
    prefix = unique_prefix("drop")
    started, go = threading.Event(), threading.Event()

    def task():
        started.set()
        must(go)
        return "done"

    ex = mod.ThreadPoolExecutor(2, thread_name_prefix=prefix)
    f1 = ex.submit(task)
    must(started)
    f2 = ex.submit(pow, 2, 6)
    assert f2.result(WAIT) == 64
    settle_idle(ex)
    workers = pool_threads(prefix)
    assert len(workers) in (1, 2)
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    try:
        assert ref() is None
    finally:
        go.set()
    assert f1.result(WAIT) == "done"
    join_all(workers)


def test_dropped_executor_runs_queued_tasks(mod):
    prefix = unique_prefix("dropq")
    started, go = threading.Event(), threading.Event()

    def task():
        started.set()
        must(go)
        return "first"

    ex = mod.ThreadPoolExecutor(1, thread_name_prefix=prefix)
    f1 = ex.submit(task)
    fs = [ex.submit(pow, 2, i) for i in range(5)]
    must(started)
    workers = pool_threads(prefix)
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    try:
        assert ref() is None
    finally:
        go.set()
    assert f1.result(WAIT) == "first"
    assert [f.result(WAIT) for f in fs] == [1, 2, 4, 8, 16]
    join_all(workers)


def test_dropped_idle_executor(mod):
    prefix = unique_prefix("dropi")
    barrier = threading.Barrier(3, timeout=WAIT)
    ex = mod.ThreadPoolExecutor(3, thread_name_prefix=prefix)
    for f in [ex.submit(barrier.wait) for _ in range(3)]:
        f.result(WAIT)
    workers = pool_threads(prefix)
    assert len(workers) == 3
    del ex, f
    gc.collect()
    join_all(workers)


# ---- interpreter exit -------------------------------------------------------

EXIT_SCRIPT = """
    import time
    import %s as m
    ex = m.ThreadPoolExecutor(1)
    def task(i):
        time.sleep(0.05)
        print("task", i, flush=True)
        return i
    fs = [ex.submit(task, i) for i in range(3)]
    print("main done", flush=True)
"""


def test_interpreter_exit_waits_for_work(mod):
    def scenario(m):
        got = run_child(EXIT_SCRIPT % m.__name__)
        return got.returncode, sorted(got.stdout.splitlines()), got.stderr

    rc, lines, err = agreed(scenario, mod)
    assert (rc, err) == (0, "")
    assert lines == ["main done", "task 0", "task 1", "task 2"]


def test_submit_after_interpreter_shutdown(mod):
    # At exit the stdlib's workers mark their executor shut down
    # (executor._shutdown = True) as they leave; an executor that never
    # started a worker only knows the interpreter is exiting.
    code = """
        import atexit
        import %s as m
        used = m.ThreadPoolExecutor(1)
        used.submit(int).result(10)
        unused = m.ThreadPoolExecutor(1)
        def late():
            for ex in (used, unused):
                try:
                    ex.submit(int)
                except RuntimeError as e:
                    print(ex._shutdown, "RuntimeError:", e, flush=True)
        atexit.register(late)
    """

    def scenario(m):
        got = run_child(code % m.__name__)
        return got.returncode, got.stdout.splitlines(), got.stderr

    assert agreed(scenario, mod) == (
        0, ["True RuntimeError: cannot schedule new futures after shutdown",
            "False RuntimeError: cannot schedule new futures after "
            "interpreter shutdown"], "")


def test_interpreter_exit_with_worker_blocked_until_main_ends(mod):
    # A task that waits for a daemon thread's event: the worker must be
    # joined by the exit hook, not abandoned, and nothing hangs.
    code = """
        import threading, time
        import %s as m
        ex = m.ThreadPoolExecutor(2)
        go = threading.Event()
        def task():
            go.wait(20)
            print("released", go.is_set(), flush=True)
        ex.submit(task)
        threading.Timer(0.2, go.set).start()
    """

    def scenario(m):
        got = run_child(code % m.__name__)
        return got.returncode, got.stdout, got.stderr

    assert agreed(scenario, mod) == (0, "released True\n", "")


# ---- fork -------------------------------------------------------------------

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")


def fork_child(child):
    """Fork; run child() in the child, whose return value (a short str) goes
    back through a pipe; os._exit always.  Returns (exit code, text)."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        # 3.12+: fork() of a process with threads warns.
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=".*fork.*")
        pid = os.fork()
    if pid == 0:                            # child
        code = 1
        try:
            os.close(r)
            text = child()
            os.write(w, text.encode())
            code = 0
        except BaseException as exc:  # noqa: B902
            try:
                os.write(w, ("error: %r" % (exc,)).encode())
            except BaseException:  # noqa: B902
                pass
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + 30
    status = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise AssertionError("forked child hung")
            time.sleep(0.005)
        chunks = []
        while True:
            data = os.read(r, 4096)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(r)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return code, b"".join(chunks).decode()


@needs_fork
def test_fork_parent_pool_keeps_working(mod):
    # Both modules: the parent's pool is unaffected by a fork, and a pool
    # made in the child works.
    started, go = threading.Event(), threading.Event()

    def task():
        started.set()
        must(go)
        return "parent"

    ex = mod.ThreadPoolExecutor(1)
    try:
        f1 = ex.submit(task)
        f2 = ex.submit(pow, 2, 7)
        must(started)

        def child():
            with mod.ThreadPoolExecutor(2) as fresh:
                return "%r" % (fresh.submit(pow, 3, 3).result(5),)

        code, text = fork_child(child)
        assert (code, text) == (0, "27")
        go.set()
        assert f1.result(WAIT) == "parent"
        assert f2.result(WAIT) == 128
        assert ex.submit(pow, 2, 2).result(WAIT) == 4
    finally:
        go.set()
        ex.shutdown()


# The stdlib's pool is not usable in a forked child when it has an idle
# worker: its idle semaphore says a worker is free, none exists in the
# child, and the task waits forever.  cfutures promises (DESIGN §4) that the
# inherited pool works in the child; these tests are cfutures-only.

@needs_fork
def test_fork_child_can_use_inherited_idle_pool(cf):
    ex = cf.ThreadPoolExecutor(2)
    try:
        assert ex.submit(pow, 2, 3).result(WAIT) == 8

        def child():
            f = ex.submit(pow, 2, 5)
            r1 = f.result(5)
            r2 = [g.result(5) for g in [ex.submit(pow, 3, i)
                                        for i in range(4)]]
            ex.shutdown(wait=True)
            return "%r %r" % (r1, r2)

        code, text = fork_child(child)
        assert (code, text) == (0, "32 [1, 3, 9, 27]")
        assert ex.submit(pow, 2, 4).result(WAIT) == 16
    finally:
        ex.shutdown()


@needs_fork
def test_fork_child_with_busy_pool(cf):
    started, go = threading.Event(), threading.Event()

    def task():
        started.set()
        must(go)
        return "parent"

    ex = cf.ThreadPoolExecutor(1)
    try:
        f1 = ex.submit(task)
        queued = ex.submit(pow, 2, 7)
        must(started)

        def child():
            # The queued task belongs to the parent, which runs it.
            f = ex.submit(pow, 2, 5)
            return "%r" % (f.result(5),)

        code, text = fork_child(child)
        assert (code, text) == (0, "32")
        go.set()
        assert f1.result(WAIT) == "parent"
        assert queued.result(WAIT) == 128
    finally:
        go.set()
        ex.shutdown()


# ---- class relations --------------------------------------------------------

def test_isinstance_of_stdlib_classes(cf):
    ex = cf.ThreadPoolExecutor(1)
    try:
        assert isinstance(ex, concurrent.futures.ThreadPoolExecutor)
        assert isinstance(ex, concurrent.futures.Executor)
        assert isinstance(ex, cf.Executor)
    finally:
        ex.shutdown()
    assert issubclass(cf.ThreadPoolExecutor, cf.Executor)
    assert issubclass(cf.ThreadPoolExecutor, concurrent.futures.Executor)
    assert issubclass(cf.ThreadPoolExecutor,
                      concurrent.futures.ThreadPoolExecutor)
    assert cf.thread.ThreadPoolExecutor is cf.ThreadPoolExecutor


def test_subclass_of_thread_pool(mod):
    class Pool(mod.ThreadPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.submitted = 0

        def submit(self, fn, *args, **kwargs):
            self.submitted += 1
            return super().submit(fn, *args, **kwargs)

    with Pool(2, thread_name_prefix=unique_prefix("sub")) as ex:
        assert ex.submit(pow, 2, 3).result(WAIT) == 8
        assert list(ex.map(pow, [2, 3], [2, 2])) == [4, 9]
        assert ex.submitted == 3
