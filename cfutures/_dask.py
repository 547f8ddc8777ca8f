"""cfutures._dask — the pieces of ClusterExecutor that are Dask's own types.

Imported only once `distributed` is known to be installed (cfutures.
distributed imports it when a ClusterExecutor is made), so that neither
`import cfutures` nor `import cfutures.distributed` needs Dask.  Dask
workers import this module by name to run the initializer plugin.
"""
import pickle

import cloudpickle
import dask
from distributed import Client, LocalCluster, WorkerPlugin


def dumps(obj):
    """`obj` pickled as Dask pickles a task: with pickle, by reference,
    where that works and names nothing of __main__ (which the other side
    does not have); with cloudpickle, by value, otherwise (lambdas,
    closures, the program's own functions).  Raises pickle's or
    cloudpickle's error, without Dask's logging of it."""
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:                   # noqa: B902 - cloudpickle may do it
        data = None
    if data is None or b"__main__" in data:
        data = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return data


class RunInitializer(WorkerPlugin):
    """Runs a ClusterExecutor's initializer(*initargs) once in each Dask
    worker: in the workers there when it is registered, and in every
    worker that joins later, before that worker takes a task.  What it
    raised stays on the worker's copy (`error`): Dask only logs the failure
    of a worker that joins later and gives it tasks all the same, so the
    executor's calls look here first (initializer_error)."""

    def __init__(self, name, initializer, initargs):
        self.name = name
        self.initializer = initializer
        self.initargs = initargs
        self.error = None

    def setup(self, worker):
        try:
            self.initializer(*self.initargs)
        except BaseException as exc:    # noqa: B902 - recorded, and Dask's to report
            self.error = exc
            raise


def initializer_error(worker, name):
    """None if the initializer of plugin `name` ran well on `worker`; else
    the exception it raised there, or one saying it never ran there."""
    plugin = worker.plugins.get(name)
    if plugin is None:
        return RuntimeError("the executor's initializer did not run on Dask worker %s"
                            % worker.address)
    return plugin.error


def start_local_cluster(n_workers):
    """A Dask cluster on this machine that stands in for a process pool:
    `n_workers` worker processes of one thread each, on the loopback
    interface, its web server (dashboard) on a free port.  Tasks are handed to the workers as soon as
    they are submitted (no scheduler-side queuing): an executor's tasks are
    independent, and queuing costs a scheduler round trip per task."""
    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=":0")


def connect(address_or_cluster):
    """A Client of its own for an executor; never the process's default
    client (the program's own Dask code keeps the one it made)."""
    return Client(address_or_cluster, set_as_default=False)


def watch(client, dask_future, report):
    """Call report(key, status, value) from the client's event loop when
    the task of `dask_future` has ended: 'finished' and its result,
    'error' and the exception Dask holds for it (a KilledWorker, say), or
    'cancelled' and Dask's CancelledError.

    It waits and fetches as distributed.as_completed(with_results=True)
    does, in a coroutine on the client's loop: no thread hop per task, and
    the fetches of tasks that end together go in one gather request."""
    async def track():
        try:
            value = await dask_future._result(raiseit=False)
            status = dask_future.status
            if status == "error":
                value = value[1]        # (type, exception, traceback)
        except BaseException as exc:    # noqa: B902 - e.g. a result it cannot unpickle
            status, value = "error", exc
        report(dask_future.key, status, value)

    client.loop.add_callback(track)
