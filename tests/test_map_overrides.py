"""Executor.map: PEP 479 for a task raising StopIteration, and the methods
map must go through (overridable, as in the stdlib).

(a) The stdlib's result iterator is a generator: a StopIteration coming out
    of a task's result becomes RuntimeError('generator raised
    StopIteration') whose __cause__ is the StopIteration, and the iterator
    is finished -- the results are never silently cut short.  Thread pool
    (with and without buffersize) and process pool (fork; chunksize 1 and
    2).
(b) map calls what the user overrides:
    - a Future subclass's result()/cancel(), exactly as the running stdlib
      does (3.10+: fut.result(timeout) then fut.cancel() for each result;
      3.9: fut.result() only, and cancel() for those left when the
      iteration ends early);
    - a submit replaced on the instance (unittest.mock.patch.object), on
      ThreadPoolExecutor and ProcessPoolExecutor, with and without
      buffersize -- which is how tqdm.contrib.concurrent.thread_map drives
      its progress bar (it wraps ex.submit to add a done-callback that
      updates the bar): the bar must reach its total with either module.

buffersize: the stdlib has it only from 3.14; below that the stdlib half
runs test_iterator_reentry.map_314 (3.14's map as a generator on the
stdlib's executor).
"""

import ast
import concurrent.futures
import multiprocessing
import textwrap
from unittest import mock

import pytest

from futures_helpers import agreed, run_child, run_into
from test_iterator_reentry import bmap
from test_iterator_reentry import res as reentry_res
from test_iterator_reentry import steps as reentry_steps

REF = concurrent.futures

pytestmark = pytest.mark.timeout(120)


def res(fn, *args):
    """test_iterator_reentry.res, with the exception's __cause__."""
    return reentry_res(fn, *args, cause=True)


def steps(it):
    return reentry_steps(it, res=res)


def fork_pool(m, workers=2):
    return m.ProcessPoolExecutor(workers,
                                 mp_context=multiprocessing.get_context("fork"))


# ---- (a) StopIteration from a task ------------------------------------------

def stop_at_two(x):
    if x == 2:
        raise StopIteration("two")
    return x * 10


PEP479 = ("raise", "RuntimeError", "generator raised StopIteration")


@pytest.mark.parametrize("buffersize", [None, 2])
def test_thread_pool_task_raising_stop_iteration(mod, buffersize):
    def scenario(m):
        kwargs = {} if buffersize is None else {"buffersize": buffersize}
        with m.ThreadPoolExecutor(2) as ex:
            return steps(bmap(m, ex, stop_at_two, range(5), **kwargs))

    assert agreed(scenario, mod) == [
        ("return", 0), ("return", 10),
        PEP479 + (("StopIteration", ("two",)),), ("stop",), ("stop",)]


def test_thread_pool_list_is_not_cut_short(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(2) as ex:
            return res(list, ex.map(stop_at_two, range(5)))

    assert agreed(scenario, mod) == PEP479 + (("StopIteration", ("two",)),)


@pytest.mark.parametrize("chunksize", [1, 2])
def test_process_pool_task_raising_stop_iteration(mod, chunksize):
    # next() on an exhausted list iterator raises StopIteration in the
    # worker; builtins pickle by name under every start method.
    def scenario(m):
        with fork_pool(m) as ex:
            args = [iter([1]), iter([]), iter([3]), iter([4])]
            return steps(ex.map(next, args, chunksize=chunksize))

    # With chunksize 2 the first chunk is the one that raises.
    head = [("return", 1)] if chunksize == 1 else []
    assert agreed(scenario, mod) == head + [
        PEP479 + (("StopIteration", ()),), ("stop",), ("stop",)]


# ---- (b) overridden result() / cancel() -------------------------------------

def recording_executor(m, calls, pool=False):
    """An executor whose futures log result()/cancel() calls; inline (all
    done at submit), or on a thread pool (`pool`)."""

    class Recorded(m.Future):
        def __init__(self, tag):
            m.Future.__init__(self)
            self.tag = tag

        def result(self, *args, **kwargs):
            calls.append(("result", self.tag,
                          tuple(type(a).__name__ for a in args),
                          sorted(kwargs)))
            return m.Future.result(self, *args, **kwargs)

        def cancel(self):
            calls.append(("cancel", self.tag))
            return m.Future.cancel(self)

    if pool:
        class Pool(m.ThreadPoolExecutor):
            def submit(self, fn, /, *args, **kwargs):
                inner = m.ThreadPoolExecutor.submit(self, fn, *args,
                                                    **kwargs)
                outer = Recorded(args[0])

                def relay(i):
                    try:
                        if i.exception() is not None:
                            outer.set_exception(i.exception())
                        else:
                            outer.set_result(i.result())
                    except REF.InvalidStateError:
                        pass        # map cancelled `outer` meanwhile

                inner.add_done_callback(relay)
                return outer

        return Pool(2)

    class Inline(m.Executor):
        def submit(self, fn, /, *args, **kwargs):
            return run_into(Recorded(args[0]), fn, *args, **kwargs)

    return Inline()


def tenfold_but_two(x):
    if x == 2:
        raise ValueError("two")
    return x * 10


@pytest.mark.parametrize("timeout", [None, 30])
@pytest.mark.parametrize("pool", [False, True], ids=["inline", "threads"])
def test_future_overrides_all_results(mod, pool, timeout):
    def scenario(m):
        calls = []
        ex = recording_executor(m, calls, pool)
        try:
            got = list(ex.map(abs, [-1, -2, -3], timeout=timeout))
        finally:
            if pool:
                ex.shutdown(wait=True)
        return got, calls

    got, calls = agreed(scenario, mod)
    assert got == [1, 2, 3]
    assert [c[:2] for c in calls if c[0] == "result"] == [
        ("result", -1), ("result", -2), ("result", -3)]


@pytest.mark.parametrize("pool", [False, True], ids=["inline", "threads"])
def test_future_overrides_on_error(mod, pool):
    def scenario(m):
        calls = []
        ex = recording_executor(m, calls, pool)
        try:
            out = steps(ex.map(tenfold_but_two, [1, 2, 3, 4]))
        finally:
            if pool:
                ex.shutdown(wait=True)
        return [o[:3] for o in out], calls

    out, calls = agreed(scenario, mod)
    assert out == [("return", 10), ("raise", "ValueError", "two"),
                   ("stop",), ("stop",)]
    # Whatever the version, the two futures never handed out are cancelled.
    assert ("cancel", 3) in calls and ("cancel", 4) in calls


# ---- (b) submit replaced on the instance ------------------------------------

@pytest.mark.parametrize("buffersize", [None, 2])
def test_thread_pool_instance_submit(mod, buffersize):
    def scenario(m):
        kwargs = {} if buffersize is None else {"buffersize": buffersize}
        with m.ThreadPoolExecutor(2) as ex:
            with mock.patch.object(ex, "submit", wraps=ex.submit) as sub:
                got = list(bmap(m, ex, abs, range(-5, 0), **kwargs))
            return got, sub.call_count

    assert agreed(scenario, mod) == ([5, 4, 3, 2, 1], 5)


@pytest.mark.parametrize("buffersize", [None, 2])
def test_process_pool_instance_submit(mod, buffersize):
    def scenario(m):
        kwargs = {} if buffersize is None else {"buffersize": buffersize}
        with fork_pool(m) as ex:
            with mock.patch.object(ex, "submit", wraps=ex.submit) as sub:
                got = list(bmap(m, ex, abs, range(-5, 0), **kwargs))
            return got, sub.call_count

    assert agreed(scenario, mod) == ([5, 4, 3, 2, 1], 5)


def test_thread_pool_submit_replaced_while_iterating(mod):
    # The 3.14 map looks `submit` up on the executor at every refill.
    def scenario(m):
        with m.ThreadPoolExecutor(2) as ex:
            it = bmap(m, ex, abs, range(-5, 0), buffersize=2)
            first = next(it)
            with mock.patch.object(ex, "submit", wraps=ex.submit) as sub:
                rest = list(it)
            return first, rest, sub.call_count

    assert agreed(scenario, mod) == (5, [4, 3, 2, 1], 2)


# tqdm.contrib.concurrent._executor_map (tqdm 4.70) replaces `ex.submit` on
# the executor instance by a wrapper that adds `lambda _: pbar.update()` as a
# done-callback, then returns list(ex.map(...)): the bar moves only if map
# submits through the instance's `submit`.  The script runs unchanged, under
# `python -m cfutures` for the cfutures half.
TQDM_SCRIPT = textwrap.dedent("""
    import io
    import threading

    from tqdm import tqdm
    from tqdm.contrib.concurrent import thread_map

    class Bar(tqdm):
        monitor_interval = 0        # no monitor thread
        bars = []

        def __init__(self, *args, **kwargs):
            self._moved = threading.Condition()
            tqdm.__init__(self, *args, **kwargs)
            Bar.bars.append(self)

        def update(self, n=1):
            r = tqdm.update(self, n)
            with self._moved:
                self._moved.notify_all()
            return r

        def close(self):
            # The last done-callbacks may still be running when map's last
            # result is taken: give them (bounded) time to move the bar.
            if not self.disable:
                with self._moved:
                    self._moved.wait_for(lambda: self.n >= self.total, 5.0)
            tqdm.close(self)

    import concurrent.futures
    got = thread_map(abs, range(-30, 0), max_workers=4, tqdm_class=Bar,
                     file=io.StringIO())
    bar = Bar.bars[0]
    print(repr((concurrent.futures.__name__, got == list(range(30, 0, -1)),
                bar.n, bar.total)))
""")


def test_tqdm_thread_map_progress(mod, tmp_path):
    script = tmp_path / "bar.py"
    script.write_text(TQDM_SCRIPT)
    rc, out, err = run_child([str(script)], cwd=str(tmp_path),
                             launcher=mod is not REF)
    assert rc == 0, err[-3000:]
    name, ok, n, total = ast.literal_eval(out.strip().splitlines()[-1])
    assert name == ("concurrent.futures" if mod is REF else "cfutures")
    assert ok
    assert (n, total) == (30, 30)
