"""asyncio with a cfutures ThreadPoolExecutor: run_in_executor,
set_default_executor, to_thread, wrap_future -- and the same with the
stdlib's executor, as the reference."""

import asyncio
import concurrent.futures
import threading

import pytest

from futures_helpers import TIMEOUT, Blocker, must_wait


def run(coro):
    """asyncio.run with a bound on the whole coroutine."""
    async def bounded():
        return await asyncio.wait_for(coro, TIMEOUT)
    return asyncio.run(bounded())


def thread_info(x):
    return x * 2, threading.current_thread().name


def test_run_in_executor(mod):
    ex = mod.ThreadPoolExecutor(2, thread_name_prefix="aio-rie")
    try:
        async def main():
            loop = asyncio.get_running_loop()
            results = await asyncio.gather(
                *[loop.run_in_executor(ex, thread_info, i) for i in range(5)])
            return results

        results = run(main())
    finally:
        ex.shutdown()
    assert [r for r, _ in results] == [0, 2, 4, 6, 8]
    assert all(name.startswith("aio-rie_") for _, name in results)


def test_run_in_executor_exception(mod):
    err = KeyError("k")

    def boom():
        raise err

    ex = mod.ThreadPoolExecutor(1)
    try:
        async def main():
            loop = asyncio.get_running_loop()
            with pytest.raises(KeyError) as info:
                await loop.run_in_executor(ex, boom)
            return info.value

        assert run(main()) is err
    finally:
        ex.shutdown()


def test_set_default_executor(mod):
    ex = mod.ThreadPoolExecutor(2, thread_name_prefix="aio-default")

    async def main():
        loop = asyncio.get_running_loop()
        # Warns (3.8-3.10) or raises (3.11+) unless the executor is a
        # concurrent.futures.ThreadPoolExecutor; warnings are errors here.
        loop.set_default_executor(ex)
        return await loop.run_in_executor(None, thread_info, 21)

    try:
        value, name = run(main())
    finally:
        ex.shutdown()
    assert value == 42
    assert name.startswith("aio-default_"), name
    # asyncio.run() shut the default executor down.
    assert ex._shutdown is True


def test_to_thread_on_default_executor(mod):
    ex = mod.ThreadPoolExecutor(2, thread_name_prefix="aio-tothread")

    async def main():
        asyncio.get_running_loop().set_default_executor(ex)
        return await asyncio.gather(
            asyncio.to_thread(thread_info, 1),
            asyncio.to_thread(thread_info, x=2))

    try:
        results = run(main())
    finally:
        ex.shutdown()
    assert [r for r, _ in results] == [2, 4]
    assert all(n.startswith("aio-tothread_") for _, n in results), results


def test_wrap_future(mod):
    ex = mod.ThreadPoolExecutor(2)
    try:
        async def main():
            f = ex.submit(pow, 2, 10)
            af = asyncio.wrap_future(f)
            assert isinstance(af, asyncio.Future)
            return await af

        assert run(main()) == 1024
    finally:
        ex.shutdown()


def test_wrap_future_cancel_propagates(mod):
    blocker = Blocker()
    ex = mod.ThreadPoolExecutor(1)
    try:
        blocked = ex.submit(blocker)
        queued = ex.submit(pow, 2, 3)
        blocker.wait_started()

        async def main():
            af = asyncio.wrap_future(queued)
            af.cancel()
            with pytest.raises(asyncio.CancelledError):
                await af
            # The cancel reaches the concurrent future through a callback
            # scheduled on the loop.
            for _ in range(100):
                if queued.cancelled():
                    break
                await asyncio.sleep(0.01)
            return queued.cancelled()

        assert run(main()) is True
    finally:
        blocker.release()
        ex.shutdown()
    assert blocked.result(0) == "done"


def test_wrap_future_of_other_thread_completion(mod):
    # The executor completes the future on its thread; the loop is woken
    # through call_soon_threadsafe.
    go = threading.Event()
    ex = mod.ThreadPoolExecutor(1)
    try:
        async def main():
            f = ex.submit(lambda: must_wait(go) or "late")
            af = asyncio.wrap_future(f)
            asyncio.get_running_loop().call_later(0.05, go.set)
            return await af

        assert run(main()) == "late"
    finally:
        go.set()
        ex.shutdown()


def test_asyncio_accepts_as_stdlib_executor(cf):
    ex = cf.ThreadPoolExecutor(1)
    try:
        assert isinstance(ex, concurrent.futures.ThreadPoolExecutor)
        assert isinstance(ex.submit(int), concurrent.futures.Future)
    finally:
        ex.shutdown()
