"""Day 14, the order-fetching walk-through, with the futures completed by hand.

The lesson submits `fetch_order` to a ThreadPoolExecutor and consumes the
results with as_completed(); here plain threads play the executor's part
(set_running_or_notify_cancel, set_result / set_exception), which is all a
Future needs.  One order fails, one is cancelled before it starts, and the
results are stored as they arrive.  Completion order varies by design, so the
output is printed sorted after the live log.
"""
import threading
import time

from _select import futures_module

DELAYS = {"ORD-001": 0.20, "ORD-002": 0.05, "ORD-003": 0.10, "ORD-004": 0.15, "ORD-005": 0.0}


def fetch_order(order_id):
    """Simulate an external API call that takes time."""
    time.sleep(DELAYS[order_id])
    if order_id == "ORD-004":
        raise ConnectionError(f"API timeout for {order_id}")
    return f"Order {order_id} fetched"


def run_in_thread(future, fn, *args):
    """What an executor's worker does with one task."""
    def work():
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def main():
    futures_by_order = {oid: futures.Future() for oid in DELAYS}
    # ORD-005 is cancelled before its worker starts.
    print("cancel ORD-005:", futures_by_order["ORD-005"].cancel())
    threads = [run_in_thread(f, fetch_order, oid) for oid, f in futures_by_order.items()]
    orders = {f: oid for oid, f in futures_by_order.items()}

    started = time.monotonic()
    stored = []
    pending = [f for f in orders if not f.cancelled()]
    for future in futures.as_completed(pending, timeout=10):
        order_id = orders[future]
        try:
            stored.append(f"{order_id}: {future.result()}")
        except Exception as e:
            stored.append(f"{order_id}: failed with {e!r}")
    elapsed = time.monotonic() - started

    for thread in threads:
        thread.join()
    # Every worker has run, so ORD-005's cancel was notified: all are done.
    done, not_done = futures.wait(orders, timeout=0)
    print("\n".join(sorted(stored)))
    print(f"done={len(done)} not_done={len(not_done)}")
    print("in parallel:", elapsed < sum(DELAYS.values()))


if __name__ == "__main__":
    futures = futures_module(__doc__)
    main()
