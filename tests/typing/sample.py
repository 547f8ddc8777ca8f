"""A typed program using every public name of cfutures, checked by
tests/test_typing.py with `mypy --strict` (and pyright): every assert_type
must hold and nothing else may be reported."""
import asyncio
import concurrent.futures
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import thread as std_thread
from typing import Optional

from typing_extensions import assert_type

import cfutures
import cfutures._base
import cfutures.process
import cfutures.thread
from cfutures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    InvalidStateError,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    TimeoutError,
    as_completed,
    wait,
)
from cfutures.process import BrokenProcessPool
from cfutures.thread import BrokenThreadPool


def square(x: int) -> int:
    return x * x


def describe(x: int, label: str = "") -> str:
    return "%s%d" % (label, x)


def setup(name: str, count: int) -> None:
    pass


def futures_of_threads() -> None:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="t") as ex:
        f = ex.submit(square, 3)
        assert_type(f, Future[int])
        assert_type(f.result(timeout=1.0), int)
        assert_type(f.exception(), Optional[BaseException])
        assert_type(f.done() or f.running() or f.cancelled() or f.cancel(), bool)
        g = ex.submit(describe, 2, label="n")
        assert_type(g, Future[str])
        assert_type(ex.map(square, [1, 2, 3]), Iterator[int])
        assert_type(ex.map(square, [1, 2], timeout=5, chunksize=1, buffersize=2), Iterator[int])
        assert_type(ex.map(describe, [1, 2], timeout=5, buffersize=2, ordered=False),
                    Iterator[str])
        done, not_done = wait([f], timeout=1, return_when=FIRST_COMPLETED)
        assert_type(done, set[concurrent.futures.Future[int]])
        for h in as_completed([f], timeout=1):
            assert_type(h, concurrent.futures.Future[int])
        f.add_done_callback(lambda fut: print(fut.result()))
        ex.shutdown(wait=True, cancel_futures=False)
    ThreadPoolExecutor(2, "p", setup, ("a", 1))
    ThreadPoolExecutor(initializer=setup, initargs=("a", 1))
    ThreadPoolExecutor(2, "p", setup, ("a", 1), copy_context=True)
    ThreadPoolExecutor(initializer=setup, initargs=("a", 1), copy_context=True)
    with ThreadPoolExecutor(2, copy_context=True) as in_context:
        assert_type(in_context, ThreadPoolExecutor)
        assert_type(in_context.submit(square, 3), Future[int])
        assert_type(list(in_context.map(square, [1], ordered=True)), list[int])
    std: std_thread.ThreadPoolExecutor = ThreadPoolExecutor()      # a stdlib executor
    std.shutdown()
    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor())             # asyncio takes it
    loop.close()


def futures_of_processes() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context, max_tasks_per_child=10) as ex:
        assert_type(ex.submit(square, 2), Future[int])
        assert_type(list(ex.map(square, range(4), chunksize=2, buffersize=4)), list[int])
        assert_type(ex.map(square, range(4), chunksize=2, ordered=False), Iterator[int])
        ex.terminate_workers()
        ex.kill_workers()
    ProcessPoolExecutor(initializer=setup, initargs=("x", 2))
    with ProcessPoolExecutor(2, task_timeout=1.5, isolate_crashes=True, cancel_running=True,
                             max_memory_per_child=2**30, pickler="cloudpickle") as guarded:
        limited = guarded.options(timeout=0.5)
        assert_type(limited.submit(square, 2), Future[int])
        assert_type(list(limited.map(square, range(4), chunksize=2)), list[int])
        try:
            guarded.submit(square, 3).result()
        except cfutures.process.WorkerDied as died:
            assert_type(died.pid, Optional[int])
            assert_type(died.signal, Optional[str])
            broken: BrokenProcessPool = died      # a subclass of the stdlib's error
            print(broken)


def futures_of_a_cluster() -> None:
    from cfutures.distributed import ClusterExecutor
    with ClusterExecutor("tcp://127.0.0.1:8786", max_workers=4) as ex:
        assert_type(ex, ClusterExecutor)
        assert_type(ex.submit(square, 2), Future[int])
        assert_type(list(ex.map(square, range(4), chunksize=2, ordered=False)), list[int])
        print(ex.client)
    ClusterExecutor(initializer=setup, initargs=("x", 2))


def plain_futures() -> None:
    f: Future[int] = Future()
    f.set_running_or_notify_cancel()
    f.set_result(1)
    e: Future[int] = Future()
    e.set_exception(ValueError("x"))
    stdlib_future: concurrent.futures.Future[int] = f          # a stdlib future
    assert_type(wait([stdlib_future, e], return_when=FIRST_EXCEPTION).not_done,
                set[concurrent.futures.Future[int]])
    assert_type(wait([f], return_when=ALL_COMPLETED), cfutures._base.DoneAndNotDoneFutures[int])
    assert_type(cfutures.Future[int](), concurrent.futures.Future[int])
    assert_type(cfutures.__version__, str)
    assert_type(cfutures.__all__, tuple[str, ...])


def errors() -> None:
    caught: tuple[type[BaseException], ...] = (
        BrokenExecutor, CancelledError, InvalidStateError, TimeoutError,
        BrokenThreadPool, BrokenProcessPool)
    assert issubclass(BrokenProcessPool, BrokenExecutor) and caught


class InlineExecutor(Executor):
    """A user's executor: submit() returns a stdlib-typed future, as allowed."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def user_executor_map() -> None:
    assert_type(InlineExecutor().map(square, [1, 2], buffersize=1, ordered=False),
                Iterator[int])


def modules() -> None:
    assert_type(cfutures.thread.ThreadPoolExecutor, type[ThreadPoolExecutor])
    assert_type(cfutures.process.ProcessPoolExecutor, type[ProcessPoolExecutor])
    assert_type(cfutures._base.Future[int](), Future[int])
