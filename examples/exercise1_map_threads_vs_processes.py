"""Executor Interface page, Exercise 1: the same map() on threads, then processes.

The exercise: executor.map() with a ThreadPoolExecutor turns 10 strings to
upper case, with a 0.3 s simulated delay per item; then the same code with a
ProcessPoolExecutor; print both results and check they are identical.  This
is the lesson's solution.

Adaptations:
  * the module comes from the --impl switch (examples/_select.py): `futures`
    is concurrent.futures or cfutures;
  * the 0.3 s delay is multiplied by SCALE = 0.1 (0.03 s per item);
  * the process pool uses the start method chosen with --start-method
    (examples/_select.py; default: the platform's);
  * `if __name__ == "__main__":` guards the top-level code, as process pools
    need (under spawn and forkserver their workers import this file again),
    and the module switch is read there too, so workers never parse the
    command line or set the start method.
"""
import time

from _select import futures_module

SCALE = 0.1


def slow_upper(s):
    time.sleep(0.3 * SCALE)
    return s.upper()


def main():
    strings = [f"item_{i}" for i in range(10)]

    with futures.ThreadPoolExecutor(max_workers=5) as ex:
        thread_results = list(ex.map(slow_upper, strings))
    print(f"Thread results: {thread_results}")

    # The same code, only the executor class differs.
    with futures.ProcessPoolExecutor(max_workers=5) as ex:
        proc_results = list(ex.map(slow_upper, strings))
    print(f"Process results: {proc_results}")
    assert thread_results == proc_results
    print("identical:", thread_results == proc_results)


if __name__ == "__main__":
    futures = futures_module(__doc__)
    main()
