"""Side-by-side benchmarks: cfutures against the stdlib's concurrent.futures.

Run from the repository root:

    python3 benchmarks/run.py                   # full run, 7 interleaved repetitions
    python3 benchmarks/run.py --quick           # short run (< 30 s), the README's demo
    python3 benchmarks/run.py --markdown        # table for pasting into the README
    python3 benchmarks/run.py --filter future_  # only workloads whose name contains it
    python3 benchmarks/run.py --only stdlib     # measure one implementation alone

Each workload is measured for every implementation in one run, interleaved
(the order alternates per repetition) so drift in load or CPU frequency hits
all alike. The table shows medians and the ratio stdlib / cfutures, oriented
so that above 1 means cfutures is better: for times it is the speed-up, for
bytes how many times smaller cfutures is, and where higher is better (MiB/s,
a speed-up) it is cfutures / stdlib. Every sample goes to
benchmarks/results.json (``--json PATH`` to change, ``--no-json`` to skip).

The process-pool workloads (ppool_*) also measure loky and mpire, as extra
columns, when they are installed: pip install -r benchmarks/requirements.txt.
Their tasks are in benchmarks/bench_tasks.py, importable by any worker.

Adding a workload is one decorated function ``(mod, scale) -> dict`` that
returns ``{'value': per-op seconds (or bytes), ...parameters}``; ``mod`` is
the implementation's module and ``scale`` (1.0 full, less with --quick)
shrinks iteration counts. A size that defines a workload does not shrink
(as_completed over 100k futures); a batch that only sets how long it runs
does, its name giving the full run's size and its ``n`` the size measured.
A workload may measure extra figures besides its value (the parent's peak
RSS, its CPU seconds): it declares them, ``metrics={name: Metric(...)}``,
and returns ``'metrics': {name: value}``; they get a second table, of
medians per implementation, and their samples go to the JSON too.
"""

import argparse
import collections
import datetime
import gc
import importlib
import importlib.metadata
import itertools
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import sysconfig
import threading
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
# `python3 benchmarks/run.py` puts benchmarks/ on sys.path, not the repository
# root: append the root so an in-place build is found, while an installed
# cfutures still wins over an unbuilt source tree. The JSON records which ran.
sys.path.append(os.path.dirname(HERE))
# Process-pool tasks are pickled by reference to bench_tasks.py: a worker
# that starts afresh (spawn, forkserver, loky) finds it through PYTHONPATH.
if HERE not in sys.path:
    sys.path.insert(0, HERE)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (HERE, os.environ.get("PYTHONPATH")) if p)

import bench_tasks  # noqa: E402

# (label, module). The ratio is always stdlib / cfutures. PEERS are measured
# as extra columns when installed and skipped silently when not; a workload a
# peer cannot run (no such API) raises Unsupported for it. A peer is seen
# through a Peer holding only what PEER_API gives: its own process pool (none
# has a Future/wait of its own: loky's are the stdlib's, its Future a thin
# subclass), and loky's as_completed, which is the stdlib's re-exported: what
# a loky user calls on its futures. mpire has no futures to gather.
IMPLEMENTATIONS = [("stdlib", "concurrent.futures"), ("cfutures", "cfutures")]
PEERS = [("loky", "loky"), ("mpire", "mpire")]
PEER_API = {
    # Not get_reusable_executor(): it caches its pool from sample to sample.
    "loky": lambda loky: {"ProcessPoolExecutor": loky.ProcessPoolExecutor,
                          "as_completed": loky.as_completed},
    "mpire": lambda mpire: {"ProcessPoolExecutor": MpireExecutor},
}


class Unsupported(Exception):
    """Raised by a workload for an implementation that lacks the API it uses."""


class Peer:
    """A peer's module as the workloads see it: the names given, and
    Unsupported for any other, so a workload that uses one is skipped."""

    def __init__(self, module, **names):
        self.__name__, self.__file__ = module.__name__, module.__file__
        try:
            self.__version__ = importlib.metadata.version(module.__name__)
        except importlib.metadata.PackageNotFoundError:
            self.__version__ = None
        self.__dict__.update(names)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise Unsupported(name)


class MpireExecutor:
    """mpire.WorkerPool behind the executor calls the ppool_ workloads make:
    map() is WorkerPool.map, submit() its apply_async. keep_alive, or each
    map() would start and stop the workers."""

    def __init__(self, max_workers):
        import mpire
        self._pool = mpire.WorkerPool(n_jobs=max_workers, keep_alive=True)

    def submit(self, fn, *args):
        return MpireFuture(self._pool.apply_async(fn, args))

    def map(self, fn, iterable, chunksize=1):
        return self._pool.map(fn, iterable, chunk_size=chunksize)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.terminate()


class MpireFuture:
    """An mpire AsyncResult, whose get() is result()."""

    def __init__(self, async_result):
        self.result = async_result.get


Workload = collections.namedtuple("Workload", "name unit better warmup metrics requires fn")
WORKLOADS = {}

# An extra figure a workload measures besides its value, e.g. the parent's
# peak RSS during a transfer. unit as for a workload's; label says what it is
# in the table. Its samples and medians are kept like the value's; the table
# gives no ratio for it (a peak of 200 MiB against 0.1 MiB is not a 2000×).
Metric = collections.namedtuple("Metric", "unit label")


def workload(name, unit="s", better="lower", warmup=True, metrics=None, requires=()):
    """Register fn(mod, scale) -> {'value': ..., **params} as a workload.
    unit: "s" (per op), "bytes", or any other label, e.g. "MiB/s".
    warmup=False: no unmeasured first run, for a workload that warms up
    what it times itself (a fresh process pool every sample).
    metrics: {name: Metric} it may also return, as {'metrics': {name:
    value}}; one it cannot measure (no /proc) it leaves out.
    requires: modules it needs besides the implementations (numpy); the run
    skips it, saying so, where one is not installed."""
    assert better in ("lower", "higher")

    def register(fn):
        WORKLOADS[name] = Workload(name, unit, better, warmup, dict(metrics or {}),
                                   tuple(requires), fn)
        return fn
    return register


# How a missing requirement is named in the message that skips its workloads.
REQUIREMENT_NAMES = {"numpy": "NumPy"}


def missing_requirements(workloads):
    """{module: [workload names]} for the required modules not installed."""
    import importlib.util
    missing = {}
    for wl in workloads:
        for modname in wl.requires:
            if importlib.util.find_spec(modname) is None:
                missing.setdefault(modname, []).append(wl.name)
    return missing


class no_gc:
    """Keep the cyclic collector out of timed regions: its pauses land on
    whichever implementation happens to cross a threshold, which is noise."""

    def __enter__(self):
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            gc.enable()


def count(n, scale):
    return max(1, int(n * scale))


def _noop(_future):
    pass


# --------------------------------------------------------------- workloads

# ------------------------------------------------------------------ start-up

def _import_seconds(mod, statement, n):
    """Median seconds `statement` takes in a fresh interpreter, timed inside
    it (interpreter start-up is the same for all and not counted).  Only for
    the drop-ins: a peer's import is not the same statement."""
    import subprocess
    if isinstance(mod, Peer):
        raise Unsupported("import")
    code = ("import time; t = time.perf_counter(); %s; "
            "print(time.perf_counter() - t)" % statement)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # Bytecode caches, as an installed package has (the stdlib's are there):
    # a first, untimed interpreter writes them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times = [float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                  capture_output=True, text=True).stdout)
             for _ in range(n + 1)]
    return statistics.median(times[1:])


@workload("import_module", warmup=False)
def import_module(mod, scale):
    # `import concurrent.futures` / `import cfutures`: neither imports its
    # executors until they are used.
    n = count(5, scale)
    return {"value": _import_seconds(mod, "import %s" % mod.__name__, n), "interpreters": n}


@workload("import_thread_pool", warmup=False)
def import_thread_pool(mod, scale):
    n = count(5, scale)
    return {"value": _import_seconds(mod, "from %s import ThreadPoolExecutor" % mod.__name__, n),
            "interpreters": n}


# ------------------------------------------------------------------ futures

@workload("future_roundtrip")
def future_roundtrip(mod, scale):
    n = count(200_000, scale)
    Future = mod.Future
    with no_gc():
        t0 = time.perf_counter()
        for _ in itertools.repeat(None, n):
            f = Future()
            f.set_result(1)
            f.result()
        t1 = time.perf_counter()
    return {"value": (t1 - t0) / n, "n": n}


@workload("future_3_callbacks")
def future_3_callbacks(mod, scale):
    n = count(100_000, scale)
    Future, cb = mod.Future, _noop
    with no_gc():
        t0 = time.perf_counter()
        for _ in itertools.repeat(None, n):
            f = Future()
            f.add_done_callback(cb)
            f.add_done_callback(cb)
            f.add_done_callback(cb)
            f.set_result(1)
            f.result()
        t1 = time.perf_counter()
    return {"value": (t1 - t0) / n, "n": n}


@workload("as_completed_100k_done")
def as_completed_100k_done(mod, scale):
    # The size is the workload's definition (as_completed builds sets over
    # all futures, so per-future cost may depend on it): it does not scale.
    n = 100_000
    with no_gc():
        fs = [mod.Future() for _ in range(n)]
        for f in fs:
            f.set_result(None)
        as_completed = mod.as_completed
        t0 = time.perf_counter()
        for _ in as_completed(fs):
            pass
        t1 = time.perf_counter()
    return {"value": (t1 - t0) / n, "n": n}


@workload("wait_first_completed_1000")
def wait_first_completed_1000(mod, scale):
    # A helper thread, parked on an Event, completes one random future (not
    # the first, so a scan that stops early gains nothing) while the main
    # thread sits in wait(): this measures install-waiters + one cross-thread
    # wake-up + clean-up, the cost a real FIRST_COMPLETED loop pays.
    n, calls = 1000, count(200, scale)
    rng = random.Random(1000)  # same targets for every implementation
    go, slot = threading.Event(), [None]

    def complete_one():
        while True:
            go.wait()
            go.clear()  # before set_result, so it precedes the next go.set()
            target = slot[0]
            if target is None:
                return
            target.set_result(None)

    wait, FIRST_COMPLETED = mod.wait, mod.FIRST_COMPLETED
    helper = threading.Thread(target=complete_one, name="bench-completer",
                              daemon=True)
    helper.start()
    total = 0.0
    try:
        with no_gc():
            for _ in range(calls):
                fs = [mod.Future() for _ in range(n)]
                slot[0] = target = fs[rng.randrange(1, n)]
                go.set()
                t0 = time.perf_counter()
                done, _ = wait(fs, return_when=FIRST_COMPLETED)
                t1 = time.perf_counter()
                total += t1 - t0
                if target not in done:
                    raise RuntimeError("wait() returned without the completed future")
    finally:
        slot[0] = None
        go.set()
        helper.join()
    return {"value": total / calls, "n": n, "calls": calls}


@workload("bytes_per_pending_future", unit="bytes")
def bytes_per_pending_future(mod, scale):
    # tracemalloc sees what goes through Python's allocators (PyMem_*,
    # PyObject_*), which is how both implementations allocate futures; raw
    # malloc() would be invisible to it. The list is allocated before the
    # baseline so only the futures themselves are counted. Block sizes are
    # exact, so a smaller count (--quick) gives the same figure, sooner:
    # tracing makes every allocation several times slower.
    n = count(100_000, scale)
    fs = [None] * n
    Future = mod.Future
    gc.collect()
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    try:
        with no_gc():
            before = tracemalloc.get_traced_memory()[0]
            for i in range(n):
                fs[i] = Future()
            after = tracemalloc.get_traced_memory()[0]
    finally:
        if started_here:
            tracemalloc.stop()
    del fs
    return {"value": (after - before) / n, "n": n}


# Thread pool workloads. The pool is created, and its workers started, outside
# the timed region, except in the sleep workload, whose subject is the whole
# life of a pool. Tasks are the builtin int: int() and int(i) do nothing
# worth timing, so what is left is the pool's own cost.

def _start_workers(ex, workers):
    """Start all of ex's workers before timing. Both implementations start a
    worker per submit that finds none idle: each warm-up task holds its
    worker at a barrier until all have arrived, so none is idle meanwhile."""
    barrier = threading.Barrier(workers)
    for f in [ex.submit(barrier.wait, 10) for _ in range(workers)]:
        f.result()


def _submit_result(mod, scale, workers):
    # All tasks are submitted before the first result is awaited, so the
    # backlog grows to n: --quick shrinks it, and the stdlib's per-task cost
    # with it (~10 instead of ~14 us here). Compare full runs with full runs.
    n = count(100_000, scale)
    with mod.ThreadPoolExecutor(workers) as ex:
        _start_workers(ex, workers)
        submit = ex.submit
        with no_gc():
            t0 = time.perf_counter()
            fs = [submit(int) for _ in itertools.repeat(None, n)]
            for f in fs:
                f.result()
            t1 = time.perf_counter()
    return {"value": (t1 - t0) / n, "n": n, "workers": workers}


@workload("tpool_submit_result_100k_1w")
def tpool_submit_result_100k_1w(mod, scale):
    return _submit_result(mod, scale, 1)


@workload("tpool_submit_result_100k_4w")
def tpool_submit_result_100k_4w(mod, scale):
    return _submit_result(mod, scale, 4)


@workload("tpool_map_200k_4w")
def tpool_map_200k_4w(mod, scale):
    n, workers = count(200_000, scale), 4
    with mod.ThreadPoolExecutor(workers) as ex:
        _start_workers(ex, workers)
        with no_gc():
            t0 = time.perf_counter()
            out = list(ex.map(int, range(n)))
            t1 = time.perf_counter()
    if out[-1] != n - 1:
        raise RuntimeError("map() returned the wrong results")
    return {"value": (t1 - t0) / n, "n": n, "workers": workers}


@workload("tpool_roundtrip_latency")
def tpool_roundtrip_latency(mod, scale):
    # One task in flight at a time: submit, then wait for it, so the worker
    # is idle (parked, or about to be) whenever a task arrives. This is the
    # cost of a wake-up there and back, the floor of a request/reply pattern.
    n = count(2000, scale)
    with mod.ThreadPoolExecutor(1) as ex:
        _start_workers(ex, 1)
        submit = ex.submit
        with no_gc():
            t0 = time.perf_counter()
            for _ in itertools.repeat(None, n):
                submit(int).result()
            t1 = time.perf_counter()
    return {"value": (t1 - t0) / n, "n": n, "workers": 1}


@workload("tpool_sleep_200x10ms_50w")
def tpool_sleep_200x10ms_50w(mod, scale):
    # The value is the whole batch, not per task: a fresh pool from its
    # creation (its threads start on demand) to the end of its shutdown.
    # Sleeping releases the GIL, so both should take about 4 rounds of 10 ms
    # plus thread start-up: this guards against a regression, ratio ~1. At
    # ~50 ms a sample it does not need to scale.
    n, workers, sleep = 200, 50, 0.01
    with no_gc():
        t0 = time.perf_counter()
        with mod.ThreadPoolExecutor(workers) as ex:
            for f in [ex.submit(time.sleep, sleep) for _ in range(n)]:
                f.result()
        t1 = time.perf_counter()
    return {"value": t1 - t0, "n": n, "workers": workers, "sleep_s": sleep}


# Process pool workloads. stdlib and cfutures use the running Python's default
# start method (fork on Linux before 3.14), the peers their own (loky starts
# fresh interpreters, mpire forks). The pool is created, and all its workers
# started, outside the timed region, except in time_to_first_result, whose
# subject is the start-up. A sample that starts its pool before timing has
# warmed it up itself: warmup=False spares the runner's unmeasured pass (one
# in four under --quick). Tasks come from bench_tasks.

MiB = 1 << 20


def _status_bytes(key):
    """A size in /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError("no %s in /proc/self/status" % key)


class peak_rss:
    """The parent's peak RSS over a with block, above its RSS at the start:
    Linux's high-water mark (VmHWM), reset on entry by writing 5 to
    /proc/self/clear_refs (as tests/test_process_lifecycle.py does). RSS
    sees every copy however it was made, by any thread (a pickle in a C
    buffer, the stdlib's feeder thread's), and shared memory the parent maps
    (cfutures maps what it receives; what it sends it writes into a memfd it
    does not map, which counts in the worker's RSS, not here). Where
    /proc cannot be read or reset, metrics() is empty: the table shows -."""

    def __enter__(self):
        self.base = self.peak = None
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.base = _status_bytes("VmRSS")
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        if self.base is not None:
            try:
                self.peak = _status_bytes("VmHWM")
            except OSError:
                pass

    def metrics(self):
        if self.peak is None:
            return {}
        return {"peak_rss_mib": (self.peak - self.base) / MiB}


# For the big-payload workloads, which measure it over their timed transfers.
PEAK_RSS = {"peak_rss_mib": Metric("MiB", "parent peak RSS over its start")}


def _start_processes(ex, workers):
    """Start all of ex's worker processes before timing. Under fork the
    stdlib starts them all at the first submit, otherwise one per submit that
    finds none idle: each warm-up task keeps its worker busy for a moment,
    so the next lands on another, until every worker has answered."""
    pids = set()
    for _ in range(100):
        fs = [ex.submit(bench_tasks.pid_after, 0.01) for _ in range(workers)]
        pids.update(f.result() for f in fs)
        if len(pids) == workers:
            return
    raise RuntimeError("the pool did not start %d workers" % workers)


def _map_tiny(mod, scale, chunksize):
    n, workers = count(20_000, scale), 2
    with mod.ProcessPoolExecutor(workers) as ex:
        _start_processes(ex, workers)
        with no_gc():
            t0 = time.perf_counter()
            out = list(ex.map(bench_tasks.tiny, range(n), chunksize=chunksize))
            t1 = time.perf_counter()
    if out[-1] != n:
        raise RuntimeError("map() returned the wrong results")
    return {"value": (t1 - t0) / n, "n": n, "workers": workers,
            "chunksize": chunksize}


@workload("ppool_map_20k_tiny_chunk1", warmup=False)
def ppool_map_20k_tiny_chunk1(mod, scale):
    return _map_tiny(mod, scale, 1)


@workload("ppool_map_20k_tiny_chunk256", warmup=False)
def ppool_map_20k_tiny_chunk256(mod, scale):
    return _map_tiny(mod, scale, 256)


@workload("ppool_submit_as_completed_100k_tiny", warmup=False)
def ppool_submit_as_completed_100k_tiny(mod, scale):
    # The other way to a pool's results: a submit() per task, each with its
    # own future, all submitted before as_completed() gathers them in the
    # order they finish; 2 workers, the time per task. As in the thread
    # pool's submit workloads, the backlog grows to n, and --quick's 10,000
    # is not the full run's per-task cost: compare full runs with full runs.
    as_completed = mod.as_completed  # first: a peer without it starts no pool
    n, workers = count(100_000, scale), 2
    with mod.ProcessPoolExecutor(workers) as ex:
        _start_processes(ex, workers)
        submit, tiny = ex.submit, bench_tasks.tiny
        with no_gc():
            t0 = time.perf_counter()
            fs = [submit(tiny, i) for i in range(n)]
            total = sum(f.result() for f in as_completed(fs))
            t1 = time.perf_counter()
    if total != n * (n + 1) // 2:
        raise RuntimeError("as_completed() gave the wrong results")
    return {"value": (t1 - t0) / n, "n": n, "workers": workers}


@workload("ppool_roundtrip_latency", warmup=False)
def ppool_roundtrip_latency(mod, scale):
    # One task in flight at a time: pickle, send, run, send back, unpickle,
    # with every hand-off between threads and processes on the way.
    n = count(500, scale)
    with mod.ProcessPoolExecutor(1) as ex:
        _start_processes(ex, 1)
        submit, tiny = ex.submit, bench_tasks.tiny
        with no_gc():
            t0 = time.perf_counter()
            for _ in itertools.repeat(None, n):
                submit(tiny, 1).result()
            t1 = time.perf_counter()
    return {"value": (t1 - t0) / n, "n": n, "workers": 1}


@workload("ppool_50MB_arg", unit="MiB/s", better="higher", warmup=False,
          metrics=PEAK_RSS)
def ppool_50MB_arg(mod, scale):
    # The size defines the workload; the repetitions only set how long it
    # runs. The bytes are made after the fork, and written, not calloc's
    # zero pages, which would read faster than any real data.
    size, reps = 50 * MiB, count(4, scale)
    with mod.ProcessPoolExecutor(1) as ex:
        _start_processes(ex, 1)
        data = b"\x5a" * size
        with no_gc(), peak_rss() as rss:
            t0 = time.perf_counter()
            for _ in range(reps):
                if ex.submit(bench_tasks.length, data).result() != size:
                    raise RuntimeError("the worker received the wrong size")
            t1 = time.perf_counter()
    return {"value": reps * size / MiB / (t1 - t0), "bytes": size,
            "reps": reps, "workers": 1, "metrics": rss.metrics()}


@workload("ppool_50MB_result", unit="MiB/s", better="higher", warmup=False,
          metrics=PEAK_RSS)
def ppool_50MB_result(mod, scale):
    # The worker makes the bytes once, before timing: only the way back is
    # measured, from its pickling to the parent's unpickled copy.
    size, reps = 50 * MiB, count(4, scale)
    with mod.ProcessPoolExecutor(1) as ex:
        _start_processes(ex, 1)
        ex.submit(bench_tasks.make_payload, size).result()
        with no_gc(), peak_rss() as rss:
            t0 = time.perf_counter()
            for _ in range(reps):
                if len(ex.submit(bench_tasks.payload, size).result()) != size:
                    raise RuntimeError("the parent received the wrong size")
            t1 = time.perf_counter()
    return {"value": reps * size / MiB / (t1 - t0), "bytes": size,
            "reps": reps, "workers": 1, "metrics": rss.metrics()}


# NumPy arrays: the case the shared memory is for (protocol 5's out-of-band
# buffers of 64 KiB and more; cfutures' results come back as arrays over the
# shared memory, with no copy). The sizes define the workloads and do not
# shrink; the repetitions only set how long they run. One worker, as for the
# 50 MB bytes. The receiver checks what arrived by its size and last item
# (summary()), not by reading it all, which would add the same read to all.

GiB = 1 << 30


def _arrays_arg(mod, size, count, reps):
    # The arrays are made after the fork, written (arange), fresh in every
    # sample: the parent keeps none from one to the next. The worker answers
    # with summary(), three ints, having read a byte of every page. Two
    # untimed transfers first: the steady state is measured, not a pool's
    # first big calls (cfutures maps and keeps shared memory then: its first
    # transfer of 200 MB took 2.5x as long as the next ones, here).
    total = size * (count or 1)
    with mod.ProcessPoolExecutor(1) as ex:
        _start_processes(ex, 1)
        data = bench_tasks.arrays(size, count)
        expected = bench_tasks.summary(data)
        summary = bench_tasks.summary
        for _ in range(2):
            ex.submit(summary, data).result()
        with no_gc(), peak_rss() as rss:
            t0 = time.perf_counter()
            for _ in range(reps):
                if ex.submit(summary, data).result() != expected:
                    raise RuntimeError("the worker received the wrong arrays")
            t1 = time.perf_counter()
    return {"value": reps * total / GiB / (t1 - t0), "bytes": total,
            "arrays": count or 1, "reps": reps, "workers": 1,
            "metrics": rss.metrics()}


def _arrays_result(mod, size, count, reps):
    # The worker makes the arrays once, before timing, and returns the same
    # ones each rep: only the way back is measured, from its pickling to the
    # parent's arrays (for cfutures, views of the shared memory), a byte of
    # every page read. Two untimed transfers first, as for the arguments.
    total = size * (count or 1)
    with mod.ProcessPoolExecutor(1) as ex:
        _start_processes(ex, 1)
        expected = ex.submit(bench_tasks.make_array_payload, size, count).result()
        payload, summary = bench_tasks.array_payload, bench_tasks.summary
        for _ in range(2):
            summary(ex.submit(payload, size, count).result())
        with no_gc(), peak_rss() as rss:
            t0 = time.perf_counter()
            for _ in range(reps):
                if summary(ex.submit(payload, size, count).result()) != expected:
                    raise RuntimeError("the parent received the wrong arrays")
            t1 = time.perf_counter()
    return {"value": reps * total / GiB / (t1 - t0), "bytes": total,
            "arrays": count or 1, "reps": reps, "workers": 1,
            "metrics": rss.metrics()}


@workload("ppool_200MB_array_arg", unit="GiB/s", better="higher", warmup=False,
          metrics=PEAK_RSS, requires=("numpy",))
def ppool_200MB_array_arg(mod, scale):
    # One array of 200 MiB as the argument.
    return _arrays_arg(mod, 200 * MiB, None, count(2, scale))


@workload("ppool_200MB_array_result", unit="GiB/s", better="higher", warmup=False,
          metrics=PEAK_RSS, requires=("numpy",))
def ppool_200MB_array_result(mod, scale):
    return _arrays_result(mod, 200 * MiB, None, count(2, scale))


@workload("ppool_1000x100KB_arrays_arg", unit="GiB/s", better="higher", warmup=False,
          metrics=PEAK_RSS, requires=("numpy",))
def ppool_1000x100KB_arrays_arg(mod, scale):
    # A list of 1,000 arrays of 100 KiB (~98 MiB): each is under the 128
    # KiB at which cfutures sends a buffer out of band, so the list goes as
    # one big pickle (through shared memory as such).
    return _arrays_arg(mod, 100 * 1024, 1000, count(4, scale))


@workload("ppool_1000x100KB_arrays_result", unit="GiB/s", better="higher", warmup=False,
          metrics=PEAK_RSS, requires=("numpy",))
def ppool_1000x100KB_arrays_result(mod, scale):
    return _arrays_result(mod, 100 * 1024, 1000, count(4, scale))


@workload("ppool_cpu_speedup_2w", unit="×", better="higher", warmup=False,
          metrics={"parent_cpu_s": Metric("s", "parent CPU time, pool phase"),
                   "worker_gap_s": Metric("s", "worker idle between its tasks (median)")})
def ppool_cpu_speedup_2w(mod, scale):
    # The speed-up of 16 CPU-bound tasks of ~0.1 s (~6 ms under --quick) on
    # 2 workers: the CPU seconds the tasks took, each timed by its own
    # thread in its worker, over the pool's wall time. Near 2 on two idle
    # cores, less by all the pool costs: the parent's threads taking a core
    # from a worker, a worker idle between tasks, a late start or a late
    # last result. Both are measured in the same phase so the machine's
    # speed cancels: here one task's time swings between 150 and 250 ms
    # from one second to the next (the host's other guests), which made the
    # earlier measure (serial time before the pool phase / pool time)
    # swing by ±25% per sample.
    # parent_cpu_s: the parent's CPU seconds over the pool phase, every
    # thread of it (the main thread waiting, the stdlib's management and
    # feeder threads, cfutures' I/O thread), the workers not: on two cores
    # busy with the tasks, what the parent burns is taken from them.
    # worker_gap_s: the median time a worker waits between the end of one
    # task and the start of its next (result sent, next call received):
    # the pool's hand-off, free of the tasks' own speed.
    tasks, workers = 16, 2
    loop = count(1_000_000, scale)
    expected = bench_tasks.spin(loop)
    with mod.ProcessPoolExecutor(workers) as ex:
        _start_processes(ex, workers)
        with no_gc():
            c1 = time.process_time()
            t1 = time.perf_counter()
            out = list(ex.map(bench_tasks.timed_spin, [loop] * tasks))
            t2 = time.perf_counter()
            c2 = time.process_time()
    if any(value != expected for value, *_ in out):
        raise RuntimeError("map() returned the wrong results")
    by_worker = collections.defaultdict(list)
    for _, pid, start, end, _ in out:
        by_worker[pid].append((start, end))
    gaps = [b[0] - a[1] for spans in by_worker.values()
            for a, b in zip(sorted(spans), sorted(spans)[1:])]
    return {"value": sum(cpu for *_, cpu in out) / (t2 - t1), "tasks": tasks,
            "loop": loop, "workers": workers,
            "metrics": {"parent_cpu_s": c2 - c1,
                        "worker_gap_s": statistics.median(gaps) if gaps else None}}


@workload("ppool_time_to_first_result")
def ppool_time_to_first_result(mod, scale):
    # From the constructor to the first result, worker start-up included; the
    # shutdown (leaving the with block) is not timed. The runner's warm-up
    # pass stays: the constructor is timed, so lazy imports must be done.
    pools, workers = count(3, scale), 2
    total = 0.0
    with no_gc():
        for _ in range(pools):
            t0 = time.perf_counter()
            with mod.ProcessPoolExecutor(workers) as ex:
                ex.submit(bench_tasks.tiny, 1).result()
                t1 = time.perf_counter()
            total += t1 - t0
    return {"value": total / pools, "pools": pools, "workers": workers}


# ------------------------------------------------------------------ runner

def load_implementations(only):
    impls = []
    for label, modname in IMPLEMENTATIONS + PEERS:
        if only and label not in only:
            continue
        try:
            mod = importlib.import_module(modname)
            # An unbuilt source tree (cfutures/ with no __init__.py yet)
            # imports as an empty namespace package: that is not importable.
            if getattr(mod, "__file__", None) is None:
                raise ImportError("%s is an empty namespace package" % modname)
        except ImportError as e:
            if (label, modname) in PEERS:
                continue
            sys.exit("cannot import %s (%s); build it first, or measure the "
                     "others alone with --only" % (modname, e))
        if (label, modname) in PEERS:
            mod = Peer(mod, **PEER_API[label](mod))
        impls.append((label, mod))
    if not impls:
        sys.exit("--only matched no implementation (choose from %s)"
                 % ", ".join(l for l, _ in IMPLEMENTATIONS + PEERS))
    return impls


def run_once(wl, mod, scale):
    gc.collect()  # start each sample without the previous one's garbage
    try:
        return wl.fn(mod, scale)
    except Unsupported:
        return None


def run(workloads, impls, repeat, scale):
    samples = {wl.name: {label: [] for label, _ in impls} for wl in workloads}
    # metric_samples[workload][metric][label], aligned with samples: None
    # where a sample did not measure the metric.
    metric_samples = {wl.name: {m: {label: [] for label, _ in impls} for m in wl.metrics}
                      for wl in workloads}
    params = {}
    # Warm-up: first calls pay for imports, lazy type setup and cold caches.
    for wl in workloads:
        for label, mod in impls:
            if wl.warmup:
                run_once(wl, mod, scale)
    for rep in range(repeat):
        # Rotate the order each repetition (alternates for two), so neither
        # implementation always runs in the other's wake.
        k = rep % len(impls)
        order = impls[k:] + impls[:k]
        print("repetition %d/%d" % (rep + 1, repeat), file=sys.stderr, flush=True)
        for wl in workloads:
            for label, mod in order:
                result = run_once(wl, mod, scale)
                if result is not None:
                    samples[wl.name][label].append(result.pop("value"))
                    metrics = result.pop("metrics", {})
                    unknown = set(metrics) - set(wl.metrics)
                    if unknown:
                        raise RuntimeError("%s returned undeclared metrics %s"
                                           % (wl.name, sorted(unknown)))
                    for m, by_label in metric_samples[wl.name].items():
                        by_label[label].append(metrics.get(m))
                    params[wl.name] = result
    return samples, metric_samples, params


def oriented(stdlib, cfutures, better):
    """stdlib / cfutures, or its inverse where higher is better: above 1
    always means cfutures is better."""
    ratio = stdlib / cfutures
    return 1 / ratio if better == "higher" else ratio


def medians_of(samples):
    """{label: median} over each label's samples, None ones left out."""
    medians = {}
    for label, values in samples.items():
        values = [v for v in values if v is not None]
        if values:
            medians[label] = statistics.median(values)
    return medians


def summarize(workloads, impls, samples, metric_samples, params):
    results = {}
    for wl in workloads:
        medians = medians_of(samples[wl.name])
        ratio = spread = None
        if medians.get("stdlib") and medians.get("cfutures"):
            ratio = oriented(medians["stdlib"], medians["cfutures"], wl.better)
            # The spread: the ratio of each repetition's pair of samples
            # (measured back to back), lowest and highest.
            pairs = [oriented(a, b, wl.better)
                     for a, b in zip(samples[wl.name]["stdlib"], samples[wl.name]["cfutures"])
                     if a and b]
            spread = [min(pairs), max(pairs)] if pairs else None
        results[wl.name] = {"unit": wl.unit, "better": wl.better,
                            "params": params.get(wl.name, {}),
                            "samples": samples[wl.name], "median": medians,
                            "ratio": ratio, "ratio_spread": spread}
        if wl.metrics:
            results[wl.name]["metrics"] = {
                m: {"unit": metric.unit, "label": metric.label,
                    "samples": metric_samples[wl.name][m],
                    "median": medians_of(metric_samples[wl.name][m])}
                for m, metric in wl.metrics.items()}
    return results


def fmt_value(value, unit):
    if value is None:
        return "-"
    if unit == "bytes":
        return "%.0f B" % value
    if unit != "s":
        return "%.3g %s" % (value, unit)
    for factor, suffix in ((1, "s"), (1e3, "ms"), (1e6, "µs"), (1e9, "ns")):
        if value * factor >= 1:
            break
    return "%.3g %s" % (value * factor, suffix)


def table_rows(results, labels):
    header = (["workload", "measure"] + ["%s median" % l for l in labels]
              + ["ratio stdlib/cfutures", "ratio min–max"])
    rows = []
    for name, r in results.items():
        unit = "time/op" if r["unit"] == "s" else r["unit"]
        cells = [fmt_value(r["median"].get(l), r["unit"]) for l in labels]
        ratio = "-" if r["ratio"] is None else "%.2f×" % r["ratio"]
        spread = r.get("ratio_spread")
        spread = "-" if spread is None else "%.3g–%.3g" % tuple(spread)
        rows.append([name, unit] + cells + [ratio, spread])
    return header, rows


def metric_rows(results, labels):
    """The second table: one row per extra metric, its medians side by side."""
    header = ["workload", "extra metric"] + ["%s median" % l for l in labels]
    rows = []
    for name, r in results.items():
        for m in r.get("metrics", {}).values():
            rows.append([name, m["label"]]
                        + [fmt_value(m["median"].get(l), m["unit"]) for l in labels])
    return header, rows


def print_table(header, rows, markdown):
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for j, row in enumerate([header] + rows):
        # Names left-aligned, numbers right-aligned so their digits line up.
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def environment(impls, args, scale):
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "date": now.isoformat(timespec="seconds"), "python": sys.version,
        "python_implementation": platform.python_implementation(),
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "argv": sys.argv[1:], "quick": args.quick, "repeat": args.repeat,
        "scale": scale, "start_method": multiprocessing.get_start_method(),
        "modules": {label: {"name": mod.__name__,
                            "version": getattr(mod, "__version__", None),
                            "file": getattr(mod, "__file__", None)}
                    for label, mod in impls},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, help="repetitions (default 7, --quick 3)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions and iterations (< 30 s)")
    p.add_argument("--filter", action="append", metavar="SUBSTR",
                   help="only workloads whose name contains SUBSTR (repeatable)")
    p.add_argument("--only", action="append", metavar="LABEL",
                   help="measure only this implementation (repeatable): "
                        + ", ".join(l for l, _ in IMPLEMENTATIONS + PEERS))
    p.add_argument("--json", metavar="PATH", default=os.path.join(HERE, "results.json"),
                   help="where to write results (default: benchmarks/results.json)")
    p.add_argument("--no-json", action="store_true", help="do not write JSON")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--list", action="store_true", help="list workloads and exit")
    args = p.parse_args(argv)

    workloads = [wl for wl in WORKLOADS.values()
                 if not args.filter or any(s in wl.name for s in args.filter)]
    if args.list:
        width = max(len(wl.name) for wl in workloads)
        for wl in workloads:
            extra = "".join("; + %s (%s)" % (m, metric.unit) for m, metric in wl.metrics.items())
            extra += "".join("; needs %s" % r for r in wl.requires)
            print("%-*s %-6s %s is better%s" % (width, wl.name, wl.unit, wl.better, extra))
        return 0
    if not workloads:
        sys.exit("no workload matches --filter %s" % ", ".join(args.filter))
    for modname, names in missing_requirements(workloads).items():
        print("skipped, %s is not installed (pip install -r benchmarks/requirements.txt): %s"
              % (REQUIREMENT_NAMES.get(modname, modname), ", ".join(names)), file=sys.stderr)
        workloads = [wl for wl in workloads if wl.name not in names]
    if not workloads:
        print("nothing left to run", file=sys.stderr)
        return 0
    if args.repeat is None:
        args.repeat = 3 if args.quick else 7
    if args.repeat < 1:
        sys.exit("--repeat must be at least 1")
    scale = 0.1 if args.quick else 1.0
    impls = load_implementations(args.only)
    for label, mod in impls:
        print("%s: %s" % (label, getattr(mod, "__file__", mod.__name__)), file=sys.stderr)

    t0 = time.perf_counter()
    samples, metric_samples, params = run(workloads, impls, args.repeat, scale)
    results = summarize(workloads, impls, samples, metric_samples, params)
    elapsed = time.perf_counter() - t0

    labels = [label for label, _ in impls]
    print_table(*table_rows(results, labels), args.markdown)
    header, rows = metric_rows(results, labels)
    if rows:
        print()
        print_table(header, rows, args.markdown)
    print("\n%d repetitions, interleaved, %.1f s; Python %s on %s; ratio > 1 "
          "means cfutures is better: faster, smaller, or higher where higher "
          "is better (MiB/s, GiB/s, ×), for which it is cfutures / stdlib."
          % (args.repeat, elapsed, platform.python_version(), platform.platform()),
          file=sys.stderr)

    if not args.no_json:
        doc = environment(impls, args, scale)
        doc["elapsed_s"] = round(elapsed, 3)
        doc["workloads"] = results
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        print("results written to %s" % args.json, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
