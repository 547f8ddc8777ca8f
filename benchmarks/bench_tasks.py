"""Task functions for the process-pool workloads of benchmarks/run.py.

They live in a module of their own, not in run.py, because a task is pickled
by reference (module and name): a worker started afresh (spawn, forkserver,
loky) must import it, and importing run.py's __main__ there would be wrong.
run.py puts this directory on sys.path and on PYTHONPATH, for children.
"""
import os
import time

_payloads = {}


def tiny(x):
    return x + 1


def length(data):
    return len(data)


def payload(size):
    """size bytes, made once per process: the workload times the transfer,
    not the allocation."""
    data = _payloads.get(size)
    if data is None:
        data = _payloads[size] = b"\x5a" * size  # written pages, not calloc's
    return data


def make_payload(size):
    """Make payload(size) in this worker now, sending nothing back."""
    payload(size)


def arrays(size, count=None):
    """NumPy data, made afresh: one int64 array of size bytes (count None),
    or a list of count such arrays, each with other values. arange writes
    every page; zeros (calloc's untouched pages) would read faster than any
    real data."""
    import numpy
    n = size // 8
    if count is None:
        return numpy.arange(n, dtype=numpy.int64)
    return [numpy.arange(i, i + n, dtype=numpy.int64) for i in range(count)]


def array_payload(size, count=None):
    """arrays(size, count), made once per process, like payload()."""
    key = ("arrays", size, count)
    data = _payloads.get(key)
    if data is None:
        data = _payloads[key] = arrays(size, count)
    return data


def make_array_payload(size, count=None):
    """Make array_payload(size, count) in this worker now; return what
    summary() says of it, for the parent to check what it receives."""
    return summary(array_payload(size, count))


def summary(x):
    """(total bytes, last item, a byte of every page summed) of an array or
    a list of arrays: a tiny answer that still checks what arrived, and
    reads every page of it, as any use would (memory mapped on arrival is
    only paid for when read)."""
    arrays = x if isinstance(x, list) else [x]
    pages = sum(int(a.view("uint8")[::4096].sum()) for a in arrays)
    return sum(a.nbytes for a in arrays), int(arrays[-1][-1]), pages


def spin(n):
    """A pure-Python loop: CPU-bound, holding the GIL throughout."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def timed_spin(n):
    """spin(n), timed by the worker running it: (its value, this worker's
    pid, perf_counter at its start and end, the CPU seconds its thread
    spent). perf_counter is CLOCK_MONOTONIC, one clock for every process of
    the machine, so the parent can line the workers' tasks up."""
    start, cpu = time.perf_counter(), time.thread_time()
    value = spin(n)
    return value, os.getpid(), start, time.perf_counter(), time.thread_time() - cpu


def pid_after(delay):
    """This worker's pid, once it has been busy for `delay` seconds, so that
    concurrent calls land on different workers."""
    time.sleep(delay)
    return os.getpid()


def sum_of_squares(_data):
    """The lesson's CPU stage (exercise 3's process()): ~0.1 s here."""
    return sum(i * i for i in range(1_000_000))
