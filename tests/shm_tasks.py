"""Tasks for tests/test_process_shm.py, importable by workers under every
start method, and the parent's view of what shared memory it holds."""
import gc
import os
import time


def identity(x):
    return x


def describe(x):
    """What the worker received, as a comparable tuple."""
    return summary(x)


def summary(x):
    """Type, and for arrays dtype, shape, layout, writability and content."""
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [summary(v) for v in x])
    kind = type(x).__name__
    if kind == "ndarray":
        import hashlib
        return (kind, str(x.dtype), x.shape, bool(x.flags.writeable),
                bool(x.flags.c_contiguous), bool(x.flags.f_contiguous),
                hashlib.sha1(x.tobytes()).hexdigest())
    if isinstance(x, (bytes, bytearray)):
        import hashlib
        return (kind, len(x), hashlib.sha1(x).hexdigest())
    return (kind, x)


def make_array(n, dtype="int64"):
    import numpy
    return numpy.arange(n, dtype=dtype)


def arrays(count, size):
    import numpy
    return [numpy.full(size // 8, i, dtype="float64") for i in range(count)]


def bytes_of(n):
    return b"b" * n


def write_into(a):
    """Change the received array (it is the worker's own) and return it."""
    a[0] = -1
    return a


_kept = []


def keep(x):
    """Hold the received value in this worker until kept_summary()."""
    _kept.append(x)


def kept_summary():
    """summary() of what keep() holds, letting go of it."""
    values = _kept[:]
    del _kept[:]
    return [summary(v) for v in values]


def exit_holding(x):
    """Die with the call's shared memory mapped."""
    os._exit(3)


def sleep_holding(x, path):
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    while True:
        time.sleep(60)


def held():
    """This process's descriptors and cfutures memfd mappings."""
    return shared_held()


def shared_held():
    """(open descriptors, memfds among them, cfutures memfd mappings), once
    the garbage that may hold some is collected."""
    gc.collect()
    fds = os.listdir("/proc/self/fd")
    memfds = 0
    for fd in fds:
        try:
            memfds += os.readlink("/proc/self/fd/" + fd).startswith("/memfd:cfutures")
        except OSError:
            pass                     # the listing's own descriptor, gone
    with open("/proc/self/maps") as fh:
        maps = sum("/memfd:cfutures" in line for line in fh)
    return len(fds), memfds, maps
