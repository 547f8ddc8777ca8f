# Typing for cfutures.process: ProcessPoolExecutor, as the stdlib's (whose
# subclass it is), with submit() returning cfutures' Future, max_tasks_per_child
# on every version, the 3.14 terminate_workers()/kill_workers(), and the
# keyword-only options beyond the stdlib.
from collections.abc import Callable
from concurrent.futures import process as _std
from concurrent.futures.process import BrokenProcessPool as BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any, Literal, TypeVar, overload
from typing_extensions import ParamSpec, TypeVarTuple, Unpack

from ._base import Executor, Future

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")

class ProcessPoolExecutor(Executor, _std.ProcessPoolExecutor):
    """Executes calls in a pool of worker processes."""
    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: BaseContext | None = None,
        initializer: Callable[[], object] | None = None,
        initargs: tuple[()] = (),
        *,
        max_tasks_per_child: int | None = None,
        task_timeout: float | None = None,
        isolate_crashes: bool = False,
        cancel_running: bool = False,
        max_memory_per_child: int | None = None,
        pickler: Literal["pickle", "cloudpickle"] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: BaseContext | None = None,
        *,
        initializer: Callable[[Unpack[_Ts]], object],
        initargs: tuple[Unpack[_Ts]],
        max_tasks_per_child: int | None = None,
        task_timeout: float | None = None,
        isolate_crashes: bool = False,
        cancel_running: bool = False,
        max_memory_per_child: int | None = None,
        pickler: Literal["pickle", "cloudpickle"] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        max_workers: int | None,
        mp_context: BaseContext | None,
        initializer: Callable[[Unpack[_Ts]], object],
        initargs: tuple[Unpack[_Ts]],
        *,
        max_tasks_per_child: int | None = None,
        task_timeout: float | None = None,
        isolate_crashes: bool = False,
        cancel_running: bool = False,
        max_memory_per_child: int | None = None,
        pickler: Literal["pickle", "cloudpickle"] | None = None,
    ) -> None: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    def terminate_workers(self) -> None: ...
    def kill_workers(self) -> None: ...
    def options(self, *, timeout: float | None = None) -> _TaskOptions: ...

class _TaskOptions(Executor):
    """ProcessPoolExecutor.options(): the same pool, another per-task limit."""
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...

class WorkerDied(BrokenProcessPool):
    """A worker process died while it ran a task."""
    pid: int | None
    exitcode: int | None
    signal: str | None
    def __init__(
        self,
        message: str,
        pid: int | None = None,
        exitcode: int | None = None,
        signal: str | None = None,
    ) -> None: ...

def __getattr__(name: str) -> Any: ...
