"""Tasks for tests/test_process_options.py, importable by workers under
every start method.  Each that the test must see begin writes the
monotonic time it began (CLOCK_MONOTONIC is one clock for every process
here) to a file first."""
import ctypes
import os
import signal
import time

from process_tasks import crash

_leaked = []


def _mark(path):
    """Write this process's pid and the monotonic time it began to `path`."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write("%d %r" % (os.getpid(), time.monotonic()))
    os.rename(tmp, path)


def read_mark(path):
    with open(path) as fh:
        pid, began = fh.read().split()
    return int(pid), float(began)


def sleep_forever(path):
    _mark(path)
    while True:
        time.sleep(60)


def stuck_in_c(path):
    """Block in C (pause(2)) with SIGTERM ignored: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _mark(path)
    while True:
        ctypes.CDLL(None).pause()


def marked_crash(path, kind):
    _mark(path)
    crash(kind)


def square(x):
    return x * x


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


def leak_50mb(i):
    """Keep 50 MB more each call (touched, so it is resident)."""
    block = bytearray(50 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    _leaked.append(block)
    return i, os.getpid()


def rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
