"""The "Executor Interface" page: its ThreadPoolExecutor snippets, run.

Reproduces, in the page's order: "before" (threads + a queue) and "after"
(executor.map(square, ...)); the shared interface (submit / map / shutdown);
submit(compute, 10, 20); map(square, [1..5]); the shutdown() options;
process(x) with max_workers=4 in a `with` block; "switching between threads
and processes"; the get_executor() factory; the ThreadPoolExecutor
parameters (thread_name_prefix, initializer, initargs); an initializer that
opens a per-thread connection in a threading.local; exceptions with submit(),
with map(), and per task (safe_task); result(timeout=...) and
map(..., timeout=...); submit() for different functions; the "practical
example" (fetch with threads, process with processes).

Adaptations:
  * the module comes from the --impl switch (examples/_select.py): `futures`
    is concurrent.futures or cfutures, and the lesson's `TimeoutError` is
    `futures.TimeoutError` (before Python 3.11 that is not the builtin);
  * every delay is the lesson's multiplied by SCALE = 0.05 (slow_task's 10 s
    becomes 0.5 s, the 2 s timeout 0.1 s, the 0.5 s fetch 0.025 s);
  * the initializer's database is a FakeConnection, and workers do not print
    (their lines would interleave, and how many workers a pool starts for two
    queries is timing-dependent): what they did is checked and summarised by
    the main thread instead;
  * fetch_url, heavy_computation, download and upload are small stand-ins
    for the page's undefined functions;
  * the ProcessPoolExecutor parts ("switching", the factory's "cpu" branch,
    the practical example's stage 2) use the start method chosen with
    --start-method (examples/_select.py; default: the platform's); the
    functions they run are module-level, so spawn and forkserver workers
    find them when they import this file again;
  * the top-level code is guarded by `if __name__ == "__main__":`, as process
    pools need, and the module switch is read there too, so workers that
    import this file never parse the command line;
  * sections are introduced by "-- ..." lines; all output is deterministic.
"""
import queue
import re
import threading
import time

from _select import futures_module

SCALE = 0.05


def square(x):
    return x ** 2


def compute(x, y):
    return x + y


def process(x):
    return x * 2


def before_and_after():
    print("-- before: threading + queue; after: executor.map")
    # Before: manual thread management
    result_queue = queue.Queue()

    def worker(x, q):
        q.put(x ** 2)

    threads = []
    for i in range(10):
        t = threading.Thread(target=worker, args=(i, result_queue))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    # Queue order is completion order: sorted here to be deterministic.
    before = sorted(result_queue.get() for _ in range(10))

    # After: concurrent.futures
    with futures.ThreadPoolExecutor() as executor:
        results = list(executor.map(square, range(10)))
    print(results)
    print("same as the manual version:", results == before)


def executor_interface():
    print("-- the interface: submit, map, shutdown")
    executor = futures.ThreadPoolExecutor(max_workers=4)
    # Submit individual tasks
    future = executor.submit(compute, 1, 2)
    # Map function over iterable
    results = executor.map(square, [1, 2, 3])
    print(future.result(), list(results))
    # Shutdown
    executor.shutdown(wait=True)


def core_methods():
    print("-- submit(compute, 10, 20)")
    with futures.ThreadPoolExecutor() as executor:
        # Returns Future immediately
        future = executor.submit(compute, 10, 20)
        # Get result (blocks until complete)
        result = future.result()
        print(result)  # 30

    print("-- map(square, [1, 2, 3, 4, 5])")
    with futures.ThreadPoolExecutor() as executor:
        # Returns iterator of results (in order)
        results = executor.map(square, [1, 2, 3, 4, 5])
        print(list(results))  # [1, 4, 9, 16, 25]


def shutdown_options():
    print("-- shutdown() options")
    executor = futures.ThreadPoolExecutor(max_workers=4)
    future = executor.submit(lambda: 42)
    executor.shutdown(wait=True)  # Wait for pending tasks (default)
    print("after shutdown(wait=True): done", future.done(), "result", future.result())
    try:
        executor.submit(lambda: 43)
    except RuntimeError as e:
        print("submit after shutdown:", e)

    gate = threading.Event()
    executor = futures.ThreadPoolExecutor(max_workers=1)
    blocked = executor.submit(gate.wait)
    executor.shutdown(wait=False)  # Return immediately
    print("after shutdown(wait=False): task still pending:", not blocked.done())
    gate.set()
    print("and it still completes:", blocked.result())

    # One worker, held by the first task: the other three are queued, and
    # cancel_futures=True cancels exactly those.
    gate = threading.Event()
    started = threading.Event()

    def hold():
        started.set()
        return gate.wait()

    executor = futures.ThreadPoolExecutor(max_workers=1)
    running = executor.submit(hold)
    queued = [executor.submit(square, i) for i in range(3)]
    started.wait()
    threading.Timer(5 * SCALE, gate.set).start()  # release the worker later
    executor.shutdown(wait=True, cancel_futures=True)  # Cancel pending (Python 3.9+)
    print("shutdown(cancel_futures=True): running task result", running.result(),
          "| queued cancelled:", [f.cancelled() for f in queued])

    print("-- with block: automatic shutdown")
    # Automatic shutdown when exiting context
    with futures.ThreadPoolExecutor(max_workers=4) as executor:
        results = list(executor.map(process, range(10)))
    # executor is automatically shut down here
    print(results)


def switching():
    print("-- switching between threads and processes")

    data = list(range(100))
    # For I/O-bound tasks: use threads
    with futures.ThreadPoolExecutor(max_workers=10) as executor:
        thread_results = list(executor.map(square, data))
    print("threads: sum", sum(thread_results))

    # For CPU-bound tasks: use processes
    with futures.ProcessPoolExecutor(max_workers=4) as executor:
        process_results = list(executor.map(square, data))
    print("processes: sum", sum(process_results),
          "| same as threads:", process_results == thread_results)


def fetch_url(url):
    """Stand-in for the page's fetch_url: an I/O wait, then the 'page'."""
    time.sleep(0.5 * SCALE)
    return f"<html>{url}</html>"


def heavy_computation(n):
    """Stand-in for the page's heavy_computation: pure CPU."""
    return sum(i * i for i in range(n))


def get_executor(task_type, max_workers=None):
    """Get appropriate executor for task type."""
    if task_type == "io":
        return futures.ThreadPoolExecutor(max_workers=max_workers or 20)
    elif task_type == "cpu":
        return futures.ProcessPoolExecutor(max_workers=max_workers)
    else:
        raise ValueError(f"Unknown task type: {task_type}")


def factory():
    print("-- get_executor() factory")
    urls = [f"https://example.com/page/{i}" for i in range(5)]
    # Usage
    with get_executor("io") as executor:
        results = executor.map(fetch_url, urls)
        print("io:", list(results))

    data = [10_000, 20_000, 30_000]
    with get_executor("cpu") as executor:
        results = executor.map(heavy_computation, data)
        print("cpu:", list(results))

    try:
        get_executor("gpu")
    except ValueError as e:
        print("gpu:", e)


def executor_parameters():
    print("-- ThreadPoolExecutor parameters")
    names = []
    lock = threading.Lock()

    def init_func(arg1, arg2):
        with lock:
            names.append((threading.current_thread().name, arg1, arg2))

    executor = futures.ThreadPoolExecutor(
        max_workers=10,               # Max threads (default: min(32, cpu_count + 4))
        thread_name_prefix="Worker",  # Prefix for thread names
        initializer=init_func,        # Called in each thread at start
        initargs=("arg1", "arg2"),    # Arguments for initializer
    )
    results = list(executor.map(square, range(20)))
    executor.shutdown(wait=True)
    print("results in order:", results == [square(i) for i in range(20)])
    # How many threads the pool started is timing-dependent; their names and
    # the initializer's arguments are not.
    print("threads started:", 1 <= len(names) <= 10)
    print("named Worker_<n>:", all(re.fullmatch(r"Worker_\d+", n) for n, _, _ in names))
    print("initializer got initargs:",
          all((a1, a2) == ("arg1", "arg2") for _, a1, a2 in names))


class FakeConnection:
    """Stands in for the page's create_connection(...) result."""

    opened = []  # (connection, thread name), appended under _lock
    _lock = threading.Lock()

    def __init__(self, connection_string):
        self.connection_string = connection_string
        self.thread = threading.current_thread().name
        with FakeConnection._lock:
            FakeConnection.opened.append(self)

    def execute(self, sql):
        # A result that says which connection and which thread served it.
        return sql, self, threading.current_thread().name


def create_connection(connection_string):
    return FakeConnection(connection_string)


# Thread-local storage
local = threading.local()


def init_worker(connection_string):
    """Initialize each worker thread."""
    local.db = create_connection(connection_string)
    # The page prints f"Worker {name}: DB connected" here; see main thread.


def query(sql):
    """Use worker's database connection."""
    return local.db.execute(sql)


def initializer():
    print("-- initializer: one connection per worker thread (threading.local)")
    with futures.ThreadPoolExecutor(
        max_workers=4,
        initializer=init_worker,
        initargs=("postgresql://localhost/mydb",),
    ) as executor:
        queries = ["SELECT * FROM users", "SELECT * FROM orders"]
        results = list(executor.map(query, queries))
    opened = FakeConnection.opened
    print("queries answered:", [sql for sql, _, _ in results])
    print("worker threads connected:", 1 <= len(opened) <= 4)
    print("all to:", sorted({c.connection_string for c in opened}))
    # Each query used the connection its own thread's initializer opened.
    print("each query used its thread's connection:",
          all(conn.thread == thread for _, conn, thread in results))


def risky_task_negative(x):
    if x < 0:
        raise ValueError("Negative not allowed")
    return x ** 2


def risky_task_three(x):
    if x == 3:
        raise ValueError(f"Cannot process {x}")
    return x ** 2


def safe_task(x):
    try:
        if x == 3:
            raise ValueError("Bad value")
        return ("success", x ** 2)
    except Exception as e:
        return ("error", str(e))


def error_handling():
    print("-- exceptions in submit()")
    with futures.ThreadPoolExecutor() as executor:
        future = executor.submit(risky_task_negative, -5)
        try:
            result = future.result()  # Raises exception here
        except ValueError as e:
            print(f"Task failed: {e}")

    print("-- exceptions in map()")
    with futures.ThreadPoolExecutor() as executor:
        try:
            # Exception raised when iterating
            results = list(executor.map(risky_task_three, range(5)))
        except ValueError as e:
            print(f"Error: {e}")

    print("-- handling errors per task (safe_task)")
    with futures.ThreadPoolExecutor() as executor:
        results = list(executor.map(safe_task, range(5)))
        for status, value in results:
            if status == "success":
                print(f"Result: {value}")
            else:
                print(f"Error: {value}")


slow_task_started = threading.Event()


def slow_task():
    slow_task_started.set()
    time.sleep(10 * SCALE)
    return "Done"


def slow_task_x(x):
    time.sleep(x * SCALE)
    return x


def timeouts():
    print("-- result() with timeout")
    with futures.ThreadPoolExecutor() as executor:
        future = executor.submit(slow_task)
        try:
            result = future.result(timeout=2 * SCALE)  # Wait max 2 (lesson) seconds
        except futures.TimeoutError:
            print("Task timed out!")
            # Try to cancel (may not work if already running).  The task has
            # been running for a while now (waiting for it to have started
            # only makes that certain), so cancel() returns False, and the
            # with block waits for slow_task to finish.
            slow_task_started.wait()
            print("cancel() on the running task:", future.cancel())
    print("slow_task finished anyway:", future.result())

    print("-- map() with timeout")
    with futures.ThreadPoolExecutor() as executor:
        try:
            # timeout applies to entire iteration: the 3 (lesson) second task
            # cannot be done 2 (lesson) seconds after map() was called.
            results = list(executor.map(slow_task_x, [1, 2, 3], timeout=2 * SCALE))
        except futures.TimeoutError:
            print("Map operation timed out!")


def download(url):
    return f"downloaded {url}"


def upload(data):
    return f"uploaded {data!r}"


def map_vs_submit():
    print("-- submit() for different functions")
    url, data, result = "https://example.com/a", 21, "report"
    with futures.ThreadPoolExecutor() as executor:
        # Different functions or complex handling
        futures_list = []
        futures_list.append(executor.submit(download, url))
        futures_list.append(executor.submit(process, data))
        futures_list.append(executor.submit(upload, result))
        # Read in submission order: deterministic.
        for f in futures_list:
            print(f.result())


def fetch_data(url):
    """I/O-bound: fetch from URL."""
    time.sleep(0.5 * SCALE)  # Simulate network
    return f"Data from {url}"


def process_data(data):
    """CPU-bound: process data."""
    time.sleep(0.1 * SCALE)  # Simulate computation
    return f"Processed: {data}"


def practical_example():
    print("-- practical example: fetch with threads, process with processes")
    urls = [f"https://api.example.com/data/{i}" for i in range(10)]

    # Stage 1: Fetch (I/O-bound) -- use threads
    with futures.ThreadPoolExecutor(max_workers=10) as executor:
        raw_data = list(executor.map(fetch_data, urls))
    print(f"Fetched {len(raw_data)} items")

    # Stage 2: Process (CPU-bound) -- use processes
    with futures.ProcessPoolExecutor() as executor:
        processed = list(executor.map(process_data, raw_data))
    print(f"Processed {len(processed)} items")
    print(processed[0])


def main():
    before_and_after()
    executor_interface()
    core_methods()
    shutdown_options()
    switching()
    factory()
    executor_parameters()
    initializer()
    error_handling()
    timeouts()
    map_vs_submit()
    practical_example()


if __name__ == "__main__":
    # Chosen here, not at import: under spawn and forkserver a
    # ProcessPoolExecutor's workers import this file again (as __mp_main__),
    # and only the parent parses the switch and sets the start method.
    futures = futures_module(__doc__)
    main()
