"""Executor.map(..., ordered=False): results as the calls finish.

The stdlib has no such option.  Its half of each test runs `model_map`,
the documented semantics written as a generator on the stdlib's own parts
(submit, add_done_callback, a queue), on the stdlib's executor; the
cfutures half runs the native ex.map(..., ordered=False); the two outcomes
must agree (``agreed_once``: the stdlib's outcome is computed once, by
the stdlib half), and each test then states the outcome.  Being a
generator, the model also stands for the guarantees cfutures' iterator
gives as the stdlib's generators do: a second next() or close() while one
runs -- from another thread, the input iterable, a done-callback or a
__del__ -- raises ValueError('generator already executing').

Covered: completion order, several iterables, laziness and refill with
buffersize (at most `buffersize` calls submitted and not yet yielded), the
timeout counted from the call, results already done after the deadline,
exceptions in completion order, cancellation on close / collection /
error, futures cancelled from outside, user executors (cfutures, stdlib and
duck-typed futures), re-entry, ordered=True being exactly the stdlib's map,
how `ordered` is read; the process pool under fork, forkserver and spawn
(chunks, buffersize, errors, timeout, close, fds).  Waits are on events and
files with deadlines, never sleeps.
"""

import concurrent.futures
import gc
import itertools
import logging
import os
import queue
import re
import sys
import threading
import time
import weakref

import pytest

import process_tasks
import unordered_tasks
from futures_helpers import (REENTRY_ERROR, Counted, DuckFuture, agreed_once, next_in_thread,
                             outcome, reentering_input)
from process_tasks import METHODS, Sync, open_fds, pool, warm_up

REF = concurrent.futures
WAIT = 10.0
RUNNING = ("raise", ValueError, "generator already executing")

pytestmark = pytest.mark.timeout(60)
# Memory growth is measured with pymalloc: under PYTHONMALLOC=malloc (the
# valgrind runs, which report leaks themselves) tracemalloc's one-off costs
# take thousands of rounds to settle (test_refleaks' own tests fail there
# too; at 3000 rounds the growth is 0-1 byte per round).
UNDER_PYMALLOC = pytest.mark.skipif(os.environ.get("PYTHONMALLOC", "").startswith("malloc"),
                                    reason="growth is measured under pymalloc")


# ---- the model ----------------------------------------------------------------

def _take_result(fs, done, timeout):
    """The next done future's result; the future is dropped here, inside
    the generator's step, as the stdlib's map drops the one it pops."""
    try:
        f = done.get(timeout=timeout)
    except queue.Empty:
        raise REF.TimeoutError from None
    del fs[f]
    return f.result()


def model_map(ex, fn, *iterables, timeout=None, buffersize=None):
    """Executor.map(fn, *iterables, timeout=, buffersize=, ordered=False) as
    specified, on `ex.submit`: everything (or the first `buffersize` calls)
    submitted at the call; each next() yields the result of the first call
    to be done that was not yielded yet, and with buffersize submits one
    more call in its place just before yielding; the timeout counts from
    the call; a failed call raises when its turn comes; the calls not
    yielded are cancelled, newest first, when the iterator ends, fails or is
    closed after its first next()."""
    if timeout is not None:
        end_time = timeout + time.monotonic()
    args = zip(*iterables)
    done = queue.SimpleQueue()
    fs = {}

    def add(f):
        fs[f] = None
        f.add_done_callback(done.put)

    for a in itertools.islice(args, buffersize):
        add(ex.submit(fn, *a))
    executor_ref = weakref.ref(ex)

    def results():
        try:
            while fs:
                left = None if timeout is None else max(0.0, end_time - time.monotonic())
                result = _take_result(fs, done, left)
                executor = executor_ref() if buffersize else None
                more = next(args, None) if executor is not None else None
                if more:
                    add(executor.submit(fn, *more))
                del executor
                yield result
        finally:
            for f in reversed(list(fs)):
                f.cancel()

    return results()


def umap(m, ex, fn, *iterables, **kwargs):
    """ex.map(..., ordered=False); on the stdlib, the model."""
    if m is REF:
        return model_map(ex, fn, *iterables, **kwargs)
    return ex.map(fn, *iterables, ordered=False, **kwargs)


# ---- helpers --------------------------------------------------------------------

def must(event, timeout=WAIT):
    assert event.wait(timeout), "event not set within %s s" % timeout


def res(fn, *args):
    """outcome() with StopIteration as ('stop',)."""
    got = outcome(fn, *args)
    if got[0] == "raise" and got[1] is StopIteration:
        return ("stop",)
    return got


class Gates(object):
    """task(i) announces it started, waits until gate i opens (bounded),
    then returns 10 * i -- or raises what `fail` maps i to."""

    def __init__(self, n, fail=None):
        self.open = [threading.Event() for _ in range(n)]
        self.started = [threading.Event() for _ in range(n)]
        self.fail = fail or {}

    def task(self, i):
        self.started[i].set()
        must(self.open[i])
        if i in self.fail:
            raise self.fail[i]
        return 10 * i

    def release(self, *which):
        for i in which or range(len(self.open)):
            self.open[i].set()



@pytest.fixture
def one_switch():
    """No forced GIL switch while a thread is between two steps."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    yield
    sys.setswitchinterval(old)


def join(t):
    t.join(WAIT)
    assert not t.is_alive(), "thread still blocked"


class Records(logging.Handler):
    """The 'concurrent.futures' logger's records, comparable."""

    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.seen = []

    def emit(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        self.seen.append((record.levelname,
                          re.sub(r"0x[0-9a-fA-F]+", "0xADDR", record.getMessage()),
                          None if exc is None else (type(exc), str(exc))))

    def __enter__(self):
        logging.getLogger("concurrent.futures").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("concurrent.futures").removeHandler(self)


def inline_executor(m, make_future):
    class Inline(m.Executor):
        """Runs each call in submit(); returns a done future."""

        def __init__(self):
            self.submitted = []

        def submit(self, fn, /, *args, **kwargs):
            self.submitted.append(args)
            f = make_future()
            try:
                f.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: B902
                f.set_exception(exc)
            return f

    return Inline()


class NeverExecutor(object):
    """An executor class whose futures are never run (made per module)."""

    @staticmethod
    def of(m, make_future):
        class Never(m.Executor):
            def __init__(self):
                self.futures = []

            def submit(self, fn, /, *args, **kwargs):
                f = make_future()
                self.futures.append(f)
                return f

        return Never()


# ---- ordered=True is the stdlib's map ---------------------------------------

def test_ordered_true_is_the_stdlib_map(mod):
    def scenario(m):
        extra = {} if m is REF else {"ordered": True}
        with m.ThreadPoolExecutor(3) as ex:
            plain = list(ex.map(abs, range(-6, 0), **extra))
            it = ex.map(unordered_tasks.checked, [1, -2, 3], **extra)
            failing = [res(next, it)[:2] for _ in range(3)]
            several = list(ex.map(pow, [2, 3, 4], [2, 2], timeout=5, **extra))
            return plain, failing, several

    assert agreed_once(scenario, mod) == (
        [6, 5, 4, 3, 2, 1], [("return", 1), ("raise", ValueError), ("stop",)],
        [4, 9])


@pytest.mark.parametrize("value, ordered", [
    (True, True), (1, True), ("yes", True), ([0], True),
    (False, False), (0, False), (None, False), ("", False)])
def test_ordered_is_read_by_its_truth(cf, value, ordered):
    gates = Gates(2)
    with cf.ThreadPoolExecutor(2) as ex:
        it = ex.map(gates.task, range(2), ordered=value)
        gates.release(1)
        if ordered:
            gates.release(0)
        assert next(it) == (0 if ordered else 10)
        gates.release()
        assert list(it) == [10 if ordered else 0]


def test_ordered_whose_truth_raises_submits_nothing(cf):
    class Undecided(object):
        def __bool__(self):
            raise RuntimeError("no truth")

    src = Counted(range(3))
    with cf.ThreadPoolExecutor(2) as ex:
        assert outcome(ex.map, abs, src, ordered=Undecided()) == (
            "raise", RuntimeError, "no truth")
        # checked after buffersize and timeout, as they are checked
        assert outcome(ex.map, abs, src, buffersize=0, ordered=Undecided())[:2] == (
            "raise", ValueError)
    assert src.taken == 0


# ---- results as the calls finish -------------------------------------------------

def test_results_come_in_completion_order(mod):
    def scenario(m):
        gates = Gates(4)
        with m.ThreadPoolExecutor(4) as ex:
            try:
                it = umap(m, ex, gates.task, range(4))
                got = []
                for i in (2, 0, 3, 1):
                    gates.release(i)
                    got.append(next(it))
                return got, res(next, it), res(next, it)
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == ([20, 0, 30, 10], ("stop",), ("stop",))


def test_several_iterables_none_and_many(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(4) as ex:
            several = sorted(umap(m, ex, pow, [1, 2, 3, 4], [3, 2, 1]))
            none = list(umap(m, ex, abs))
            empty = list(umap(m, ex, abs, []))
            many = sorted(umap(m, ex, abs, range(-1000, 0)))
            many_bs = sorted(umap(m, ex, abs, range(-1000, 0), buffersize=7))
            return several, none, empty, many == many_bs == list(range(1, 1001))

    assert agreed_once(scenario, mod) == ([1, 3, 4], [], [], True)


def test_buffersize_refills_as_results_are_taken(mod):
    # At most `buffersize` calls submitted and not yet yielded: one more is
    # submitted as each result is handed out, whatever order they finish in.
    def scenario(m):
        gates = Gates(8)
        src = Counted(range(8))
        with m.ThreadPoolExecutor(3) as ex:
            try:
                it = umap(m, ex, gates.task, src, buffersize=3)
                taken = [src.taken]
                got = []
                for i in (1, 3, 0, 2, 5, 4, 7, 6):
                    gates.release(i)
                    got.append(next(it))
                    taken.append(src.taken)
                return got, taken, res(next, it)
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == (
        [10, 30, 0, 20, 50, 40, 70, 60], [3, 4, 5, 6, 7, 8, 8, 8, 8], ("stop",))


def test_buffersize_latest_first(mod):
    # Each time the newest call in flight finishes first: the buffer's
    # slots are reused in every order.
    def scenario(m):
        n, size = 40, 4
        gates = Gates(n)
        with m.ThreadPoolExecutor(size) as ex:
            try:
                it = umap(m, ex, gates.task, range(n), buffersize=size)
                in_flight, upcoming, got = list(range(size)), iter(range(size, n)), []
                while in_flight:
                    i = max(in_flight)
                    gates.release(i)
                    got.append(next(it))
                    in_flight.remove(i)
                    in_flight.extend(itertools.islice(upcoming, 1))
                return len(got), len(set(got)), got[:5], res(next, it)
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == (40, 40, [30, 40, 50, 60, 70], ("stop",))


def test_buffersize_endless_input(mod):
    # Ten results, then close: twelve items taken (two calls still in
    # flight), the ten results among them in any order.
    def scenario(m):
        src = Counted(itertools.count())
        with m.ThreadPoolExecutor(2) as ex:
            it = umap(m, ex, abs, src, buffersize=2)
            got = list(itertools.islice(it, 10))
            it.close()
            return len(set(got)), set(got) <= set(range(12)), src.taken

    assert agreed_once(scenario, mod) == (10, True, 12)


def test_chunksize_is_accepted_and_ignored_by_threads(cf):
    with cf.ThreadPoolExecutor(2) as ex:
        assert sorted(ex.map(abs, range(-5, 0), chunksize=3, ordered=False)) == [1, 2, 3, 4, 5]


# ---- timeout -------------------------------------------------------------------------

def test_timeout_counts_from_the_call(mod):
    def scenario(m):
        gates = Gates(3)
        gates.release(0)
        with m.ThreadPoolExecutor(2) as ex:
            try:
                start = time.monotonic()
                it = umap(m, ex, gates.task, range(3), timeout=0.4)
                threading.Event().wait(0.25)        # time passes; 0 is done
                first = res(next, it)
                before = time.monotonic()
                second = res(next, it)
                end = time.monotonic()
                # it raised when the 0.4 s from the call were up, not 0.4 s
                # after this next()
                timing = (end - start >= 0.4, end - before < 0.35)
                must(gates.started[1])
                return first, second, timing, res(next, it)
            finally:
                gates.release()

    first, second, timing, after = agreed_once(scenario, mod)
    assert first == ("return", 0)
    assert second == ("raise", REF.TimeoutError, "")
    assert timing == (True, True)
    assert after == ("stop",)


def test_timeout_cancels_what_has_not_started(mod):
    def scenario(m):
        gates = Gates(4)
        with m.ThreadPoolExecutor(1) as ex:
            try:
                fs = []
                real_submit = ex.submit

                def submit(fn, *args):
                    fs.append(real_submit(fn, *args))
                    return fs[-1]

                ex.submit = submit          # an instance attribute: map uses it
                it = umap(m, ex, gates.task, range(4), timeout=0.1)
                got = res(next, it)
                return got, [f.cancelled() for f in fs], res(next, it)
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == (
        ("raise", REF.TimeoutError, ""), [False, True, True, True], ("stop",))


def test_results_done_before_the_deadline_still_come(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(1) as ex:
            it = umap(m, ex, abs, [-1, -2, -3], timeout=0.05)
            ex.submit(abs, 0).result(timeout=WAIT)  # one worker: all done before
            threading.Event().wait(0.1)             # the deadline passes
            return list(it)

    assert agreed_once(scenario, mod) == [1, 2, 3]


def test_timeout_with_buffersize(mod):
    def scenario(m):
        gates = Gates(5)
        src = Counted(range(5))
        with m.ThreadPoolExecutor(2) as ex:
            try:
                it = umap(m, ex, gates.task, src, timeout=0.3, buffersize=2)
                gates.release(1)
                first = res(next, it)
                second = res(next, it)
                return first, second, src.taken, res(next, it)
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == (
        ("return", 10), ("raise", REF.TimeoutError, ""), 3, ("stop",))


def test_timeout_on_a_user_executor(mod):
    def scenario(m):
        ex = NeverExecutor.of(m, m.Future)
        it = umap(m, ex, abs, [1, 2, 3], timeout=0.05)
        got = res(next, it)
        return got, [f.cancelled() for f in ex.futures], res(next, it)

    assert agreed_once(scenario, mod) == (
        ("raise", REF.TimeoutError, ""), [True, True, True], ("stop",))


# ---- exceptions ------------------------------------------------------------------------

def test_exception_raised_when_its_turn_comes(mod):
    def scenario(m):
        error = ValueError("task 1")
        gates = Gates(6, fail={1: error})
        fs = []
        with m.ThreadPoolExecutor(3) as ex:
            try:
                real_submit = ex.submit
                ex.submit = lambda fn, *a: fs.append(real_submit(fn, *a)) or fs[-1]
                it = umap(m, ex, gates.task, range(6))
                gates.release(2)
                first = res(next, it)
                must(gates.started[3])      # 2's worker took 3
                gates.release(1)            # 1's worker takes 4; 5 waits
                try:
                    next(it)
                    raised = None
                except ValueError as exc:
                    raised = exc is error
                return (first, raised, res(next, it),
                        [f.cancelled() for f in fs[:4]], fs[5].cancelled())
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == (
        ("return", 20), True, ("stop",), [False] * 4, True)


def test_stop_iteration_from_a_task_does_not_end_the_map(mod):
    def scenario(m):
        def task(x):
            if x == 2:
                raise StopIteration("from the task")
            return x

        ex = inline_executor(m, m.Future)
        it = umap(m, ex, task, [1, 2, 3])
        return [res(next, it) for _ in range(3)]

    assert agreed_once(scenario, mod) == [
        ("return", 1), ("raise", RuntimeError, "generator raised StopIteration"),
        ("stop",)]


def test_input_raising_during_refill(mod):
    def scenario(m):
        def source():
            yield 1
            yield 2
            raise KeyError("input")

        with m.ThreadPoolExecutor(2) as ex:
            it = umap(m, ex, abs, source(), buffersize=2)
            return [res(next, it) for _ in range(3)]

    assert agreed_once(scenario, mod) == [
        ("raise", KeyError, "'input'"), ("stop",), ("stop",)]


def test_submit_after_shutdown_during_refill(mod):
    def scenario(m):
        ex = m.ThreadPoolExecutor(2)
        it = umap(m, ex, abs, range(-4, 0), buffersize=1)
        ex.shutdown(wait=True)
        return res(next, it), res(next, it)

    assert agreed_once(scenario, mod) == (
        ("raise", RuntimeError, "cannot schedule new futures after shutdown"),
        ("stop",))


def test_futures_cancelled_from_outside(mod):
    # shutdown(cancel_futures=True) cancels the queued calls: their turn
    # comes at once (CancelledError), not after the running one.
    def scenario(m):
        gates = Gates(3)
        ex = m.ThreadPoolExecutor(1)
        try:
            it = umap(m, ex, gates.task, range(3))
            must(gates.started[0])
            ex.shutdown(wait=False, cancel_futures=True)
            got = res(next, it)
            return got[:2], res(next, it), gates.started[0].is_set()
        finally:
            gates.release()
            ex.shutdown(wait=True)

    assert agreed_once(scenario, mod) == (
        ("raise", REF.CancelledError), ("stop",), True)


@pytest.mark.parametrize("kind", ["cfutures", "stdlib", "duck"])
def test_user_executor_futures(mod, kind):
    def scenario(m):
        make = {"cfutures": m.Future, "stdlib": REF.Future, "duck": DuckFuture}[kind]
        ex = inline_executor(m, make)
        plain = list(umap(m, ex, divmod, [7, 9, 4], [2, 4, 5], timeout=5))
        src = Counted(range(7))
        got = list(umap(m, ex, lambda x: -x, src, buffersize=2))
        never = NeverExecutor.of(m, make)
        pending = umap(m, never, abs, [1, 2])
        never.futures[1].cancel()       # cancelled from outside: its turn comes
        cancelled = res(next, pending)[:2]
        return plain, got, src.taken, len(ex.submitted), cancelled, res(next, pending)

    assert agreed_once(scenario, mod) == (
        [(3, 1), (2, 1), (0, 4)], [0, -1, -2, -3, -4, -5, -6], 7, 10,
        ("raise", REF.CancelledError), ("stop",))


def test_unhashable_and_repeated_futures(cf):
    # Futures are kept by identity: one whose class defines __eq__ without
    # __hash__ works, and a submit() that returns one future twice gets its
    # result twice, as from the ordered map.
    class Unhashable(REF.Future):
        __hash__ = None

        def __eq__(self, other):
            raise AssertionError("compared")

    ex = inline_executor(cf, Unhashable)
    assert sorted(ex.map(abs, [-1, -2, -3], ordered=False, buffersize=2)) == [1, 2, 3]

    class Same(cf.Executor):
        def __init__(self):
            self.future = cf.Future()

        def submit(self, fn, /, *args, **kwargs):
            return self.future

    same = Same()
    it = same.map(abs, range(3), ordered=False, timeout=5)
    same.future.set_result("once")
    assert list(it) == ["once"] * 3


# ---- closing and dropping --------------------------------------------------------------

@pytest.mark.parametrize("how", ["close", "drop"])
def test_close_cancels_what_has_not_started(mod, how):
    def scenario(m):
        gates = Gates(5)
        fs = []
        with m.ThreadPoolExecutor(1) as ex:
            try:
                real_submit = ex.submit
                ex.submit = lambda fn, *a: fs.append(real_submit(fn, *a)) or fs[-1]
                it = umap(m, ex, gates.task, range(5))
                gates.release(0)
                first = next(it)
                must(gates.started[1])      # the worker holds call 1
                if how == "close":
                    it.close()
                else:
                    del it
                    gc.collect()
                return first, [f.cancelled() for f in fs]
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == (0, [False, False, True, True, True])


def test_closed_before_the_first_next_cancels_nothing(mod):
    def scenario(m):
        gates = Gates(3)
        with m.ThreadPoolExecutor(1) as ex:
            it = umap(m, ex, gates.task, range(3))
            it.close()
            gates.release()
        return [e.is_set() for e in gates.started], res(next, it)

    assert agreed_once(scenario, mod) == ([True, True, True], ("stop",))


# ---- re-entry ------------------------------------------------------------------------------

@pytest.mark.parametrize("buffersize", [None, 2])
@pytest.mark.parametrize("action", ["next", "close"])
def test_second_thread_while_one_waits(mod, one_switch, action, buffersize):
    # The second caller gets the ValueError; the blocked one its item; the
    # iteration goes on as if nothing happened.
    def scenario(m):
        gates = Gates(3)
        with m.ThreadPoolExecutor(3) as ex:
            try:
                it = umap(m, ex, gates.task, range(3), buffersize=buffersize)
                t, inside, box = next_in_thread(it, res)
                must(inside)
                second = res(next, it) if action == "next" else res(it.close)
                gates.release(1)
                join(t)
                gates.release()
                return second, box, sorted(it)
            finally:
                gates.release()

    assert agreed_once(scenario, mod) == (RUNNING, [("return", 10)], [0, 20])


def _input_reentry(m, action, swallow):
    caught, box = [], []
    with m.ThreadPoolExecutor(2) as ex:
        box.append(umap(m, ex, abs, reentering_input(box, action, swallow, caught),
                        buffersize=1))
        return [res(next, box[0]) for _ in range(4)], caught


@pytest.mark.parametrize("action", ["next", "close"])
def test_input_reenters(mod, action):
    # The ValueError leaves the input, then the iterator: it is finished.
    assert agreed_once(lambda m: _input_reentry(m, action, False), mod) == (
        [("return", 1), RUNNING, ("stop",), ("stop",)], [])


@pytest.mark.parametrize("action", ["next", "close"])
def test_input_swallows_the_reentry_error(mod, action):
    assert agreed_once(lambda m: _input_reentry(m, action, True), mod) == (
        [("return", 1), ("return", 2), ("return", 3), ("stop",)], [REENTRY_ERROR])


@pytest.mark.parametrize("action", ["next", "close"])
def test_done_callback_reenters(mod, one_switch, action):
    # A done-callback of the awaited call, run by the worker while the
    # caller waits in next(): its next()/close() fails and is logged.
    def scenario(m):
        box, seen = [], []

        def reenter(f):
            seen.append(box[0].close() if action == "close" else next(box[0]))

        gates = Gates(3)

        class Pool(m.ThreadPoolExecutor):
            def submit(self, fn, /, *args, **kwargs):
                f = super().submit(fn, *args, **kwargs)
                if args == (1,):
                    f.add_done_callback(reenter)
                return f

        ex = Pool(3)
        try:
            with Records() as log:
                box.append(umap(m, ex, gates.task, range(3)))
                t, inside, out = next_in_thread(box[0], res)
                must(inside)
                gates.release(1)
                join(t)
                gates.release()
                rest = sorted(box[0])
        finally:
            gates.release()
            ex.shutdown(wait=True)
        return out, rest, seen, log.seen

    assert agreed_once(scenario, mod) == (
        [("return", 10)], [0, 20], [],
        [("ERROR", "exception calling callback for <Future at 0xADDR "
          "state=finished returned int>",
          (ValueError, "generator already executing"))])


@pytest.mark.parametrize("buffersize", [None, 2])
@pytest.mark.parametrize("action", ["next", "close"])
def test_del_inside_next_reenters(mod, action, buffersize):
    # A __del__ run as next() drops the future it took the result from.
    def scenario(m):
        box, unraisable = [], []

        class Guard(object):
            def __del__(self):
                if action == "next":
                    next(box[0])
                else:
                    box[0].close()

        def make():
            f = m.Future()
            f.guard = Guard()
            return f

        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: unraisable.append(
            (type(u.exc_value), str(u.exc_value)))
        try:
            ex = inline_executor(m, make)
            box.append(umap(m, ex, abs, [-1, -2, -3], buffersize=buffersize))
            out = [res(next, box[0]) for _ in range(4)]
        finally:
            sys.unraisablehook = old_hook
        return out, unraisable

    assert agreed_once(scenario, mod) == (
        [("return", 1), ("return", 2), ("return", 3), ("stop",)],
        [(ValueError, "generator already executing")] * 3)


# ---- afterwards -----------------------------------------------------------------------------

def test_pool_usable_after_every_ending(cf):
    with cf.ThreadPoolExecutor(2) as ex:
        it = ex.map(unordered_tasks.checked, [1, -1, 2], ordered=False)
        with pytest.raises(ValueError):
            list(it)
        it = ex.map(abs, range(5), ordered=False, buffersize=2)
        next(it)
        it.close()
        assert sorted(ex.map(abs, range(-3, 0), ordered=False)) == [1, 2, 3]
        assert ex.submit(pow, 2, 5).result(timeout=WAIT) == 32


@UNDER_PYMALLOC
def test_no_memory_kept_per_map(cf):
    # Every way an unordered map ends, on native and stdlib futures: the
    # memory left allocated does not grow with the number of maps.  What
    # one round makes -- iterators, waiters, dicts, futures, a key per call
    # -- is far above the bounds, which leave room for one-off costs still
    # settling after 300 rounds (measured up to ~20 bytes per round quietly,
    # ~50 when raising through a few frames on 3.13; ~1 over 3000 rounds).
    # On a loaded machine a window of ~40 bytes per round turns up now and
    # then (CI once had two in a row): hence four windows.
    from test_refleaks import growth_per_round

    with cf.ThreadPoolExecutor(2) as ex:
        user = inline_executor(cf, REF.Future)
        never = NeverExecutor.of(cf, REF.Future)

        def ending_quietly():
            assert sorted(ex.map(abs, range(-4, 0), ordered=False, buffersize=2)) == [1, 2, 3, 4]
            it = ex.map(abs, range(4), ordered=False)
            next(it)
            it.close()
            assert outcome(next, never.map(abs, [1, 2], ordered=False, timeout=0))[:2] == (
                "raise", REF.TimeoutError)
            del never.futures[:]

        def raising():
            assert outcome(list, ex.map(unordered_tasks.checked, [1, -1, 2],
                                        ordered=False))[:2] == ("raise", ValueError)
            assert outcome(list, user.map(unordered_tasks.checked, [1, -1],
                                          ordered=False))[:2] == ("raise", ValueError)
            del user.submitted[:]

        assert growth_per_round(ending_quietly, rounds=300, windows=4) < 32
        assert growth_per_round(raising, rounds=300, windows=4) < 96


# ---- the process pool --------------------------------------------------------------------------

def chunk_runs(items, size):
    """Cut `items` (the results of chunks of `size` of range(n)) into
    the chunks they came in; fails unless each chunk came whole, in its
    order."""
    runs, pos, n = [], 0, len(items)
    while pos < len(items):
        first = items[pos]
        assert first % size == 0, items
        chunk = list(range(first, min(first + size, n)))
        assert items[pos:pos + len(chunk)] == chunk, items
        runs.append(chunk)
        pos += len(chunk)
    return runs

@pytest.mark.parametrize("method", METHODS)
def test_process_pool(cf, sync, method):
    warm_up(method)
    gc.collect()        # fds of earlier tests' garbage are not ours
    fds = open_fds()
    d = sync.dir
    with pool(cf, method, sync=sync) as (ex, _):
        # completion order: the call that waits comes last
        it = ex.map(unordered_tasks.gated, [d] * 3, ["a", "b", "c"],
                    [True, False, False], ordered=False)
        sync.started("a")
        assert sorted([next(it), next(it)]) == ["b", "c"]
        sync.release()
        assert list(it) == ["a"]
        # chunks: a chunk's results come together, in its order
        got = list(ex.map(unordered_tasks.checked, range(10), chunksize=3,
                          ordered=False, buffersize=2))
        assert sorted(chunk_runs(got, 3)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
        # an error raises when its turn comes, and ends the iterator
        it = ex.map(unordered_tasks.checked, [1, -2], ordered=False, buffersize=1)
        assert next(it) == 1
        with pytest.raises(ValueError, match="negative: -2"):
            next(it)
        assert res(next, it) == ("stop",)
        assert ex.submit(process_tasks.square, 7).result(timeout=30) == 49
        ex.shutdown(wait=True)
    del ex, it          # a Process keeps its sentinel fd while it lives
    gc.collect()
    assert open_fds() == fds


@pytest.mark.parametrize("chunksize", [1, 2])
def test_process_pool_timeout_and_close(cf, tmp_path, chunksize):
    s = Sync(tmp_path)
    with pool(cf, "fork", sync=s, max_workers=1) as (ex, _):
        fs = []
        real_submit = ex.submit
        ex.submit = lambda fn, *a: fs.append(real_submit(fn, *a)) or fs[-1]
        start = time.monotonic()
        it = ex.map(unordered_tasks.gated, [s.dir] * 6, "abcdef",
                    [True] * 6, timeout=0.3, chunksize=chunksize, ordered=False)
        s.started("a")
        with pytest.raises(REF.TimeoutError):
            next(it)
        assert time.monotonic() - start >= 0.3
        # what no worker took is cancelled (the pool may hand one ahead)
        assert fs[-1].cancelled()
        s.release()
        del ex.submit
        it = ex.map(unordered_tasks.gated, [s.dir] * 3, ["x", "y", "z"],
                    [False] * 3, chunksize=chunksize, ordered=False)
        assert sorted(it) == ["x", "y", "z"]
