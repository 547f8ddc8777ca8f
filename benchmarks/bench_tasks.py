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


def spin(n):
    """A pure-Python loop: CPU-bound, holding the GIL throughout."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def pid_after(delay):
    """This worker's pid, once it has been busy for `delay` seconds, so that
    concurrent calls land on different workers."""
    time.sleep(delay)
    return os.getpid()
