"""Day 14, "concurrent.futures: the unified interface": fetching orders.

Reproduces the dialogue's code, in the lesson's order, with a real
ThreadPoolExecutor:

  1. the basic pattern: three submit() calls, then result() on each;
  2. submit everything into a dict {future: order_id}, consume with
     as_completed(), storing each result as it arrives;
  3. the same loop with per-future exception handling (one order fails);
  4. map() (submission order) against as_completed() (completion order);
  5. cancel(): it succeeds on a task still queued, not on a running one,
     which stops only because it checks a shutdown flag.

Adaptations:
  * every delay is the lesson's multiplied by SCALE = 0.1 (the 2 s "network
    latency" becomes 0.2 s), so the script takes about a second;
  * the module comes from the --impl switch (examples/_select.py): `futures`
    is concurrent.futures or cfutures; the code is otherwise the lesson's;
  * the output must be the same on every run and under both modules, so the
    lines produced inside as_completed() loops -- whose order varies by
    design -- are collected and printed sorted after the loop, and timing is
    printed only as a coarse boolean ("about 2 s, not 6" becomes "took less
    than the serial 3 delays' worth": 0.6 s, where parallel takes ~0.2 s --
    a margin wide enough for a loaded machine).
"""
import threading
import time

from _select import futures_module

SCALE = 0.1
DELAY = 2 * SCALE  # the lesson's time.sleep(2)


def fetch_order(order_id):
    """Simulate an external API call that takes time."""
    time.sleep(DELAY)  # I/O-bound: network latency
    return f"Order {order_id} fetched"


def basic_pattern():
    print("-- 1. submit() three orders, then result() on each")
    started = time.monotonic()
    with futures.ThreadPoolExecutor(max_workers=3) as executor:
        # Submit three tasks in parallel
        future1 = executor.submit(fetch_order, "ORD-001")
        future2 = executor.submit(fetch_order, "ORD-002")
        future3 = executor.submit(fetch_order, "ORD-003")

        # Wait for results (each waited in parallel: total ~1 delay, not 3).
        # result() is called in a fixed order, so these lines are stable.
        print(future1.result())
        print(future2.result())
        print(future3.result())
    elapsed = time.monotonic() - started
    print("in parallel (about 2 s, under the serial 6, in lesson time):",
          elapsed < 3 * DELAY)


def as_completed_pattern():
    print("-- 2. submit all, consume with as_completed()")
    order_ids = ["ORD-001", "ORD-002", "ORD-003"]
    database = {}  # results are "stored to the database" as they arrive
    lines = []
    with futures.ThreadPoolExecutor(max_workers=3) as executor:
        # Submit all tasks at once -- a dict of {future: order_id}
        futures_to_ids = {executor.submit(fetch_order, oid): oid for oid in order_ids}

        # as_completed yields futures as they finish -- not in submission
        # order.  The lesson prints here; the line is kept for after the loop.
        for future in futures.as_completed(futures_to_ids):
            order_id = futures_to_ids[future]
            result = future.result()
            database[order_id] = result
            lines.append(f"{order_id}: {result}")
    print("\n".join(sorted(lines)))
    print("stored:", sorted(database))


def fetch_order_flaky(order_id):
    """fetch_order, except that the API fails for ORD-002."""
    time.sleep(DELAY)
    if order_id == "ORD-002":
        raise ConnectionError(f"API unavailable for {order_id}")
    return f"Order {order_id} fetched"


def exception_handling():
    print("-- 3. exceptions, handled per future")
    order_ids = ["ORD-001", "ORD-002", "ORD-003"]
    lines = []
    with futures.ThreadPoolExecutor(max_workers=3) as executor:
        futures_to_ids = {executor.submit(fetch_order_flaky, oid): oid for oid in order_ids}
        for future in futures.as_completed(futures_to_ids):
            order_id = futures_to_ids[future]
            try:
                # result() re-raises the task's exception here ...
                result = future.result()
                lines.append(f"{order_id}: {result}")
            except Exception as e:
                # ... and it does not crash the loop: each task is isolated.
                lines.append(f"{order_id}: failed with {e}")
    print("\n".join(sorted(lines)))


# Different latencies per order: ORD-001 is the slowest, so it finishes last
# although it was submitted first.
LATENCY = {"ORD-001": 3 * SCALE, "ORD-002": 1 * SCALE, "ORD-003": 2 * SCALE}


def fetch_order_variable(order_id):
    time.sleep(LATENCY[order_id])
    return f"Order {order_id} fetched"


def map_vs_as_completed():
    print("-- 4. map() vs as_completed()")
    order_ids = ["ORD-001", "ORD-002", "ORD-003"]
    with futures.ThreadPoolExecutor(max_workers=3) as executor:
        # map(): results come back in submission order, even though ORD-002
        # finishes first -- so printing them directly is deterministic.
        for result in executor.map(fetch_order_variable, order_ids):
            print("map:", result)

        # as_completed(): results come back as they finish (here, most likely
        # ORD-002, ORD-003, ORD-001).  That order is timing-dependent, so
        # only what arrived is printed, sorted.
        futures_to_ids = {executor.submit(fetch_order_variable, oid): oid for oid in order_ids}
        arrived = [futures_to_ids[f] for f in futures.as_completed(futures_to_ids)]
    print("as_completed yielded each order once:", sorted(arrived) == order_ids)


def fetch_until_stopped(order_id, started, stop):
    """A long fetch, done in small steps that check a shutdown flag.

    A running task cannot be cancelled (Python has no preemptive
    cancellation); the lesson's way out is a task that checks a flag.
    """
    started.set()
    for _ in range(100):
        if stop.wait(DELAY / 10):
            return f"Order {order_id} stopped early"
    return f"Order {order_id} fetched"


def cancel_queued_task():
    print("-- 5. cancel(): works on a queued task, not on a running one")
    started = threading.Event()
    stop = threading.Event()
    lines = []
    # One worker: ORD-001 occupies it, so ORD-002 waits in the queue.
    with futures.ThreadPoolExecutor(max_workers=1) as executor:
        running = executor.submit(fetch_until_stopped, "ORD-001", started, stop)
        queued = executor.submit(fetch_order, "ORD-002")
        futures_to_ids = {running: "ORD-001", queued: "ORD-002"}
        started.wait()  # ORD-001 is now certainly running

        print("cancel() running ORD-001:", running.cancel())  # False
        print("cancel() queued ORD-002:", queued.cancel())    # True
        print("ORD-002 cancelled():", queued.cancelled())

        stop.set()  # the shutdown flag lets ORD-001 finish early
        for future in futures.as_completed(futures_to_ids):
            order_id = futures_to_ids[future]
            if future.cancelled():
                # A cancelled future is done too, but it has no result:
                # result() would raise CancelledError.  Skip it.
                lines.append(f"{order_id}: cancelled, skipped")
                continue
            lines.append(f"{order_id}: {future.result()}")
    print("\n".join(sorted(lines)))
    try:
        queued.result()
    except futures.CancelledError:
        print("ORD-002 result() raises CancelledError")


def main():
    basic_pattern()
    as_completed_pattern()
    exception_handling()
    map_vs_as_completed()
    cancel_queued_task()


if __name__ == "__main__":
    futures = futures_module(__doc__)
    main()
