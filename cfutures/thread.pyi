# Typing for cfutures.thread: ThreadPoolExecutor, as the stdlib's (whose
# subclass it is), with submit() returning cfutures' Future and the
# keyword-only copy_context extension.
from collections.abc import Callable
from concurrent.futures import thread as _std
from concurrent.futures.thread import BrokenThreadPool as BrokenThreadPool
from typing import Any, TypeVar, overload
from typing_extensions import ParamSpec, TypeVarTuple, Unpack

from ._base import Executor, Future

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")

class ThreadPoolExecutor(Executor, _std.ThreadPoolExecutor):
    """Executes calls on a pool of worker threads."""
    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[[], object] | None = None,
        initargs: tuple[()] = (),
        *,
        copy_context: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        *,
        initializer: Callable[[Unpack[_Ts]], object],
        initargs: tuple[Unpack[_Ts]],
        copy_context: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self,
        max_workers: int | None,
        thread_name_prefix: str,
        initializer: Callable[[Unpack[_Ts]], object],
        initargs: tuple[Unpack[_Ts]],
        *,
        copy_context: bool = False,
    ) -> None: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...

def __getattr__(name: str) -> Any: ...
