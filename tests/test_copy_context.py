"""ThreadPoolExecutor(..., *, copy_context=True): each call runs in a copy of
the contextvars context of the thread that submitted it, taken at submit().

Without it (the default) a call runs in its worker thread's own context,
as in concurrent.futures: a ContextVar set by the submitter is not seen, and
what one call sets is seen by the next call on the same worker.  Those
behaviours are run on both modules and compared (``agreed``).  With it, the
values follow the work -- for submit(), map() (ordered or not, with
buffersize), asyncio's run_in_executor, decimal's context -- each call gets
its own copy (what it sets stays there), and the argument is keyword-only
and read by its truth value.
"""

import asyncio
import concurrent.futures
import contextvars
import decimal
import gc
import os
import threading
import weakref

import pytest

from futures_helpers import agreed, outcome

REF = concurrent.futures
WAIT = 10.0

pytestmark = pytest.mark.timeout(60)
# Memory growth is measured with pymalloc: under PYTHONMALLOC=malloc (the
# valgrind runs, which report leaks themselves) tracemalloc's one-off costs
# take thousands of rounds to settle (test_refleaks' own tests fail there
# too; at 3000 rounds the growth is 0-1 byte per round).
UNDER_PYMALLOC = pytest.mark.skipif(os.environ.get("PYTHONMALLOC", "").startswith("malloc"),
                                    reason="growth is measured under pymalloc")

var = contextvars.ContextVar("var", default="unset")


def get(_=None):
    return var.get()


def set_and_get(value):
    var.set(value)
    return var.get()


def must(event, timeout=WAIT):
    assert event.wait(timeout), "event not set within %s s" % timeout


def in_context(value, fn, *args):
    """fn(*args) with `var` set to `value` (in a copy of this context)."""
    def run():
        var.set(value)
        return fn(*args)
    return contextvars.copy_context().run(run)


# ---- the default: the worker's own context, as the stdlib -----------------

def test_default_runs_in_the_workers_context(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(1) as ex:
            submitted = in_context("submitter", lambda: ex.submit(get).result(timeout=WAIT))
            mapped = in_context("submitter", lambda: list(ex.map(get, range(2))))
            # what a call sets stays in its worker's context, for the next one
            first = ex.submit(set_and_get, "left by a call").result(timeout=WAIT)
            later = ex.submit(get).result(timeout=WAIT)
        return submitted, mapped, first, later, get()

    assert agreed(scenario, mod) == (
        "unset", ["unset", "unset"], "left by a call", "left by a call", "unset")


def test_default_initializer_sets_the_workers_context(mod):
    def scenario(m):
        with m.ThreadPoolExecutor(1, initializer=set_and_get,
                                  initargs=("initializer",)) as ex:
            return in_context("submitter", lambda: ex.submit(get).result(timeout=WAIT))

    assert agreed(scenario, mod) == "initializer"


def test_explicit_false_is_the_default(cf):
    for value in (False, 0, None, ""):
        with cf.ThreadPoolExecutor(1, copy_context=value) as ex:
            assert in_context("submitter", lambda: ex.submit(get).result(timeout=WAIT)) == "unset"


# ---- copy_context=True -------------------------------------------------------

@pytest.mark.parametrize("value", [True, 1, "yes", [0]])
def test_calls_see_the_submitters_values(cf, value):
    with cf.ThreadPoolExecutor(2, copy_context=value) as ex:
        assert in_context("a", lambda: ex.submit(get).result(timeout=WAIT)) == "a"
        assert in_context("b", lambda: ex.submit(get).result(timeout=WAIT)) == "b"
        assert ex.submit(get).result(timeout=WAIT) == "unset"


def test_the_copy_is_taken_at_submit(cf):
    go = threading.Event()

    def later():
        must(go)
        return get()

    with cf.ThreadPoolExecutor(1, copy_context=True) as ex:
        token = var.set("at submit")
        try:
            f = ex.submit(later)
            var.set("changed after submit")
            go.set()
            assert f.result(timeout=WAIT) == "at submit"
        finally:
            var.reset(token)


def test_each_call_gets_its_own_copy(cf):
    with cf.ThreadPoolExecutor(1, copy_context=True) as ex:
        def scenario():
            first = ex.submit(set_and_get, "set by a call").result(timeout=WAIT)
            return first, ex.submit(get).result(timeout=WAIT), get()
        # nothing a call sets reaches the submitter or the next call
        assert in_context("submitter", scenario) == ("set by a call", "submitter", "submitter")


def test_initializer_values_are_not_seen(cf):
    # The calls run in their submitter's context, not the worker's, where
    # the initializer set its value (threading.local is the place for
    # per-worker state).
    with cf.ThreadPoolExecutor(1, initializer=set_and_get, initargs=("initializer",),
                               copy_context=True) as ex:
        assert in_context("submitter", lambda: ex.submit(get).result(timeout=WAIT)) == "submitter"


def test_submitters_in_several_threads(cf):
    out = {}
    with cf.ThreadPoolExecutor(2, copy_context=True) as ex:
        def submitter(name):
            var.set(name)           # a thread starts with an empty context
            out[name] = [f.result(timeout=WAIT) for f in [ex.submit(get) for _ in range(20)]]

        threads = [threading.Thread(target=submitter, args=("t%d" % i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
    assert out == {"t%d" % i: ["t%d" % i] * 20 for i in range(3)}


@pytest.mark.parametrize("kwargs", [{}, {"buffersize": 1}, {"ordered": False},
                                    {"ordered": False, "buffersize": 2}])
def test_map(cf, kwargs):
    with cf.ThreadPoolExecutor(2, copy_context=True) as ex:
        assert in_context("mapped", lambda: list(ex.map(get, range(5), **kwargs))) == \
            ["mapped"] * 5


def test_map_with_buffersize_copies_at_each_refill(cf):
    # A call submitted by next() (buffersize) takes the context of that
    # next(): each copy is taken when its call is submitted.
    with cf.ThreadPoolExecutor(1, copy_context=True) as ex:
        it = in_context("at map()", lambda: ex.map(get, range(3), buffersize=1))
        got = [in_context("at next() %d" % i, next, it) for i in range(3)]
    assert got == ["at map()", "at next() 0", "at next() 1"]


def test_subclass_submit_and_keywords(cf):
    class Traced(cf.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            return super().submit(fn, *args, **kwargs)

    def echo(copy_context=None, context=None):
        return get(), copy_context, context

    with Traced(1, copy_context=True) as ex:
        # submit's keyword arguments go to the call untouched
        assert in_context("sub", lambda: ex.submit(echo, copy_context=1, context=2)
                          .result(timeout=WAIT)) == ("sub", 1, 2)
        assert in_context("sub", lambda: list(ex.map(get, range(2)))) == ["sub", "sub"]


def test_exceptions_and_done_callbacks(cf):
    # A call's exception lands on its future as ever; done-callbacks run in
    # the worker's own context, not in the call's copy.
    go = threading.Event()
    seen = []

    def fail():
        must(go)
        raise KeyError(get())

    with cf.ThreadPoolExecutor(1, copy_context=True) as ex:
        f = in_context("call", ex.submit, fail)
        f.add_done_callback(lambda _: seen.append(get()))
        go.set()
        assert outcome(f.result, WAIT) == ("raise", KeyError, "'call'")
    assert seen == ["unset"]


def test_decimal_context_follows_the_work(cf):
    def third():
        return str(decimal.Decimal(1) / decimal.Decimal(3))

    with cf.ThreadPoolExecutor(1, copy_context=True) as ex:
        with decimal.localcontext() as context:
            context.prec = 5
            assert ex.submit(third).result(timeout=WAIT) == "0.33333"
        default = str(decimal.Decimal(1) / decimal.Decimal(3))
        assert ex.submit(third).result(timeout=WAIT) == default


def test_asyncio_run_in_executor(cf):
    # What asyncio.to_thread does, through run_in_executor: the task's
    # context reaches the call.
    request_id = contextvars.ContextVar("request_id")

    async def handle(ex, n):
        request_id.set("request %d" % n)
        return await asyncio.get_running_loop().run_in_executor(ex, request_id.get)

    async def main(ex):
        return await asyncio.gather(*(handle(ex, n) for n in range(4)))

    with cf.ThreadPoolExecutor(2, copy_context=True) as ex:
        assert asyncio.run(main(ex)) == ["request %d" % n for n in range(4)]


def test_a_cancelled_call_drops_its_copy(cf):
    # The copy holds the submitter's values; a call that never runs lets
    # them go with it.
    class Value(object):
        pass

    go = threading.Event()
    ex = cf.ThreadPoolExecutor(1, copy_context=True)
    try:
        ex.submit(must, go)
        value = Value()
        ref = weakref.ref(value)
        queued = in_context(value, ex.submit, get)
        del value
        assert queued.cancel()
        ex.shutdown(wait=False, cancel_futures=True)
        go.set()
        ex.shutdown(wait=True)
        del queued
        gc.collect()
        assert ref() is None
    finally:
        go.set()
        ex.shutdown(wait=True)


@UNDER_PYMALLOC
def test_no_memory_kept_per_call(cf):
    from test_refleaks import growth_per_round

    with cf.ThreadPoolExecutor(2, copy_context=True) as ex:
        def scenario():
            ex.submit(set_and_get, "x").result(timeout=WAIT)
            list(ex.map(get, range(3), buffersize=2))
        assert growth_per_round(scenario, rounds=300, windows=4) < 16


# ---- the argument -------------------------------------------------------------

def test_keyword_only(cf):
    assert outcome(cf.ThreadPoolExecutor, 1, "p", None, (), True)[:2] == ("raise", TypeError)


def test_truth_that_raises(cf):
    class Undecided(object):
        def __bool__(self):
            raise RuntimeError("no truth")

    before = threading.active_count()
    assert outcome(cf.ThreadPoolExecutor, 1, copy_context=Undecided()) == (
        "raise", RuntimeError, "no truth")
    assert threading.active_count() == before


def test_stdlib_checks_come_first(cf):
    assert outcome(cf.ThreadPoolExecutor, 0, copy_context=True) == (
        "raise", ValueError, "max_workers must be greater than 0")
    assert outcome(cf.ThreadPoolExecutor, 1, initializer=5, copy_context=True) == (
        "raise", TypeError, "initializer must be a callable")


def test_pool_usable_and_its_threads_named_as_ever(cf):
    with cf.ThreadPoolExecutor(2, "ctx", copy_context=True) as ex:
        names = {ex.submit(lambda: threading.current_thread().name).result(timeout=WAIT)
                 for _ in range(3)}
        assert names <= {"ctx_0", "ctx_1"}
        assert ex.submit(pow, 2, 3).result(timeout=WAIT) == 8
