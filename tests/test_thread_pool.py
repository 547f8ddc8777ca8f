"""ThreadPoolExecutor: constructor, submit, worker reuse, shutdown,
initializer, an executor dropped without shutdown, interpreter exit, fork --
what is particular to the thread pool.  What every executor does (argument
checks, the shutdown modes, the context manager, a failing initializer,
concurrent submitters, map) is the executor contract, in
test_executor_contract.py.

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
import threading
import time
import warnings
import weakref

import pytest

from futures_helpers import (TIMEOUT, Blocker, agreed, agreed_once, default_max_workers,
                             join_all, must_wait, pool_threads, run_child,
                             unique_prefix, wait_until)

REF = concurrent.futures          # the oracle
BROKEN_MSG = ("A thread initializer failed, the thread pool is not usable "
              "anymore")

# ---- helpers ----------------------------------------------------------------

def thread_module(mod):
    return importlib.import_module(mod.__name__ + ".thread")


def settle_idle(ex):
    """The stdlib's worker marks itself idle (``_idle_semaphore.release()``)
    a few bytecodes *after* it completed the future, so a submit made right
    after ``result()`` may, rarely, start a second thread.  Wait for the
    oracle to be idle; cfutures parks its worker before it can lose the GIL,
    so there is nothing to wait for."""
    sem = getattr(ex, "_idle_semaphore", None)
    if sem is not None and type(ex) is REF.ThreadPoolExecutor:
        wait_until(lambda: sem._value > 0, what="stdlib worker idle")


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

    assert agreed(lambda m: default_max_workers(m.ThreadPoolExecutor),
                  mod) == min(32, (cpus or 1) + 4)


@pytest.mark.parametrize("max_workers", [2.0, 2.5, float("inf"), 2 ** 63,
                                         10 ** 30])
def test_max_workers_any_number_as_stdlib(mod, max_workers):
    # The stdlib only compares max_workers with 0 and with the thread count:
    # floats and integers beyond Py_ssize_t work.
    def scenario(m):
        ex = m.ThreadPoolExecutor(max_workers)
        try:
            return (ex._max_workers, ex.submit(pow, 2, 3).result(TIMEOUT))
        finally:
            ex.shutdown()

    assert agreed(scenario, mod) == (max_workers, 8)


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
        return run_child(code % (m.__name__, initargs))

    assert agreed(scenario, mod) == (0, "4 [(1, 'a')]\n", "")


def test_thread_names_with_prefix(mod):
    prefix = unique_prefix("named")
    barrier = threading.Barrier(3, timeout=TIMEOUT)

    def task():
        barrier.wait()
        return threading.current_thread().name

    with mod.ThreadPoolExecutor(3, thread_name_prefix=prefix) as ex:
        names = sorted(f.result(TIMEOUT) for f in
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
        name = ex1.submit(lambda: threading.current_thread().name).result(TIMEOUT)
        assert name == ex1._thread_name_prefix + "_0"
    finally:
        ex1.shutdown()
        ex2.shutdown()


@pytest.mark.parametrize("prefix", ["", None])
def test_empty_prefix_means_default(mod, prefix):
    ex = mod.ThreadPoolExecutor(1, thread_name_prefix=prefix)
    try:
        name = ex.submit(lambda: threading.current_thread().name).result(TIMEOUT)
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
    assert run_child(code % mod.__name__) == (0, "123\n123_0\n", "")


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
        t, ident = ex.submit(first).result(TIMEOUT)
        assert isinstance(t, threading.Thread)
        assert t.ident == ident
        assert t in threading.enumerate()
        assert t.is_alive()
        assert t.name == prefix + "_0"
        assert set(ex._threads) == {t}
        assert t.daemon is False            # non-daemon, as since 3.9
        assert pool_threads(prefix) == [t]
        # threading.local is per worker thread and persists between tasks.
        value, t2 = ex.submit(second).result(TIMEOUT)
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
        assert ex.submit(echo).result(TIMEOUT) == ((), {})
        assert ex.submit(echo, 1, 2).result(TIMEOUT) == ((1, 2), {})
        assert ex.submit(echo, 1, a=2).result(TIMEOUT) == ((1,), {"a": 2})
        # 'fn' and 'self' are ordinary keyword arguments of the call.
        assert ex.submit(echo, fn=3).result(TIMEOUT) == ((), {"fn": 3})
        assert ex.submit(echo, 0, self=1, fn=2).result(TIMEOUT) == (
            (0,), {"self": 1, "fn": 2})
        big = tuple(range(50))
        assert ex.submit(echo, *big, **{"k%d" % i: i for i in range(20)}
                         ).result(TIMEOUT) == (big, {"k%d" % i: i
                                                  for i in range(20)})


class MyBaseError(BaseException):
    pass


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt,
                                      SystemExit, MyBaseError])
def test_exception_in_task_lands_on_future(mod, exc_type):
    # Any exception, BaseExceptions too: the future holds it, and the
    # worker survives.
    err = exc_type("stop")
    with mod.ThreadPoolExecutor(1) as ex:
        f = ex.submit(raiser, err)
        assert f.exception(TIMEOUT) is err
        with pytest.raises(exc_type) as info:
            f.result(TIMEOUT)
        assert info.value is err
        assert f._state == "FINISHED"
        settle_idle(ex)
        assert ex.submit(pow, 3, 2).result(TIMEOUT) == 9
        assert len(ex._threads) == 1


# ---- worker reuse -----------------------------------------------------------

def test_idle_worker_reused(mod):
    with mod.ThreadPoolExecutor(8) as ex:
        idents = set()
        for _ in range(20):
            idents.add(ex.submit(threading.get_ident).result(TIMEOUT))
            settle_idle(ex)
        assert len(idents) == 1
        assert len(ex._threads) == 1


def test_idle_workers_reused_after_burst(mod):
    barrier = threading.Barrier(4, timeout=TIMEOUT)
    with mod.ThreadPoolExecutor(8) as ex:
        for _ in range(3):
            for f in [ex.submit(barrier.wait) for _ in range(4)]:
                f.result(TIMEOUT)
            if type(ex) is REF.ThreadPoolExecutor:
                wait_until(lambda: ex._idle_semaphore._value >= 4,
                           what="stdlib workers idle")
            # Four idle workers: the next burst of four starts none.
            assert len(ex._threads) == 4


def test_burst_uses_up_to_max_workers(mod):
    n = 4
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    def meet():
        barrier.wait()      # only passes if n workers run at once
        return threading.get_ident()

    go = threading.Event()

    def blocked():
        must_wait(go)
        return threading.get_ident()

    with mod.ThreadPoolExecutor(n) as ex:
        idents = {f.result(TIMEOUT) for f in [ex.submit(meet) for _ in range(n)]}
        assert len(idents) == n
        assert len(ex._threads) == n
        fs = [ex.submit(blocked) for _ in range(3 * n)]
        assert len(ex._threads) == n        # never more than max_workers
        go.set()
        more = {f.result(TIMEOUT) for f in fs}
        assert more <= idents
        assert len(ex._threads) == n


# ---- shutdown ---------------------------------------------------------------
# (the shutdown modes, submit after shutdown and the context manager are in
# the executor contract, test_executor_contract.py)

def test_shutdown_attribute(mod):
    ex = mod.ThreadPoolExecutor(2)
    assert ex._shutdown is False
    ex.shutdown(wait=False)
    assert ex._shutdown is True
    assert len(ex._threads) == 0        # shutdown started no worker
    ex.shutdown()
    ex.shutdown(wait=True, cancel_futures=True)
    assert ex._shutdown is True


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
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    def task(meet):
        if meet:
            barrier.wait()
        return getattr(state, "ready", None), threading.current_thread()

    ex = mod.ThreadPoolExecutor(n, initializer=init, initargs=(1, "x"))
    try:
        first = [f.result(TIMEOUT) for f in
                 [ex.submit(task, True) for _ in range(n)]]
        later = [f.result(TIMEOUT) for f in
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
        must_wait(gate)
        raise exc_type("init failed")

    ran = []
    ex = mod.ThreadPoolExecutor(2, initializer=init)
    try:
        fs = [ex.submit(ran.append, i) for i in range(3)]
        gate.set()
        for f in fs:
            exc = f.exception(TIMEOUT)
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

def collected(ref, task):
    """Whether the executor `ref` refers to, dropped by the caller, is
    collected (gc) while its worker runs the Blocker `task`; lets `task` go
    in any case."""
    gc.collect()
    try:
        return ref() is None
    finally:
        task.release()


def test_dropped_executor_lets_workers_exit(mod):
    prefix = unique_prefix("drop")
    task = Blocker()
    ex = mod.ThreadPoolExecutor(2, thread_name_prefix=prefix)
    f1 = ex.submit(task)
    task.wait_started()
    f2 = ex.submit(pow, 2, 6)
    assert f2.result(TIMEOUT) == 64
    settle_idle(ex)
    workers = pool_threads(prefix)
    assert len(workers) in (1, 2)
    ref = weakref.ref(ex)
    del ex
    assert collected(ref, task)
    assert f1.result(TIMEOUT) == "done"
    join_all(workers)


def test_dropped_executor_runs_queued_tasks(mod):
    prefix = unique_prefix("dropq")
    task = Blocker("first")
    ex = mod.ThreadPoolExecutor(1, thread_name_prefix=prefix)
    f1 = ex.submit(task)
    fs = [ex.submit(pow, 2, i) for i in range(5)]
    task.wait_started()
    workers = pool_threads(prefix)
    ref = weakref.ref(ex)
    del ex
    assert collected(ref, task)
    assert f1.result(TIMEOUT) == "first"
    assert [f.result(TIMEOUT) for f in fs] == [1, 2, 4, 8, 16]
    join_all(workers)


def test_dropped_idle_executor(mod):
    prefix = unique_prefix("dropi")
    barrier = threading.Barrier(3, timeout=TIMEOUT)
    ex = mod.ThreadPoolExecutor(3, thread_name_prefix=prefix)
    for f in [ex.submit(barrier.wait) for _ in range(3)]:
        f.result(TIMEOUT)
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
        rc, out, err = run_child(EXIT_SCRIPT % m.__name__)
        return rc, sorted(out.splitlines()), err

    rc, lines, err = agreed_once(scenario, mod)
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
        rc, out, err = run_child(code % m.__name__)
        return rc, out.splitlines(), err

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

    assert agreed_once(lambda m: run_child(code % m.__name__), mod) == (
        0, "released True\n", "")


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
    deadline = time.monotonic() + TIMEOUT
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


def fork_with_busy_pool(ex, child):
    """With the one worker of `ex` blocked and pow(2, 7) queued, fork and
    run child() in the child (fork_child), then let the worker go.  Returns
    (the child's exit code and text, the blocked task's and the queued
    task's results)."""
    task = Blocker("parent")
    try:
        running = ex.submit(task)
        queued = ex.submit(pow, 2, 7)
        task.wait_started()
        forked = fork_child(child)
    finally:
        task.release()
    return forked, running.result(TIMEOUT), queued.result(TIMEOUT)


@needs_fork
def test_fork_parent_pool_keeps_working(mod):
    # Both modules: the parent's pool is unaffected by a fork, and a pool
    # made in the child works.
    def child():
        with mod.ThreadPoolExecutor(2) as fresh:
            return "%r" % (fresh.submit(pow, 3, 3).result(5),)

    with mod.ThreadPoolExecutor(1) as ex:
        assert fork_with_busy_pool(ex, child) == ((0, "27"), "parent", 128)
        assert ex.submit(pow, 2, 2).result(TIMEOUT) == 4


# The stdlib's pool is not usable in a forked child when it has an idle
# worker: its idle semaphore says a worker is free, none exists in the
# child, and the task waits forever.  cfutures promises (DESIGN §4) that the
# inherited pool works in the child; these tests are cfutures-only.

@needs_fork
def test_fork_child_can_use_inherited_idle_pool(cf):
    with cf.ThreadPoolExecutor(2) as ex:
        assert ex.submit(pow, 2, 3).result(TIMEOUT) == 8

        def child():
            f = ex.submit(pow, 2, 5)
            r1 = f.result(5)
            r2 = [g.result(5) for g in [ex.submit(pow, 3, i)
                                        for i in range(4)]]
            ex.shutdown(wait=True)
            return "%r %r" % (r1, r2)

        assert fork_child(child) == (0, "32 [1, 3, 9, 27]")
        assert ex.submit(pow, 2, 4).result(TIMEOUT) == 16


@needs_fork
def test_fork_child_with_busy_pool(cf):
    with cf.ThreadPoolExecutor(1) as ex:
        def child():
            # The queued task belongs to the parent, which runs it.
            f = ex.submit(pow, 2, 5)
            return "%r" % (f.result(5),)

        assert fork_with_busy_pool(ex, child) == ((0, "32"), "parent", 128)


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
        assert ex.submit(pow, 2, 3).result(TIMEOUT) == 8
        assert list(ex.map(pow, [2, 3], [2, 2])) == [4, 9]
        assert ex.submitted == 3
