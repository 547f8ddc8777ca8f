# Typing for cfutures.distributed: ClusterExecutor, an Executor whose calls
# run on a Dask cluster (the client is Dask's distributed.Client, typed Any:
# Dask is an optional dependency).
from collections.abc import Callable
from typing import Any, TypeVar, overload
from typing_extensions import ParamSpec, TypeVarTuple, Unpack

from ._base import Executor, Future

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")

INSTALL_HINT: str

class ClusterExecutor(Executor):
    """An executor whose calls run on a Dask cluster."""
    @overload
    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        max_workers: int | None = None,
        initializer: Callable[[], object] | None = None,
        initargs: tuple[()] = (),
    ) -> None: ...
    @overload
    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        max_workers: int | None = None,
        initializer: Callable[[Unpack[_Ts]], object],
        initargs: tuple[Unpack[_Ts]],
    ) -> None: ...
    @property
    def client(self) -> Any: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
