# Typing for cfutures.process: ProcessPoolExecutor, as the stdlib's (whose
# subclass it is), with submit() returning cfutures' Future, max_tasks_per_child
# on every version, and the 3.14 terminate_workers()/kill_workers().
from collections.abc import Callable
from concurrent.futures import process as _std
from concurrent.futures.process import BrokenProcessPool as BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any, TypeVar, overload
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
    ) -> None: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    def terminate_workers(self) -> None: ...
    def kill_workers(self) -> None: ...

def __getattr__(name: str) -> Any: ...
