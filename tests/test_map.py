"""Executor.map: order, several iterables, timeout counted from the call,
exceptions in turn, cancellation of what is left (close, collection,
error), buffersize (the 3.14 API, on every version), chunksize, and map on a
user's Executor subclass.

Behaviours shared with the running stdlib are run on both modules and
compared; buffersize is checked against the documented 3.14 behaviour, and
against the stdlib as well where the stdlib has it (3.14+).
"""

import concurrent.futures
import concurrent.futures._base
import gc
import itertools
import threading
import time

import pytest

from futures_helpers import TIMEOUT, agreed, must_wait, outcome, run_into

REF = concurrent.futures

# ---- helpers ----------------------------------------------------------------



def stdlib_has_buffersize():
    import inspect
    return "buffersize" in inspect.signature(REF.Executor.map).parameters


@pytest.fixture(params=["stdlib", "cfutures"])
def bmod(request):
    """Like ``mod``, for buffersize: the stdlib half runs only where the
    stdlib has buffersize (3.14+)."""
    if request.param == "stdlib":
        if not stdlib_has_buffersize():
            pytest.skip("the running stdlib has no buffersize (3.14+)")
        return REF
    import cfutures
    return cfutures


class Counted(object):
    """An iterable that counts how many items were taken from it."""

    def __init__(self, source):
        self._source = iter(source)
        self.taken = 0
        self._lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._source)
        with self._lock:
            self.taken += 1
        return item


class Recorder(object):
    """Records the items a task function was called with, in call order,
    and lets a test wait until a number of calls happened."""

    def __init__(self):
        self.calls = []
        self._cond = threading.Condition()

    def add(self, item):
        with self._cond:
            self.calls.append(item)
            self._cond.notify_all()

    def wait_for_count(self, n, timeout=TIMEOUT):
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= n, timeout)


# ---- results ----------------------------------------------------------------

def test_results_in_order(mod):
    with mod.ThreadPoolExecutor(4) as ex:
        got = list(ex.map(pow, range(30), itertools.repeat(2)))
    assert got == [i ** 2 for i in range(30)]


def test_results_in_order_when_completed_in_reverse(mod):
    n = 5
    events = [threading.Event() for _ in range(n)]
    finished = []

    def task(i):
        must_wait(events[i])
        finished.append(i)
        if i > 0:
            events[i - 1].set()
        return i * 10

    with mod.ThreadPoolExecutor(n) as ex:
        it = ex.map(task, range(n))
        events[-1].set()
        try:
            got = list(it)
        finally:
            for e in events:
                e.set()
    assert finished == [4, 3, 2, 1, 0]
    assert got == [0, 10, 20, 30, 40]


def test_returns_an_iterator(mod):
    with mod.ThreadPoolExecutor(2) as ex:
        it = ex.map(abs, [-1, -2])
        assert iter(it) is it
        assert next(it) == 1
        assert next(it) == 2
        with pytest.raises(StopIteration):
            next(it)
        with pytest.raises(StopIteration):
            next(it)


def test_several_iterables_shortest_wins(mod):
    r1, taken_a, taken_b, r2, r3 = agreed(_several, mod)
    assert r1 == [(0, 0), (1, 1), (2, 2)]
    # zip() takes one more item from the first iterable before it sees the
    # second one exhausted.
    assert (taken_a, taken_b) == (4, 3)
    assert r2 == [(0, 10, "a"), (1, 20, "b")]
    assert r3 == []


def _several(m):
    with m.ThreadPoolExecutor(3) as ex:
        a = Counted(range(10))
        b = Counted(range(3))
        r1 = list(ex.map(lambda x, y: (x, y), a, b))
        r2 = list(ex.map(lambda x, y, z: (x, y, z), itertools.count(),
                         [10, 20], "ab"))
        r3 = list(ex.map(lambda x, y: x * y, [], itertools.count()))
        return r1, a.taken, b.taken, r2, r3


def test_no_iterables(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(1) as ex:
            return list(ex.map(int))

    assert agreed(scenario, mod) == []


def test_many_iterables(mod):
    cols = [range(i, i + 4) for i in range(12)]
    with mod.ThreadPoolExecutor(2) as ex:
        got = list(ex.map(lambda *a: sum(a), *cols))
    assert got == [sum(c[j] for c in cols) for j in range(4)]


def test_all_submitted_at_call(mod):
    # The stdlib submits every call when map() is called, so map() works for
    # its side effects without the results being consumed.
    def scenario(m):
        rec = Recorder()
        src = Counted(range(8))
        go = threading.Event()
        with m.ThreadPoolExecutor(2) as ex:
            blocker = ex.submit(go.wait, TIMEOUT)      # keeps the queue full
            ex.map(rec.add, src)                     # result dropped at once
            taken = src.taken
            go.set()
        return taken, sorted(rec.calls), blocker.result(0)

    assert agreed(scenario, mod) == (8, list(range(8)), True)


def test_unconsumed_map_in_with_block_runs_everything(mod):
    # The common "fire and forget" idiom.
    def scenario(m):
        rec = Recorder()
        with m.ThreadPoolExecutor(1) as ex:
            ex.map(rec.add, range(50))
        return sorted(rec.calls)

    assert agreed(scenario, mod) == list(range(50))


def test_fn_not_callable(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(1) as ex:
            it = ex.map(5, [1, 2])
            return outcome(next, it)

    assert agreed(scenario, mod)[:2] == ("raise", TypeError)


def test_non_iterable_argument(mod):
    def scenario(m):
        rec = Recorder()
        with m.ThreadPoolExecutor(1) as ex:
            r = outcome(ex.map, rec.add, [1, 2], 5)
        return r, rec.calls

    assert agreed(scenario, mod) == (
        ("raise", TypeError, "'int' object is not iterable"), [])


def test_iterable_raising_during_submission(mod):
    # map() itself raises; what was already submitted keeps running.
    def gen():
        yield 1
        yield 2
        raise KeyError("bad input")

    def scenario(m):
        rec = Recorder()
        with m.ThreadPoolExecutor(1) as ex:
            r = outcome(ex.map, rec.add, gen())
        return r, sorted(rec.calls)

    assert agreed(scenario, mod) == (
        ("raise", KeyError, "'bad input'"), [1, 2])


def test_unexpected_keyword(mod):
    with mod.ThreadPoolExecutor(1) as ex:
        with pytest.raises(TypeError):
            ex.map(abs, [1], timeot=3)
        with pytest.raises(TypeError):
            ex.map()


@pytest.mark.parametrize("chunksize", [1, 3, 1000, 0, -1])
def test_chunksize_accepted_and_ignored(mod, chunksize):
    def scenario(m):
        with m.ThreadPoolExecutor(3) as ex:
            return list(ex.map(pow, range(10), range(10),
                               chunksize=chunksize))

    assert agreed(scenario, mod) == [i ** i for i in range(10)]


# ---- timeout ----------------------------------------------------------------

def test_timeout_raises_when_turn_comes(mod):
    go = threading.Event()

    def task(i):
        if i == 2:
            must_wait(go)
        return i

    ex = mod.ThreadPoolExecutor(3)
    try:
        t0 = time.monotonic()
        it = ex.map(task, range(3), timeout=0.3)
        assert next(it) == 0
        assert next(it) == 1
        with pytest.raises(mod.TimeoutError):
            next(it)
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < TIMEOUT
        with pytest.raises(StopIteration):
            next(it)
    finally:
        go.set()
        ex.shutdown()
    assert mod.TimeoutError is REF.TimeoutError


def test_timeout_counts_from_the_call(mod):
    go = threading.Event()

    def task(i):
        must_wait(go)
        return i

    ex = mod.ThreadPoolExecutor(1)
    try:
        it = ex.map(task, [1], timeout=0.3)
        # Let the whole timeout pass before asking for the first result
        # (the elapsed time is what is tested, not a synchronisation).
        threading.Event().wait(0.35)
        t0 = time.monotonic()
        with pytest.raises(mod.TimeoutError):
            next(it)
        # The deadline was already over: no further 0.3 s wait.
        assert time.monotonic() - t0 < 0.2
    finally:
        go.set()
        ex.shutdown()


def test_timeout_enough(mod):
    with mod.ThreadPoolExecutor(2) as ex:
        assert list(ex.map(pow, range(10), range(10), timeout=TIMEOUT)) == [
            i ** i for i in range(10)]


def test_timeout_over_but_results_done(mod):
    # Past the deadline, results already there are still returned
    # (result() with a negative timeout does not wait, but does not fail).
    def scenario(m):
        with m.ThreadPoolExecutor(1) as ex:
            it = ex.map(pow, range(5), itertools.repeat(2), timeout=0.1)
            # One worker, FIFO: when this runs, the map's calls are done.
            fs_done = threading.Event()
            ex.submit(fs_done.set)
            must_wait(fs_done)
            threading.Event().wait(0.2)     # the elapsed time is the point
            return list(it)

    assert agreed(scenario, mod) == [0, 1, 4, 9, 16]


def test_timeout_cancels_the_rest(mod):
    def scenario(m):
        started, go = threading.Event(), threading.Event()
        rec = Recorder()

        def task(i):
            rec.add(i)
            if i == 0:
                started.set()
                must_wait(go)
            return i

        ex = m.ThreadPoolExecutor(1)
        try:
            it = ex.map(task, range(4), timeout=0.2)
            must_wait(started)
            r = outcome(next, it)[:2]
        finally:
            go.set()
            ex.shutdown(wait=True)
        return r, rec.calls

    assert agreed(scenario, mod) == (("raise", REF.TimeoutError), [0])


def test_timeout_wrong_type(mod):
    def scenario(m):
        rec = Recorder()
        with m.ThreadPoolExecutor(1) as ex:
            r = outcome(ex.map, rec.add, [1, 2], timeout="soon")
        return r, rec.calls

    r, calls = agreed(scenario, mod)
    assert r[:2] == ("raise", TypeError) and calls == []


# ---- exceptions and cancellation of what is left ----------------------------

def test_exception_raised_when_its_turn_comes(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(1) as ex:
            it = ex.map(lambda x: 10 // x, [1, 2, 0, 5])
            out = [outcome(next, it) for _ in range(5)]
        return [o[:2] if o[0] == "raise" else o for o in out]

    assert agreed(scenario, mod) == [
        ("return", 10), ("return", 5), ("raise", ZeroDivisionError),
        ("raise", StopIteration), ("raise", StopIteration)]


def test_exception_is_the_task_exception(mod):
    err = ValueError("from task")

    def task(x):
        if x == 1:
            raise err
        return x

    with mod.ThreadPoolExecutor(2) as ex:
        it = ex.map(task, [0, 1, 2])
        assert next(it) == 0
        with pytest.raises(ValueError) as info:
            next(it)
        assert info.value is err


class Stage(object):
    """Sets up: item 0 done (or raising), items 1 and 2 running and blocked,
    items 3..5 queued on a 2-worker pool."""

    def __init__(self, first_raises):
        self.first_raises = first_raises
        self.go0 = threading.Event()
        self.started = {1: threading.Event(), 2: threading.Event()}
        self.release = threading.Event()
        self.rec = Recorder()

    def task(self, i):
        self.rec.add(i)
        if i == 0:
            must_wait(self.go0)
            if self.first_raises:
                raise ValueError("item 0")
            return "zero"
        if i in self.started:
            self.started[i].set()
            must_wait(self.release)
        return i

    def run(self, m, action):
        ex = m.ThreadPoolExecutor(2)
        try:
            box = [ex.map(self.task, range(6))]
            must_wait(self.started[1])
            self.go0.set()
            must_wait(self.started[2])       # item 0's worker moved on
            r = action(box)             # holds the only reference
        finally:
            self.go0.set()
            self.release.set()
            ex.shutdown(wait=True)
        return r, sorted(self.rec.calls)


def test_raising_cancels_the_rest(mod):
    def scenario(m):
        def action(box):
            it = box[0]
            return outcome(next, it)[:2], outcome(next, it)[:2]
        return Stage(True).run(m, action)

    assert agreed(scenario, mod) == (
        (("raise", ValueError), ("raise", StopIteration)), [0, 1, 2])


def test_close_cancels_the_rest(mod):
    def scenario(m):
        def action(box):
            it = box[0]
            first = next(it)
            it.close()
            return first, outcome(next, it)[:2]
        return Stage(False).run(m, action)

    assert agreed(scenario, mod) == (
        ("zero", ("raise", StopIteration)), [0, 1, 2])


def test_collection_cancels_the_rest(mod):
    def scenario(m):
        def action(box):
            first = next(box[0])
            del box[:]
            gc.collect()
            return first
        return Stage(False).run(m, action)

    assert agreed(scenario, mod) == ("zero", [0, 1, 2])


def test_close_before_first_next(mod):
    # The stdlib's result iterator is a generator: closed before it started,
    # its `finally` never runs, so nothing is cancelled.
    def scenario(m):
        rec = Recorder()
        go = threading.Event()
        with m.ThreadPoolExecutor(1) as ex:
            ex.submit(go.wait, TIMEOUT)
            it = ex.map(rec.add, range(5))
            it.close()
            go.set()
        return sorted(rec.calls)

    assert agreed(scenario, mod) == [0, 1, 2, 3, 4]


# ---- buffersize -------------------------------------------------------------

@pytest.mark.parametrize("value", ["3", 1.5, 3.0, [2], object()])
def test_buffersize_type(bmod, value):
    rec = Recorder()
    src = Counted(range(5))
    with bmod.ThreadPoolExecutor(1) as ex:
        with pytest.raises(TypeError) as info:
            ex.map(rec.add, src, buffersize=value)
    assert str(info.value) == "buffersize must be an integer or None"
    assert src.taken == 0 and rec.calls == []


@pytest.mark.parametrize("value", [0, -1, -(2 ** 80)])
def test_buffersize_value(bmod, value):
    rec = Recorder()
    src = Counted(range(5))
    with bmod.ThreadPoolExecutor(1) as ex:
        with pytest.raises(ValueError) as info:
            ex.map(rec.add, src, buffersize=value)
    assert str(info.value) == "buffersize must be None or > 0"
    assert src.taken == 0 and rec.calls == []


def test_buffersize_checked_before_timeout(bmod):
    with bmod.ThreadPoolExecutor(1) as ex:
        with pytest.raises(ValueError):
            ex.map(abs, [1], timeout="x", buffersize=0)


@pytest.mark.parametrize("value", [None, 1, 2, 7, 100, True])
def test_buffersize_results(bmod, value):
    with bmod.ThreadPoolExecutor(3) as ex:
        assert list(ex.map(pow, range(20), itertools.repeat(3),
                           buffersize=value)) == [i ** 3 for i in range(20)]


def test_buffersize_bounds_submissions(bmod):
    n = 3
    gates = {}
    gates_lock = threading.Lock()
    rec = Recorder()

    def gate(i):
        with gates_lock:
            return gates.setdefault(i, threading.Event())

    def task(i):
        rec.add(i)
        must_wait(gate(i))
        return -i

    src = Counted(itertools.count())
    ex = bmod.ThreadPoolExecutor(n + 2)
    try:
        it = ex.map(task, src, buffersize=n)
        assert src.taken == n
        assert rec.wait_for_count(n)
        # With free workers, nothing beyond the buffer starts.
        assert not rec.wait_for_count(n + 1, timeout=0.1)
        for k in range(1, 6):
            gate(k - 1).set()
            assert next(it) == -(k - 1)
            # One more submitted for each result taken.
            assert src.taken == n + k
            assert rec.wait_for_count(n + k)
            assert not rec.wait_for_count(n + k + 1, timeout=0.05)
        assert sorted(rec.calls) == list(range(n + 5))
        it.close()
    finally:
        for i in range(n + 10):
            gate(i).set()
        ex.shutdown(wait=True)
    # Closing cancelled the rest: nothing more was taken or run.
    assert src.taken == n + 5
    assert sorted(rec.calls) == list(range(n + 5))


def test_buffersize_endless_iterable(bmod):
    with bmod.ThreadPoolExecutor(4) as ex:
        src = Counted(itertools.count())
        it = ex.map(lambda x: x * x, src, buffersize=4)
        got = [next(it) for _ in range(200)]
        it.close()
        assert got == [i * i for i in range(200)]
        assert src.taken == 204


def test_buffersize_several_iterables(bmod):
    with bmod.ThreadPoolExecutor(2) as ex:
        assert list(ex.map(lambda a, b: a - b, itertools.count(),
                           [5, 6, 7, 8], buffersize=2)) == [-5, -5, -5, -5]


def test_buffersize_exception_cancels_the_rest(bmod):
    rec = Recorder()

    def task(i):
        rec.add(i)
        if i == 1:
            raise ValueError(i)
        return i

    src = Counted(itertools.count())
    with bmod.ThreadPoolExecutor(1) as ex:
        it = ex.map(task, src, buffersize=2)
        assert next(it) == 0
        with pytest.raises(ValueError):
            next(it)
        with pytest.raises(StopIteration):
            next(it)
        taken = src.taken
    assert taken == 4
    assert max(rec.calls) <= 3


def test_buffersize_with_timeout(bmod):
    go = threading.Event()

    def task(i):
        if i == 2:
            must_wait(go)
        return i

    ex = bmod.ThreadPoolExecutor(2)
    try:
        t0 = time.monotonic()
        it = ex.map(task, itertools.count(), timeout=0.3, buffersize=2)
        assert next(it) == 0
        assert next(it) == 1
        with pytest.raises(bmod.TimeoutError):
            next(it)
        assert 0.25 <= time.monotonic() - t0 < TIMEOUT
    finally:
        go.set()
        ex.shutdown()


def test_buffersize_submit_after_shutdown(bmod):
    ex = bmod.ThreadPoolExecutor(1)
    it = ex.map(abs, range(-5, 0), buffersize=2)
    assert next(it) == 5
    ex.shutdown(wait=True)
    with pytest.raises(RuntimeError) as info:
        next(it)
    assert str(info.value) == "cannot schedule new futures after shutdown"


# ---- map on a user's Executor subclass --------------------------------------

def inline_executor(m, future_class=None):
    future_class = future_class or m.Future

    class Inline(m.Executor):
        """Runs each call inline in submit(); returns a done future."""

        def __init__(self):
            self.submitted = []

        def submit(self, fn, /, *args, **kwargs):
            self.submitted.append(args)
            return run_into(future_class(), fn, *args, **kwargs)

    return Inline()


def test_map_on_user_executor(mod):
    def scenario(m):
        ex = inline_executor(m)
        r1 = list(ex.map(pow, [1, 2, 3], [3, 2, 1]))
        r2 = list(ex.map(pow, [4, 5], [2, 2], timeout=TIMEOUT))
        it = ex.map(lambda x: 1 // x, [1, 0, 2])
        r3 = [outcome(next, it)[:2] for _ in range(3)]
        return r1, r2, r3, ex.submitted

    assert agreed(scenario, mod) == (
        [1, 4, 3], [16, 25],
        [("return", 1), ("raise", ZeroDivisionError),
         ("raise", StopIteration)],
        [(1, 3), (2, 2), (3, 1), (4, 2), (5, 2), (1,), (0,), (2,)])


def test_map_on_user_executor_with_stdlib_futures(mod):
    def scenario(m):
        ex = inline_executor(m, REF.Future)
        return list(ex.map(divmod, [7, 9], [2, 4], timeout=TIMEOUT))

    assert agreed(scenario, mod) == [(3, 1), (2, 1)]


def test_map_on_user_executor_timeout_pending(mod):
    class Never(mod.Executor):
        def __init__(self):
            self.futures = []

        def submit(self, fn, /, *args, **kwargs):
            f = mod.Future()
            self.futures.append(f)
            return f

    ex = Never()
    it = ex.map(abs, [1, 2, 3], timeout=0.1)
    with pytest.raises(mod.TimeoutError):
        next(it)
    # The rest is cancelled.
    assert [f.cancelled() for f in ex.futures[1:]] == [True, True]
    # 3.10+ (both modules follow the running stdlib): the future that timed
    # out is cancelled too.
    assert ex.futures[0].cancelled() == hasattr(concurrent.futures._base,
                                                "_result_or_cancel")


def test_map_on_user_executor_buffersize(bmod):
    ex = inline_executor(bmod)
    src = Counted(itertools.count())
    it = ex.map(lambda x: -x, src, timeout=5, buffersize=2)
    assert len(ex.submitted) == 2
    got = [next(it) for _ in range(5)]
    assert got == [0, -1, -2, -3, -4]
    # One submit per result taken, on top of the initial buffer.
    assert len(ex.submitted) == 7 and src.taken == 7
    it.close()
    assert len(ex.submitted) == 7


def test_map_on_executor_without_submit(mod):
    def scenario(m):
        return outcome(m.Executor().map, abs, [1])[:2]

    assert agreed(scenario, mod) == ("raise", NotImplementedError)


def test_subclass_map_uses_overridden_submit(mod):
    class Counting(mod.ThreadPoolExecutor):
        calls = 0

        def submit(self, fn, /, *args, **kwargs):
            type(self).calls += 1
            return super().submit(fn, *args, **kwargs)

    with Counting(2) as ex:
        assert list(ex.map(abs, [-1, -2, -3])) == [1, 2, 3]
    assert Counting.calls == 3
