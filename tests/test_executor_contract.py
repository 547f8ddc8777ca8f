"""The executor contract: what every executor does, written once and bound
to ThreadPoolExecutor and to ProcessPoolExecutor under each start method,
the way CPython's own suite mixes ExecutorTest with ThreadPoolMixin,
ProcessPoolForkMixin, ... (Lib/test/test_concurrent_futures).

ExecutorContract holds the behaviours: argument validation, submit after
shutdown, the shutdown modes (wait, no wait, cancel_futures, twice, from a
done-callback), the context manager, a failing initializer, concurrent
submitters and map.  A mixin says how to make a pool of its kind and what
differs between kinds (which class a broken pool raises, how many queued
calls a pool may have handed to a worker already, whether map chunks).
Every test runs on both modules (the ``mod`` fixture) and compares the
outcome with the stdlib's (``agreed_once``), then with the value the stdlib
is known to give.

Tasks are the functions of ``process_tasks`` (spawned workers import them),
for threads as well; tests and tasks meet through files (``Sync``).  Tests
that leave their pool usable share one per class and module (``shared``),
started before the test (so its threads are not the test's) and shut down
after the class; the fork class makes a fresh pool every time, as a fork
with the shared pools' threads running would warn (3.12+), and forking is
cheap.  Pool-specific behaviour stays in test_thread_pool.py and
test_process_pool.py.
"""

import concurrent.futures
import concurrent.futures.process
import concurrent.futures.thread
import contextlib
import importlib
import os
import tempfile
import sys
import threading
import time

import pytest

import process_tasks as tasks
from futures_helpers import (BROKEN_FUTURE, BROKEN_POOL, SHUTDOWN, TIMEOUT, agreed_once,
                             exc_view, must_wait, outcome, start, wait_until)
from process_tasks import Sync

REF = concurrent.futures
RemoteTraceback = concurrent.futures.process._RemoteTraceback
NOT_POSITIVE = "max_workers must be greater than 0"
NOT_CALLABLE = "initializer must be a callable"

pytestmark = pytest.mark.timeout(60)


def started_tags(sync):
    """The tags of the block() calls that started, sorted."""
    return sorted(n.partition(".")[0] for n in os.listdir(sync.dir)
                  if ".started." in n)


def submit_view(ex, fn, *args):
    """What became of one submit: its future's outcome, or what it raised
    (a pool may already know that it is broken)."""
    try:
        f = ex.submit(fn, *args)
    except Exception as exc:        # noqa: B902
        return ("submit raised", type(exc), str(exc))
    return ("future", exc_view(f.exception(timeout=TIMEOUT)))


def drain(iterator):
    """Items until the first exception: (items, exception summary)."""
    items = []
    try:
        for item in iterator:
            items.append(item)
    except Exception as exc:        # noqa: B902
        return items, exc_view(exc)
    return items, None


class ThreadWatch(object):
    """Remembers every worker thread a pool showed in ``_threads``."""

    def __init__(self, ex):
        self.ex = ex
        self.seen = []

    def update(self):
        self.seen += [t for t in self.ex._threads if t not in self.seen]
        return self

    @property
    def workers(self):
        return list(self.update().seen)


@pytest.fixture(scope="class")
def shared(request):
    """{module: executor} for the tests of a class that leave their pool
    usable: one pool per module, made with all its workers started (so
    that no test sees threads of its own appear), shut down after the
    class.  None for a kind whose pools are made fresh (SHARED False)."""
    kind = request.cls()
    if not kind.SHARED:
        yield None
        return
    with contextlib.ExitStack() as stack:
        pools = {}
        for m in (REF, importlib.import_module("cfutures")):
            ex, _ = stack.enter_context(kind.pool(m))
            s = Sync(stack.enter_context(tempfile.TemporaryDirectory()))
            tags = ["w%d" % i for i in range(kind.MAX_WORKERS)]
            fs = [ex.submit(tasks.block, s.dir, tag) for tag in tags]
            s.started_some(tags, len(tags))
            s.release()
            assert [f.result(timeout=TIMEOUT) for f in fs] == tags
            pools[m] = ex
        yield pools


class ExecutorContract(object):
    """The behaviours; a mixin below makes the pools."""

    MAX_WORKERS = 2
    SHARED = True

    # -- what a mixin provides ------------------------------------------------
    # BROKEN: (the class a broken pool raises, the message on the futures
    # it fails, the message submit() raises); AHEAD: how many queued calls
    # the pool may have handed to its workers already (those can no longer
    # be cancelled); CANCELS_AT_ONCE: whether shutdown(cancel_futures=True)
    # has cancelled them when it returns (or while it waits);
    # CANCELLED_STATE: their _state afterwards (None: not compared); CHUNKS:
    # whether map() honours chunksize; SUBMITS: calls per thread in
    # test_concurrent_submitters.

    def make(self, m, max_workers, **kwargs):
        raise NotImplementedError

    def pool(self, m, sync=None, max_workers=MAX_WORKERS, **kwargs):
        """Context manager: (executor, watch), always cleaned up."""
        raise NotImplementedError

    def exit_codes(self, watch):
        """One per worker the pool had: 0 for one that ended normally."""
        raise NotImplementedError

    def still_running(self, watch):
        """The workers still running after a bounded wait."""
        raise NotImplementedError

    def cancelled_state(self, f):
        return f._state if self.CANCELLED_STATE else None

    def announced(self, f):
        """Return once the pool shows `f`, whose call has started, as
        RUNNING.  A pool marks it when it hands the call over; a cluster
        learns of the start a moment after the worker began (the
        ClusterExecutor mixin waits for it)."""

    def shutdown_meanwhile(self, ex, wait, **kwargs):
        """Call ex.shutdown(wait, **kwargs) in a helper thread while a call
        is blocked: (the helper, whether shutdown returned).  With wait it
        must still be waiting after 0.2 s; without, return at once."""
        shut = start(ex.shutdown, wait, **kwargs)
        shut.thread.join(0.2 if wait else TIMEOUT)
        return shut, not shut.thread.is_alive()

    @contextlib.contextmanager
    def usable_pool(self, m, shared):
        """The shared pool of module *m*, or a fresh one."""
        if shared is not None:
            yield shared[m]
        else:
            with self.pool(m) as (ex, _):
                yield ex

    # -- argument validation --------------------------------------------------

    @pytest.mark.parametrize("max_workers, expected", [
        (0, (ValueError, NOT_POSITIVE)),
        (-1, (ValueError, NOT_POSITIVE)),
        (-100, (ValueError, NOT_POSITIVE)),
        (-0.5, (ValueError, NOT_POSITIVE)),
        ("2", (TypeError,
               "'<=' not supported between instances of 'str' and 'int'")),
    ])
    def test_max_workers_rejected(self, mod, max_workers, expected):
        def scenario(m):
            return [outcome(self.make, m, max_workers),
                    outcome(lambda: self.make(m, max_workers=max_workers))]

        assert agreed_once(scenario, mod) == [("raise",) + expected] * 2

    def test_initializer_must_be_callable(self, mod):
        def scenario(m):
            return [outcome(self.make, m, 1, initializer=5),
                    outcome(self.make, m, 1, initializer="f"),
                    # max_workers is checked first
                    outcome(self.make, m, 0, initializer=5)]

        assert agreed_once(scenario, mod) == [
            ("raise", TypeError, NOT_CALLABLE),
            ("raise", TypeError, NOT_CALLABLE),
            ("raise", ValueError, NOT_POSITIVE)]

    def test_submit_and_shutdown_signatures(self, mod):
        def scenario(m):
            with self.pool(m, max_workers=1) as (ex, _):
                # (the messages name the executor's class, as Python does)
                own = type(ex).__name__
                return [tuple(str(x).replace(own, "EXECUTOR") for x in o)
                        for o in (outcome(ex.submit), outcome(ex.submit, fn=len),
                                  # cancel_futures is keyword-only
                                  outcome(ex.shutdown, True, True)[:2],
                                  outcome(ex.shutdown, wait=False,
                                          cancel_futures=False))]

        got = agreed_once(scenario, mod)
        assert [o[:2] for o in got] == [
            ("raise", str(TypeError)), ("raise", str(TypeError)),
            ("raise", str(TypeError)), ("return", "None")]

    # -- submit -----------------------------------------------------------------

    def test_futures_are_futures_of_the_module(self, mod, shared):
        with self.usable_pool(mod, shared) as ex:
            f = ex.submit(tasks.square, 3)
            assert isinstance(f, REF.Future)
            assert isinstance(f, mod.Future)
            assert f.result(timeout=TIMEOUT) == 9

    def test_concurrent_submitters(self, mod, shared):
        # Several threads submit at once: every future completes, with its
        # own result, and the pool never runs more than max_workers.
        n_threads, per_thread = 4, self.SUBMITS

        def scenario(m):
            with self.usable_pool(m, shared) as ex:
                # started before the threads: a fork pool then forks
                # without other threads running
                assert ex.submit(tasks.square, 2).result(
                    timeout=TIMEOUT) == 4
                barrier = threading.Barrier(n_threads, timeout=TIMEOUT)

                def submitter(k):
                    barrier.wait()
                    fs = [ex.submit(tasks.add, k, i)
                          for i in range(per_thread)]
                    return [f.result(timeout=TIMEOUT) for f in fs]

                helpers = [start(submitter, k) for k in range(n_threads)]
                got = [h.join() for h in helpers]
                return ([g == [k + i for i in range(per_thread)]
                         for k, g in enumerate(got)],
                        self.worker_count(ex) <= self.MAX_WORKERS)

        assert agreed_once(scenario, mod) == ([True] * n_threads, True)

    def test_cancelled_queued_futures_never_run(self, mod, sync):
        def scenario(m):
            s = sync.sub(m.__name__)
            with self.pool(m, sync=s, max_workers=1) as (ex, _):
                first = ex.submit(tasks.block, s.dir, "first")
                s.started("first")
                queued = [ex.submit(tasks.block, s.dir, "q%d" % i)
                          for i in range(6)]
                cancelled = [f.cancel() for f in queued]
                s.release()
                ran = [f.result(timeout=TIMEOUT) for f in queued
                       if not f.cancelled()]
                ex.shutdown(wait=True)
            started = started_tags(s)
            expected = ["first"] + ["q%d" % i
                                    for i, c in enumerate(cancelled) if not c]
            taken = cancelled.count(False)
            return (cancelled == [False] * taken + [True] * (6 - taken),
                    taken <= self.AHEAD, first.result(timeout=0),
                    started == expected, ran == expected[1:],
                    {f._state for f in queued if f.cancelled()},
                    outcome(queued[-1].result, 0)[:2])

        assert agreed_once(scenario, mod) == (
            True, True, "first", True, True,
            # the pool took the cancelled calls and notified them
            {"CANCELLED_AND_NOTIFIED"}, ("raise", REF.CancelledError))

    # -- shutdown ---------------------------------------------------------------

    @pytest.mark.parametrize("wait", [True, False])
    @pytest.mark.parametrize("used", [True, False])
    def test_submit_after_shutdown(self, mod, wait, used):
        def scenario(m):
            with self.pool(m, max_workers=1) as (ex, _):
                if used:
                    assert ex.submit(tasks.square, 2).result(
                        timeout=TIMEOUT) == 4
                ex.shutdown(wait=wait)
                return (outcome(ex.submit, tasks.square, 3),
                        # shut down again, every way: nothing happens
                        outcome(ex.shutdown), outcome(ex.shutdown, wait=False),
                        outcome(ex.shutdown, wait=True, cancel_futures=True),
                        outcome(ex.submit, tasks.square, 3))

        refused = ("raise", RuntimeError, SHUTDOWN)
        assert agreed_once(scenario, mod) == (
            refused, ("return", None), ("return", None), ("return", None),
            refused)

    @pytest.mark.parametrize("wait", [True, False])
    def test_shutdown_lets_running_and_queued_work_finish(self, mod, sync,
                                                          wait):
        # shutdown(wait=True) returns once the running and the queued calls
        # are done and the workers ended; shutdown(wait=False) returns at
        # once, and the calls still run.
        def scenario(m):
            s = sync.sub(m.__name__)
            with self.pool(m, sync=s, max_workers=1) as (ex, watch):
                running = ex.submit(tasks.block, s.dir, "run")
                s.started("run")
                self.announced(running)
                watch.update()
                queued = [ex.submit(tasks.square, i) for i in range(3)]
                shut, returned = self.shutdown_meanwhile(ex, wait)
                during = (running.running(), [f.done() for f in queued],
                          outcome(ex.submit, tasks.square, 1))
                s.release()
                shut.join()
                results = (running.result(timeout=TIMEOUT),
                           [f.result(timeout=TIMEOUT) for f in queued])
                left = [] if wait else self.still_running(watch)
                ends = self.exit_codes(watch) if wait else None
            if not wait:
                ends = self.exit_codes(watch)
            return returned, during, results, left, ends

        assert agreed_once(scenario, mod) == (
            not wait, (True, [False] * 3, ("raise", RuntimeError, SHUTDOWN)),
            ("run", [0, 1, 4]), [], [0])

    @pytest.mark.parametrize("wait", [True, False])
    def test_shutdown_cancel_futures(self, mod, sync, wait):
        def scenario(m):
            s = sync.sub(m.__name__)
            with self.pool(m, sync=s, max_workers=1) as (ex, _):
                running = ex.submit(tasks.block, s.dir, "run")
                s.started("run")
                self.announced(running)
                tags = ["q%d" % i for i in range(8)]
                queued = [ex.submit(tasks.block, s.dir, tag) for tag in tags]
                shut, returned = self.shutdown_meanwhile(
                    ex, wait, cancel_futures=True)
                during = [f.cancelled() for f in queued]
                s.release()
                shut.join()
                # every queued future ends: cancelled, or run (not wait():
                # a future cancelled and not notified is not done for it)
                wait_until(lambda: all(f.done() for f in queued),
                           what="every queued future done")
                final = [f.cancelled() for f in queued]
                taken = final.count(False)
                started = [t for t in started_tags(s) if t != "run"]
                return (returned, running.result(timeout=TIMEOUT),
                        final == [False] * taken + [True] * (8 - taken),
                        taken <= self.AHEAD,
                        # the calls not cancelled ran, the others never did
                        [f.result(timeout=0) for f in queued[:taken]]
                        == tags[:taken] == started,
                        {self.cancelled_state(f) for f in queued[taken:]},
                        during == final if self.CANCELS_AT_ONCE else None)

        assert agreed_once(scenario, mod) == (
            not wait, "run", True, True, True, {self.CANCELLED_STATE},
            True if self.CANCELS_AT_ONCE else None)

    @pytest.mark.parametrize("wait", [True, False])
    def test_shutdown_from_a_done_callback(self, mod, sync, wait):
        # The callback runs in a thread of the pool (a worker thread, the
        # process pool's manager thread): shutdown(wait=True) there cannot
        # join that thread, and says so; shutdown(wait=False) works.
        def scenario(m):
            s = sync.sub(m.__name__)
            seen = []
            called = threading.Event()

            with self.pool(m, sync=s, max_workers=1) as (ex, watch):
                def callback(f):
                    seen.append(outcome(ex.shutdown, wait=wait))
                    seen.append(outcome(ex.submit, tasks.square, 1))
                    called.set()

                f = ex.submit(tasks.block, s.dir, "run")
                s.started("run")
                watch.update()
                f.add_done_callback(callback)
                s.release()
                must_wait(called)
                ex.shutdown(wait=True)
                result = f.result(timeout=0)
            # (after a shutdown(wait=False), the stdlib's process pool does
            # not wait in shutdown(wait=True): the workers end meanwhile)
            return seen, result, self.exit_codes(watch)

        refused = ("raise", RuntimeError, SHUTDOWN)
        assert agreed_once(scenario, mod) == (
            [("return", None) if not wait else
             ("raise", RuntimeError, "cannot join current thread"), refused],
            "run", [0])

    # -- context manager --------------------------------------------------------

    def test_context_manager(self, mod):
        def scenario(m):
            with self.pool(m) as (pool, watch):
                with pool as ex:
                    entered = ex is pool
                    fs = [ex.submit(tasks.square, i) for i in range(6)]
                    watch.update()
                # __exit__ waited for all of it
                done = [f.done() for f in fs]
                # (spawn and forkserver workers start on demand: 1 or 2)
                ends = set(self.exit_codes(watch))
                return (entered, done, [f.result(timeout=0) for f in fs],
                        ends, outcome(ex.submit, tasks.square, 1))

        assert agreed_once(scenario, mod) == (
            True, [True] * 6, [i * i for i in range(6)], {0},
            ("raise", RuntimeError, SHUTDOWN))

    def test_context_manager_exit_on_error(self, mod):
        def scenario(m):
            with self.pool(m, max_workers=1) as (pool, _):
                fs = []
                try:
                    with pool as ex:
                        fs.append(ex.submit(tasks.square, 5))
                        raise KeyError("in the with block")
                except KeyError as exc:
                    return (str(exc), [f.result(timeout=0) for f in fs],
                            outcome(ex.submit, tasks.square, 1))
                return "not raised"

        assert agreed_once(scenario, mod) == (
            "'in the with block'", [25], ("raise", RuntimeError, SHUTDOWN))

    # -- initializer ------------------------------------------------------------

    def test_initializer_runs_in_each_worker(self, mod):
        def scenario(m):
            with self.pool(m, initializer=tasks.set_global,
                           initargs=("ready",)) as (ex, watch):
                got = [f.result(timeout=TIMEOUT) for f in
                       [ex.submit(tasks.get_global) for _ in range(6)]]
                watch.update()
                ex.shutdown(wait=True)
                return got, self.exit_codes(watch)

        got, ends = agreed_once(scenario, mod)
        assert got == ["ready"] * 6
        assert ends and set(ends) == {0}

    def test_failing_initializer_breaks_the_pool(self, mod):
        def scenario(m):
            with self.pool(m, initializer=tasks.failing_initializer) as (
                    ex, watch):
                first = ex.submit(tasks.square, 1)
                watch.update()
                error = exc_view(first.exception(timeout=TIMEOUT))
                # how fast the pool learns it is broken is a race, in the
                # stdlib as well: a submit may still return a future, which
                # then fails the same way
                more = set(submit_view(ex, tasks.square, i) for i in range(3))
                later = outcome(ex.submit, tasks.square, 1)
                ex.shutdown(wait=True)
                # broken wins over shut down
                after = outcome(ex.submit, tasks.square, 1)
                return error, more, later, after, self.still_running(watch)

        error, more, later, after, left = agreed_once(scenario, mod)
        broken, on_future, on_submit = self.BROKEN
        assert error == (broken, on_future, type(None))
        assert more <= {("future", error),
                        ("submit raised", broken, on_submit)}
        assert later == after == ("raise", broken, on_submit)
        assert left == []

    # -- map --------------------------------------------------------------------

    def test_map(self, mod, shared):
        def scenario(m):
            with self.usable_pool(m, shared) as ex:
                plain = list(ex.map(tasks.square, range(12)))
                chunked = list(ex.map(tasks.add, range(11), range(100, 111),
                                      chunksize=3))
                errors = [drain(ex.map(tasks.tenfold_positive,
                                       [1, 2, 3, -4, 5, -6, 7], chunksize=c))
                          for c in (1, 2, 5)]
                bad = outcome(lambda: list(ex.map(tasks.square, [1],
                                                  chunksize=0)))
                empty = [list(ex.map(tasks.square, [], chunksize=4)),
                         list(ex.map(tasks.add, [1, 2], []))]
                return plain, chunked, errors, bad, empty

        plain, chunked, errors, bad, empty = agreed_once(scenario, mod)
        assert plain == [i * i for i in range(12)]
        assert chunked == [100 + 2 * i for i in range(11)]
        failure = (ValueError, "negative: -4",
                   RemoteTraceback if self.CHUNKS else type(None))
        # An error fails its whole chunk: the items before it in that chunk
        # are not yielded (no chunks: each item is one).
        assert errors == [([10, 20, 30][:3 // c * c], failure)
                          for c in ((1, 2, 5) if self.CHUNKS else (1, 1, 1))]
        assert bad == (("raise", ValueError, "chunksize must be >= 1.")
                       if self.CHUNKS else ("return", [1]))
        assert empty == [[], []]

    @pytest.mark.parametrize("chunksize", [1, 2])
    def test_map_timeout(self, mod, shared, sync, chunksize):
        def scenario(m):
            s = sync.sub(m.__name__)
            with self.usable_pool(m, shared) as ex:
                begin = time.monotonic()
                it = ex.map(tasks.block, [s.dir] * 2, ["a", "b"],
                            timeout=0.3, chunksize=chunksize)
                got = outcome(next, it)
                waited = time.monotonic() - begin
                s.release()
                after = ex.submit(tasks.square, 5).result(timeout=TIMEOUT)
                return got, 0.25 <= waited < TIMEOUT, after

        assert agreed_once(scenario, mod) == (
            ("raise", REF.TimeoutError, ""), True, 25)


# ---- the kinds ----------------------------------------------------------------

class ThreadPoolMixin(object):
    BROKEN = (concurrent.futures.thread.BrokenThreadPool,) + (
        "A thread initializer failed, the thread pool is not usable "
        "anymore",) * 2
    AHEAD = 0
    CANCELS_AT_ONCE = True
    CANCELLED_STATE = "CANCELLED"
    CHUNKS = False
    SUBMITS = 5000

    def make(self, m, max_workers=None, **kwargs):
        return m.ThreadPoolExecutor(max_workers, **kwargs)

    def pool(self, m, sync=None, max_workers=2, **kwargs):
        ex = self.make(m, max_workers, **kwargs)
        return tasks.cleaned_up(ex, ThreadWatch(ex), sync)

    def worker_count(self, ex):
        return len(ex._threads)

    def exit_codes(self, watch):
        return [None if t.is_alive() else 0 for t in watch.workers]

    def still_running(self, watch):
        deadline = time.monotonic() + TIMEOUT
        for t in watch.workers:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t for t in watch.workers if t.is_alive()]


class ProcessPoolMixin(object):
    METHOD = None
    BROKEN = (concurrent.futures.process.BrokenProcessPool, BROKEN_FUTURE,
              BROKEN_POOL)
    # the stdlib moves up to max_workers + 1 calls to its call queue ahead
    # of the workers, and one more may be on its way
    AHEAD = 3
    # shutdown(cancel_futures=True) leaves the cancelling to the stdlib's
    # manager thread
    CANCELS_AT_ONCE = False
    # The futures that shutdown(cancel_futures=True) cancelled are left
    # CANCELLED by the stdlib, and notified (CANCELLED_AND_NOTIFIED) by
    # cfutures' process pool: a difference in the private _state alone (the
    # public view, cancelled() and done(), is the same), not compared.
    CANCELLED_STATE = None
    CHUNKS = True
    SUBMITS = 100

    def make(self, m, max_workers=None, **kwargs):
        return m.ProcessPoolExecutor(
            max_workers, mp_context=tasks.context(self.METHOD), **kwargs)

    def pool(self, m, sync=None, max_workers=2, **kwargs):
        return tasks.pool(m, self.METHOD, sync, max_workers, **kwargs)

    def worker_count(self, ex):
        return len(tasks.Watch(ex).processes)

    def exit_codes(self, watch):
        return [p.exitcode for p in watch.processes]

    def still_running(self, watch):
        return tasks.wait_dead(watch.processes)


needs_linux = pytest.mark.skipif(sys.platform != "linux",
                                 reason="Linux /proc, start methods")


class TestThreadPool(ThreadPoolMixin, ExecutorContract):
    pass


@needs_linux
class TestProcessPoolFork(ProcessPoolMixin, ExecutorContract):
    METHOD = "fork"
    SHARED = False


@needs_linux
class TestProcessPoolForkserver(ProcessPoolMixin, ExecutorContract):
    METHOD = "forkserver"


@needs_linux
class TestProcessPoolSpawn(ProcessPoolMixin, ExecutorContract):
    METHOD = "spawn"
