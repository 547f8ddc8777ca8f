"""Mixing: cfutures.wait/as_completed over stdlib futures, cfutures futures
and duck-typed futures; the stdlib's wait/as_completed over cfutures futures
(through the _condition/_state/_waiters protocol); asyncio.wrap_future.

Tests taking ``mod`` run the same scenario for both modules (with the stdlib
the scenario is stdlib-over-stdlib: the baseline that validates the test).
Tests taking ``cf`` compare cfutures over a mixed list with the stdlib over
an all-stdlib list in the same positions.
"""

import asyncio
import concurrent.futures
import functools
import threading

import pytest

from futures_helpers import (REF, TIMEOUT, DuckFuture, LogCapture, agreed,
                             complete, in_lockstep, must_wait, run_into,
                             start, wait_until)

pytestmark = pytest.mark.timeout(60)


class MyError(Exception):
    pass


# --------------------------------------------------------------------------
# the stdlib's wait()/as_completed() over futures of the module under test
# --------------------------------------------------------------------------

def _installed(fs):
    """True once a stdlib waiter sits in every pending future's _waiters."""
    return lambda: all(len(f._waiters) == 1 for f in fs if not f.done())


def test_protocol_attributes(mod):
    f = mod.Future()
    assert list(f._waiters) == []
    with f._condition:
        assert f._state == "PENDING"
    assert f._condition.acquire()
    f._condition.release()


def test_oracle_wait_over_done_futures(mod):
    def scenario(m):
        fs = [m.Future() for _ in range(4)]
        fs[0].set_result(0)
        fs[1].set_exception(MyError())
        fs[2].cancel()
        fs[2].set_running_or_notify_cancel()
        fs[3].cancel()  # not notified: not done for wait()
        r = REF.wait(fs, timeout=0)
        index = {f: i for i, f in enumerate(fs)}
        return (sorted(index[f] for f in r.done),
                sorted(index[f] for f in r.not_done),
                [list(f._waiters) for f in fs])

    assert agreed(scenario, mod) == ([0, 1, 2], [3], [[], [], [], []])


@pytest.mark.parametrize("return_when, expected", [
    ("ALL_COMPLETED", ([0, 1, 2, 3], [])),
    ("FIRST_COMPLETED", ([0], [1, 2, 3])),
    ("FIRST_EXCEPTION", ([0, 1], [2, 3])),
])
def test_oracle_wait_while_another_thread_completes(mod, return_when,
                                                    expected):
    # Fully sequenced: the completer starts only once the stdlib's waiter is
    # installed in every future, and completes the futures that must not be
    # in `done` only after wait() returned.
    def scenario(m):
        fs = [m.Future() for _ in range(4)]
        returned = threading.Event()

        def finish():
            wait_until(_installed(fs), what="stdlib waiter installed")
            fs[0].set_result("a")
            if return_when == "FIRST_COMPLETED":
                must_wait(returned)
            fs[1].set_exception(MyError("b"))
            if return_when == "FIRST_EXCEPTION":
                must_wait(returned)
            fs[2].cancel()
            fs[2].set_running_or_notify_cancel()
            fs[3].set_running_or_notify_cancel()
            fs[3].set_result("d")

        w = start(finish)
        try:
            r = REF.wait(fs, timeout=TIMEOUT, return_when=return_when)
        finally:
            returned.set()
            w.join()
        index = {f: i for i, f in enumerate(fs)}
        return (sorted(index[f] for f in r.done),
                sorted(index[f] for f in r.not_done),
                [list(f._waiters) for f in fs])

    assert agreed(scenario, mod) == expected + ([[], [], [], []],)


def test_oracle_wait_cancel_notification(mod):
    def scenario(m):
        fs = [m.Future(), m.Future()]
        fs[0].cancel()

        def notify():
            wait_until(_installed(fs[1:]), what="stdlib waiter installed")
            assert fs[0].set_running_or_notify_cancel() is False

        w = start(notify)
        r = REF.wait(fs, timeout=TIMEOUT, return_when="FIRST_COMPLETED")
        w.join()
        return r.done == {fs[0]}, r.not_done == {fs[1]}

    assert agreed(scenario, mod) == (True, True)


def test_oracle_as_completed_order(mod):
    def scenario(m):
        fs = [m.Future() for _ in range(5)]
        fs[2].set_result(2)
        got = in_lockstep(
            REF.as_completed(fs, timeout=TIMEOUT),
            [functools.partial(complete, fs[i], how)
             for i, how in [(4, "result"), (0, "exception"), (3, "cancel"),
                            (1, "result")]],
            before=lambda: wait_until(_installed(fs),
                                      what="stdlib waiter installed"))
        return [fs.index(f) for f in got], [list(f._waiters) for f in fs]

    assert agreed(scenario, mod) == ([2, 4, 0, 3, 1], [[]] * 5)


def test_oracle_as_completed_timeout_and_cleanup(mod):
    def scenario(m):
        fs = [m.Future() for _ in range(3)]
        fs[1].set_result(1)
        got = []
        try:
            for f in REF.as_completed(fs, timeout=0.05):
                got.append(f)
        except REF.TimeoutError as exc:
            err = str(exc)
        return len(got), err, [list(f._waiters) for f in fs]

    assert agreed(scenario, mod) == (1, "2 (of 3) futures unfinished",
                                     [[], [], []])


def test_oracle_wait_mixed_with_oracle_futures(mod):
    def scenario(m):
        fs = [m.Future(), REF.Future(), m.Future(), REF.Future()]

        def finish():
            wait_until(_installed(fs), what="stdlib waiter installed")
            for i, f in enumerate(fs):
                complete(f, ("result", "exception", "cancel", "result")[i])

        w = start(finish)
        r = REF.wait(fs, timeout=TIMEOUT)
        w.join()
        return len(r.done), r.not_done

    assert agreed(scenario, mod) == (4, set())


# --------------------------------------------------------------------------
# the module's wait()/as_completed() over foreign futures
# --------------------------------------------------------------------------

def test_module_wait_over_oracle_futures(mod):
    def scenario(m):
        fs = [REF.Future() for _ in range(3)]
        fs[0].set_result(0)
        go = threading.Event()

        def finish():
            must_wait(go)
            fs[1].set_exception(MyError())
            fs[2].set_result(2)

        w = start(finish)
        go.set()
        r = m.wait(fs, timeout=TIMEOUT)
        w.join()
        return len(r.done), r.not_done, [list(f._waiters) for f in fs]

    assert agreed(scenario, mod) == (3, set(), [[], [], []])


def test_module_as_completed_over_oracle_futures(mod):
    def scenario(m):
        fs = [REF.Future() for _ in range(3)]
        fs[1].set_result(1)
        got = in_lockstep(m.as_completed(fs, timeout=TIMEOUT),
                          [functools.partial(complete, fs[i], "result")
                           for i in (2, 0)])
        return [fs.index(f) for f in got]

    assert agreed(scenario, mod) == [1, 2, 0]


# --------------------------------------------------------------------------
# cfutures over MIXED lists: stdlib futures, cfutures futures, ducks
# --------------------------------------------------------------------------

KINDS = ("oracle", "cf", "duck")


def _new(kind, cf):
    if kind == "oracle":
        return REF.Future()
    if kind == "cf":
        return cf.Future()
    return DuckFuture()


def _finish_done(f, how, value):
    if how == "result":
        f.set_result(value)
    elif how == "exception":
        f.set_exception(MyError(value))
    else:
        complete(f, "cancel")


def run_mixed(impl, kinds, initially, later, return_when=None, timeout=TIMEOUT,
              gate_after=None):
    """Futures of *kinds*; those in *initially* ({index: how}) are completed
    first; the others in *later* ([(index, how)]) by one helper thread, in
    order.  With *gate_after* = k, the helper pauses after k completions
    until the wait has returned.  Returns index-based outcomes.
    """
    fs = [_new(k, impl["cf"]) for k in kinds]
    for i, how in initially.items():
        _finish_done(fs[i], how, i)
    go, returned = threading.Event(), threading.Event()

    def finish():
        must_wait(go)
        for k, (i, how) in enumerate(later):
            if gate_after is not None and k == gate_after:
                must_wait(returned)
            _finish_done(fs[i], how, i)

    w = start(finish)
    go.set()
    index = {f: i for i, f in enumerate(fs)}
    try:
        if return_when is None:
            res = []
            err = None
            try:
                for f in impl["as_completed"](fs, timeout=timeout):
                    res.append(index[f])
            except impl["TimeoutError"] as exc:
                err = str(exc)
            # the futures done from the start come first, in no set order
            k = len(initially)
            out = (sorted(res[:k]) + res[k:], err)
        else:
            r = impl["wait"](fs, timeout=timeout, return_when=return_when)
            out = (sorted(index[f] for f in r.done),
                   sorted(index[f] for f in r.not_done))
    finally:
        returned.set()
        w.join()
    return out


def _impls(cf):
    ref = {"cf": REF, "wait": REF.wait, "as_completed": REF.as_completed,
           "TimeoutError": REF.TimeoutError}
    mine = {"cf": cf, "wait": cf.wait, "as_completed": cf.as_completed,
            "TimeoutError": cf.TimeoutError}
    return ref, mine


def mixed_agree(cf, kinds, *args, **kwargs):
    """Outcome with cfutures over *kinds*, asserted equal to the stdlib's
    over all-stdlib futures in the same positions."""
    ref, mine = _impls(cf)
    reference = run_mixed(ref, ["oracle"] * len(kinds), *args, **kwargs)
    got = run_mixed(mine, kinds, *args, **kwargs)
    assert got == reference
    return got


@pytest.mark.parametrize("first", KINDS)
def test_mixed_wait_all_completed(cf, first):
    kinds = [first] + [k for k in KINDS if k != first] + ["duck", "cf"]
    got = mixed_agree(cf, kinds, {0: "result"},
                      [(1, "exception"), (2, "cancel"), (3, "result"),
                       (4, "result")], return_when="ALL_COMPLETED")
    assert got == ([0, 1, 2, 3, 4], [])


@pytest.mark.parametrize("winner", range(3))
@pytest.mark.parametrize("how", ["result", "exception", "cancel"])
def test_mixed_wait_first_completed(cf, winner, how):
    later = [(winner, how)] + [(i, "result") for i in range(3) if i != winner]
    got = mixed_agree(cf, list(KINDS), {}, later,
                      return_when="FIRST_COMPLETED", gate_after=1)
    assert got == ([winner], [i for i in range(3) if i != winner])


@pytest.mark.parametrize("raiser", range(3))
def test_mixed_wait_first_exception(cf, raiser):
    others = [i for i in range(3) if i != raiser]
    later = [(others[0], "result"), (raiser, "exception"), (others[1],
                                                            "result")]
    got = mixed_agree(cf, list(KINDS), {}, later,
                      return_when="FIRST_EXCEPTION", gate_after=2)
    assert got == (sorted([others[0], raiser]), [others[1]])


@pytest.mark.parametrize("done_kind", KINDS)
def test_mixed_wait_already_done(cf, done_kind):
    kinds = [done_kind, "oracle", "cf", "duck"]
    for return_when, initially, expected in [
            ("FIRST_COMPLETED", {0: "result"}, ([0], [1, 2, 3])),
            ("FIRST_EXCEPTION", {0: "exception"}, ([0], [1, 2, 3])),
            ("ALL_COMPLETED", {0: "result", 1: "cancel", 2: "exception",
                               3: "result"}, ([0, 1, 2, 3], []))]:
        got = mixed_agree(cf, kinds, initially, [],
                          return_when=return_when, timeout=TIMEOUT)
        assert got == expected


def test_mixed_wait_timeout(cf):
    got = mixed_agree(cf, ["duck", "cf", "oracle"], {1: "result"}, [],
                      return_when="ALL_COMPLETED", timeout=0.05)
    assert got == ([1], [0, 2])


def test_mixed_wait_duplicates(cf):
    oracle, mine, duck = REF.Future(), cf.Future(), DuckFuture()
    mine.set_result(1)
    r = cf.wait([duck, oracle, duck, mine, mine, oracle], timeout=0)
    assert r.done == {mine} and r.not_done == {duck, oracle}
    assert type(r) is concurrent.futures._base.DoneAndNotDoneFutures


def test_mixed_as_completed_order(cf):
    kinds = ["duck", "oracle", "cf", "duck", "oracle", "cf"]
    got = mixed_agree(cf, kinds, {0: "result", 4: "cancel"},
                      [(2, "exception"), (3, "result"), (1, "cancel"),
                       (5, "result")])
    # done ones first (in any order), then exact completion order
    assert got == ([0, 4, 2, 3, 1, 5], None)


def test_mixed_as_completed_sequenced_order(cf):
    # one completion per received item: fully determined order
    fs = [DuckFuture(), REF.Future(), cf.Future(), DuckFuture(), cf.Future()]
    order = [3, 2, 1, 4, 0]
    received = [threading.Event() for _ in order]

    def finish():
        for k, i in enumerate(order):
            _finish_done(fs[i], ("result", "exception", "cancel")[k % 3], i)
            must_wait(received[k])

    w = start(finish)
    got = []
    try:
        for k, f in enumerate(cf.as_completed(fs, timeout=TIMEOUT)):
            got.append(fs.index(f))
            received[k].set()
    finally:
        for e in received:
            e.set()
        w.join()
    assert got == order


def test_mixed_as_completed_timeout(cf):
    got = mixed_agree(cf, ["oracle", "duck", "cf", "duck"], {3: "result"},
                      [], timeout=0.05)
    assert got == ([3], "3 (of 4) futures unfinished")


def test_mixed_as_completed_duplicates(cf):
    duck, oracle, mine = DuckFuture(), REF.Future(), cf.Future()
    duck.set_result(0)
    go = threading.Event()

    def finish():
        must_wait(go)
        oracle.set_result(1)
        mine.set_result(2)

    w = start(finish)
    go.set()
    got = list(cf.as_completed([duck, oracle, duck, mine, oracle, mine],
                               timeout=TIMEOUT))
    w.join()
    assert len(got) == 3 and set(got) == {duck, oracle, mine}
    assert got[0] is duck


def test_mixed_as_completed_closed_early_then_completed(cf):
    fs = [DuckFuture(), REF.Future(), cf.Future()]
    fs[2].set_result(2)
    it = cf.as_completed(fs, timeout=TIMEOUT)
    assert next(it) is fs[2]
    it.close()
    with LogCapture() as logs:
        fs[0].set_result(0)
        fs[1].set_exception(MyError())
    assert logs.records == []
    assert list(fs[1]._waiters) == []


def test_mixed_wait_from_many_threads(cf):
    n = 30
    fs = [_new(KINDS[i % 3], cf) for i in range(n)]
    ready = [threading.Event() for _ in range(3)]

    def waiter(i):
        ready[i].set()
        r = cf.wait(fs, timeout=TIMEOUT)
        return len(r.done), len(r.not_done)

    waiters = [start(waiter, i) for i in range(3)]
    for e in ready:
        must_wait(e)

    def finish(part):
        for i in part:
            _finish_done(fs[i], ("result", "exception", "cancel")[i % 3], i)

    finishers = [start(finish, range(k, n, 3)) for k in range(3)]
    for w in finishers:
        w.join()
    assert [w.join() for w in waiters] == [(n, 0)] * 3


# --------------------------------------------------------------------------
# asyncio
# --------------------------------------------------------------------------

def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def awaited(f, complete_it, main):
    """What the coroutine ``main(af)`` returns, af being
    asyncio.wrap_future(f), while a helper thread completes f by calling
    complete_it() once af exists."""
    go = threading.Event()

    def finish():
        must_wait(go)
        complete_it()

    async def wrapped():
        af = asyncio.wrap_future(f)
        go.set()
        return await main(af)

    w = start(finish)
    try:
        return _run(wrapped())
    finally:
        go.set()
        w.join()


def test_wrap_future_result_from_other_thread(mod):
    def scenario(m):
        f = m.Future()

        def finish():
            assert f.set_running_or_notify_cancel()
            f.set_result({"answer": 42})

        async def main(af):
            assert isinstance(af, asyncio.Future)
            return await af

        return awaited(f, finish, main)

    assert agreed(scenario, mod) == {"answer": 42}


def test_wrap_future_exception_from_other_thread(mod):
    def scenario(m):
        f = m.Future()
        exc = MyError("remote")

        async def main(af):
            try:
                await af
            except MyError as e:
                return e is exc

        return awaited(f, lambda: f.set_exception(exc), main)

    assert agreed(scenario, mod) is True


def test_wrap_future_cancelled_from_other_thread(mod):
    def scenario(m):
        f = m.Future()

        async def main(af):
            try:
                await af
            except asyncio.CancelledError:
                return "cancelled", af.cancelled()

        return awaited(f, f.cancel, main)

    assert agreed(scenario, mod) == ("cancelled", True)


def test_wrap_future_cancel_propagates_to_source(mod):
    def scenario(m):
        f = m.Future()

        async def main():
            af = asyncio.wrap_future(f)
            af.cancel()
            for _ in range(10):
                await asyncio.sleep(0)
                if f.cancelled():
                    break
            return f.cancelled(), f._state

        return _run(main())

    assert agreed(scenario, mod) == (True, "CANCELLED")


def test_wrap_already_done_future(mod):
    def scenario(m):
        f = m.Future()
        f.set_result("early")

        async def main():
            return await asyncio.wrap_future(f)

        return _run(main())

    assert agreed(scenario, mod) == "early"


def test_run_in_executor_with_user_executor(mod):
    class InlineExecutor(mod.Executor):
        def submit(self, fn, *args, **kwargs):
            f = mod.Future()
            if f.set_running_or_notify_cancel():
                run_into(f, fn, *args, **kwargs)
            return f

    async def main():
        loop = asyncio.get_running_loop()
        with InlineExecutor() as ex:
            a = await loop.run_in_executor(ex, pow, 2, 10)
            try:
                await loop.run_in_executor(ex, int, "x")
            except ValueError as e:
                b = str(e)
        return a, b

    assert _run(main()) == (1024, "invalid literal for int() with base 10: 'x'")


def test_wrap_future_of_subclass(mod):
    class Sub(mod.Future):
        pass

    f = Sub()

    async def main():
        af = asyncio.wrap_future(f)
        asyncio.get_running_loop().call_soon(f.set_result, "sub")
        return await af

    assert _run(main()) == "sub"


def test_not_mistaken_for_an_asyncio_future(mod):
    # asyncio.wrap_future returns asyncio futures unchanged; a concurrent
    # future must not look like one.
    f = mod.Future()
    assert asyncio.isfuture(f) is False
    assert not hasattr(f, "_asyncio_future_blocking")
