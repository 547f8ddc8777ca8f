"""Task functions for the process-pool tests.

Workers started with spawn or forkserver import the functions they run by
module name, so every callable a test submits lives here, at module level
(not in a test file).  The tests directory is on sys.path (conftest.py), and
multiprocessing hands sys.path to spawn/forkserver children.

Sequencing between the test and a worker goes through files in a directory
the test owns: a task announces that it runs (and its pid) by creating a
marker file atomically, and a blocking task waits, with a deadline, for a
"release" file to appear.
"""

import contextlib
import ctypes
import faulthandler
import multiprocessing
import os
import signal
import sys
import threading
import time

_GLOBAL = None


def bound(timeout=None):
    """`timeout`, or by default futures_helpers.TIMEOUT -- imported on use,
    not with this module, which every spawn and forkserver worker imports:
    a worker should start as fast as it can."""
    if timeout is None:
        from futures_helpers import TIMEOUT
        timeout = TIMEOUT
    return timeout

# How long a blocking task waits for its release before giving up: long
# enough for any test, short enough that a broken test cannot leave a
# process behind for long.
BLOCK_LIMIT = 60.0


# ---- plain tasks ------------------------------------------------------------

def echo(*args, **kwargs):
    return (args, sorted(kwargs.items()))


def square(x):
    return x * x


def add(a, b):
    return a + b


def pid(_=None):
    return os.getpid()


def raise_value_error(message):
    raise ValueError(message)


def tenfold_positive(x):
    if x < 0:
        raise ValueError("negative: %d" % x)
    return x * 10


def sleep_return(value, seconds):
    time.sleep(seconds)
    return value


def print_line(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return text


# ---- wire tasks -------------------------------------------------------------
# For test_process_wire.py: fds a forked worker must leave alone, payloads of
# 4 GiB and more, calls and results that cannot be unpickled.

_KEPT_FDS = []      # fds a task leaves open until its process ends


def take_over_free_fds(directory, numbers, text):
    """What a task opening its log files does: every fd number of `numbers`
    that is free in this process gets a file `<directory>/fd<N>` (as the
    lowest free number would), `text` is written to it, and it stays open
    until the process ends.  Returns the numbers taken."""
    taken = []
    for n in numbers:
        try:
            os.fstat(n)
            continue                # in use here: not ours to take
        except OSError:
            pass
        fd = os.open(os.path.join(directory, "fd%d" % n),
                     os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        if fd != n:
            os.dup2(fd, n)
            os.close(fd)
        os.write(n, text)
        _KEPT_FDS.append(n)
        taken.append(n)
    return taken


def write_line_to_fd(fd, i):
    os.write(fd, b"line %d\n" % i)
    return i


def nested_pool_log(module_name, path, count):
    """Open the log file `path` (it gets the lowest free fd number), then
    run a nested fork pool whose tasks each write one line to that inherited
    fd.  Returns (the nested results, whether the fd is still open)."""
    import importlib
    m = importlib.import_module(module_name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        ex = m.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(
            "fork"))
        try:
            fs = [ex.submit(write_line_to_fd, fd, i) for i in range(count)]
            got = [f.result(timeout=bound()) for f in fs]
        finally:
            ex.shutdown(wait=True)
        try:
            os.fstat(fd)
            still_open = True
        except OSError:
            still_open = False
        return got, still_open
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def _unpickle_only_in(pid):
    if os.getpid() != pid:
        raise ValueError("cannot be unpickled outside process %d" % pid)
    return OnlyHere()


class OnlyHere(object):
    """Pickles anywhere, unpickles only in the process that pickled it: in
    another one, re-creating it raises ValueError."""

    def __reduce__(self):
        return (_unpickle_only_in, (os.getpid(),))


def _exit_if_not_in(pid):
    if os.getpid() != pid:
        raise SystemExit("unpickled outside process %d" % pid)
    return ExitElsewhere()


class ExitElsewhere(object):
    """Unpickling it in another process than the one that pickled it raises
    SystemExit."""

    def __reduce__(self):
        return (_exit_if_not_in, (os.getpid(),))


def return_only_here():
    return OnlyHere()


def big_summary(head, data, tail):
    """What a big call carried: its small neighbours and its length."""
    return head, len(data), tail


def big_result(head, size, tail):
    """A result that pickles to more than `size` bytes.  bytes(size) comes
    from calloc: it costs no memory until it is read."""
    return head, bytes(size), tail


# ---- initializers -----------------------------------------------------------

def on_dask_worker(_=None):
    """Whether this runs in a Dask worker (tests/test_cluster.py)."""
    try:
        from distributed import get_worker
        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def set_global(value):
    global _GLOBAL
    _GLOBAL = value


def get_global(_=None):
    return _GLOBAL


def failing_initializer():
    raise RuntimeError("initializer failed on purpose")


def fail_if_exists(path):
    """An initializer that fails once `path` exists."""
    if os.path.exists(path):
        failing_initializer()


# ---- pickling trouble -------------------------------------------------------

def return_lock():
    return threading.Lock()


class LockedError(Exception):
    """Cannot be pickled: it holds a lock."""

    def __init__(self):
        Exception.__init__(self, "holds a lock")
        self.lock = threading.Lock()


def raise_locked_error():
    raise LockedError()


class TwoArgError(Exception):
    """Pickles (its args are ("first",)) but cannot be unpickled:
    re-creating it calls TwoArgError("first"), which lacks `b`."""

    def __init__(self, a, b):
        Exception.__init__(self, a)
        self.b = b


def raise_two_arg_error():
    raise TwoArgError("first", "second")


# ---- sequencing through files -----------------------------------------------

def _touch_atomic(path, text=""):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write(text)
    os.rename(tmp, path)


def mark_started(directory, tag):
    """Announce `tag` runs in this process: file `<tag>.started.<pid>`."""
    name = "%s.started.%d" % (tag, os.getpid())
    _touch_atomic(os.path.join(directory, name))


def _wait_for_file(path, limit=BLOCK_LIMIT):
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def block(directory, tag):
    """Announce, then wait for `<directory>/release`; return `tag`."""
    mark_started(directory, tag)
    if not _wait_for_file(os.path.join(directory, "release")):
        return "never released"
    return tag


def block_print(directory, text):
    """block(), then print `text` (print_line)."""
    block(directory, text)
    return print_line(text)


def wait_for(directory, name, limit):
    """Whether `<directory>/<name>` appeared within `limit` seconds."""
    return _wait_for_file(os.path.join(directory, name), limit)


def touch(directory, name):
    _touch_atomic(os.path.join(directory, name))
    return name


# ---- dying workers ----------------------------------------------------------

def crash(kind):
    """End this process abruptly, the way `kind` names."""
    if kind == "exit":
        os._exit(3)
    elif kind == "segfault":
        faulthandler.disable()      # no "Fatal Python error" noise
        ctypes.string_at(0)
    elif kind == "oom":
        _out_of_memory()
    elif kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("still alive after crash(%r)" % (kind,))


def _out_of_memory():
    """What the OOM killer does: a task exceeds the memory it may have and
    the kernel kills the process with SIGKILL.  The address-space limit
    makes the allocation fail at once; the kill that follows stands in for
    the OOM killer (a MemoryError alone is an ordinary exception)."""
    import resource
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + (64 << 20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        hog = bytearray(1 << 30)
    except MemoryError:
        os.kill(os.getpid(), signal.SIGKILL)
    del hog
    os.kill(os.getpid(), signal.SIGKILL)


def block_or_crash(directory, tag):
    """Announce, then wait: return `tag` once `<directory>/release`
    exists, or crash as told once `<directory>/crash.<pid>` exists (its
    text is the kind of crash)."""
    mark_started(directory, tag)
    order = os.path.join(directory, "crash.%d" % os.getpid())
    release = os.path.join(directory, "release")
    deadline = time.monotonic() + BLOCK_LIMIT
    while time.monotonic() < deadline:
        if os.path.exists(order):
            with open(order) as fh:
                crash(fh.read())
        if os.path.exists(release):
            return tag
        time.sleep(0.005)
    return "never released"


def length(data):
    return len(data)


def crash_on(value, bad, kind):
    if value == bad:
        crash(kind)
    return value


# ---- lifecycle tasks --------------------------------------------------------
# (test_process_lifecycle.py)

def ignore_sigterm():
    """Initializer: the worker survives SIGTERM (what Process.terminate()
    sends), as a program that installs its own handler may."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def print_pid(text):
    """Print `text` (one write, flushed) and return this worker's pid."""
    print_line(text)
    return os.getpid()


# ---- pickler tasks ----------------------------------------------------------
# (test_process_pickler.py) Which pickler a call or a result goes through:
# multiprocessing's ForkingPickler, with its reducers, whatever shortcut the
# pool takes for plain calls.

def tagged(*args):
    """What a callable pickled by reduce_to_tagged becomes on arrival."""
    return ("reduced",) + args


def reduce_to_tagged(obj):
    """A reducer (multiprocessing.reduction.register, reducer_override) for a
    callable: it arrives as partial(tagged, its name)."""
    import functools
    return (functools.partial, (tagged, getattr(obj, "__name__", "?")))


def register_builtin_reducer():
    """Initializer: this worker pickles builtin functions with
    reduce_to_tagged."""
    import multiprocessing.reduction
    multiprocessing.reduction.register(type(len), reduce_to_tagged)


def return_builtin(_=None):
    return len


def send_on_socket(sock, data):
    """Send `data` on a socket that came as an argument."""
    with sock:
        sock.sendall(data)
    return len(data)


def send_on_connection(conn, obj):
    """Send `obj` on a multiprocessing Connection that came as an argument."""
    with conn:
        conn.send(obj)
    return True


def plain_values(*args, **kwargs):
    """The arguments as they arrived, with their types."""
    return ([(type(a).__name__, a) for a in args],
            sorted((k, type(v).__name__, v) for k, v in kwargs.items()))


def named_target(x):
    """Looked up by name (process_tasks.named_target) where it arrives."""
    return ("named_target", x)


def other_target(x):
    return ("other_target", x)


def rebind_named_target():
    """In this process, process_tasks.named_target is other_target from now
    on (a task that patches its own module)."""
    global named_target
    named_target = other_target
    return True


class Holder:
    """A function reached by a dotted qualname (Holder.triple)."""

    @staticmethod
    def triple(x):
        return 3 * x


_FIND_CLASS_EVENTS = []


def count_find_class():
    """Initializer: count pickle.find_class audit events in this worker."""
    def hook(event, args):
        if event == "pickle.find_class":
            _FIND_CLASS_EVENTS.append(args)
    sys.addaudithook(hook)


def find_class_events(module, name):
    """How many pickle.find_class events named module.name so far."""
    return sum(1 for args in _FIND_CLASS_EVENTS if args == (module, name))


# =============================================================================
# The test side: helpers the test modules share (never run in a worker).
# =============================================================================

METHODS = ("fork", "spawn", "forkserver")


class Sync(object):
    """The test's end of the file-based sequencing with the tasks."""

    def __init__(self, directory):
        self.dir = str(directory)

    def sub(self, name):
        """A Sync of its own, in a new subdirectory `name`: one for each
        module's run of a scenario, as a release must not carry over."""
        s = Sync(os.path.join(self.dir, name))
        os.mkdir(s.dir)
        return s

    def started(self, tag, timeout=None):
        """The pid of the worker that announced `tag` (waits for it)."""
        timeout = bound(timeout)
        prefix = tag + ".started."
        deadline = time.monotonic() + timeout
        while True:
            for name in os.listdir(self.dir):
                if name.startswith(prefix) and ".tmp." not in name:
                    return int(name[len(prefix):])
            if time.monotonic() > deadline:
                raise AssertionError("task %r did not start within %s s"
                                     % (tag, timeout))
            time.sleep(0.002)

    def started_some(self, tags, count, timeout=None):
        """{tag: pid} of the first `count` of `tags` that started."""
        timeout = bound(timeout)
        deadline = time.monotonic() + timeout
        while True:
            found = {}
            for name in os.listdir(self.dir):
                tag, sep, pid = name.partition(".started.")
                if sep and tag in tags and ".tmp." not in pid:
                    found[tag] = int(pid)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError("only %r of %r started within %s s"
                                     % (sorted(found), tags, timeout))
            time.sleep(0.002)

    def order_crash(self, pid, kind):
        """Tell the block_or_crash task running in `pid` to crash."""
        _touch_atomic(os.path.join(self.dir, "crash.%d" % pid), kind)

    def release(self):
        path = os.path.join(self.dir, "release")
        if not os.path.exists(path):
            _touch_atomic(path)


def proc_state(pid):
    """The state letter of /proc/<pid>/stat, or None when there is none."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2]


def wait_asleep(pid, timeout=None):
    """Until the main thread of process `pid` sleeps in the kernel (it is
    blocked, e.g. parked in a wait).  Without /proc (not Linux), give it a
    moment instead."""
    timeout = bound(timeout)
    if proc_state(pid) is None:
        time.sleep(0.2)
        return
    deadline = time.monotonic() + timeout
    while proc_state(pid) not in ("S", "D"):
        assert time.monotonic() < deadline, "process %d never blocked" % pid
        time.sleep(0.001)


def is_gone(pid):
    """The process no longer runs: it does not exist, or is a zombie (an
    orphan's zombie waits for whatever reaps orphans here)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return proc_state(pid) in (None, "Z", "X")


def wait_gone(pids, timeout=None):
    """Poll until every pid is gone; return those still running."""
    timeout = bound(timeout)
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if not is_gone(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.01)


def wait_dead(processes, timeout=None):
    """Poll until the multiprocessing Processes have ended; return the pids
    of those still running.  Never joins or polls a Process: the pool's own
    thread does that, and a second joiner would race it (under forkserver
    the loser reads no exit status and reports 255)."""
    return wait_gone([p.pid for p in processes], timeout)


def wait_reaped(pids, timeout=None):
    """Poll until no /proc entry is left (not even a zombie); return the
    pids that still have one."""
    timeout = bound(timeout)
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if proc_state(p) is not None]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)


def join_threads(before, timeout=None):
    """Join the threads started since `before` (a pool's manager or I/O
    thread, which joins its workers); return those still alive."""
    timeout = bound(timeout)
    deadline = time.monotonic() + timeout
    for t in threading.enumerate():
        if t not in before and t is not threading.current_thread():
            t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate()
            if t not in before and t.is_alive()]


def kill_all(processes):
    """Cleanup after a failure: SIGKILL whatever still runs, and reap it."""
    for p in processes:
        try:
            if not is_gone(p.pid):
                p.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for p in processes:
        try:
            p.join(bound())
        except (OSError, ValueError, AssertionError):
            pass


class Watch(object):
    """Remembers every worker Process a pool showed in `_processes` (the
    stdlib sets that to None at shutdown, and replaces workers)."""

    def __init__(self, ex):
        self.ex = ex
        self.seen = {}

    def update(self):
        procs = getattr(self.ex, "_processes", None)
        if procs:
            self.seen.update(dict(procs))
        return self

    @property
    def processes(self):
        return list(self.update().seen.values())

    @property
    def pids(self):
        return sorted(self.update().seen)


def context(method):
    return None if method is None else multiprocessing.get_context(method)


def pool(m, method="fork", sync=None, max_workers=2, **kwargs):
    """A ProcessPoolExecutor of module `m` that is always cleaned up (see
    cleaned_up).  Yields (executor, watch)."""
    ex = m.ProcessPoolExecutor(max_workers, mp_context=context(method),
                               **kwargs)
    return cleaned_up(ex, Watch(ex), sync)


@contextlib.contextmanager
def cleaned_up(ex, watch, sync=None):
    """Yields (ex, watch), for an executor that has started nothing yet;
    on the way out the blocking tasks are released, the pool is shut down
    without waiting, its worker processes (watch.processes, if any) are
    given a bounded time to end (then killed) and its threads are joined,
    so no test leaves a process or thread behind."""
    threads = set(threading.enumerate())
    try:
        yield ex, watch
    finally:
        if sync is not None:
            sync.release()
        watch.update()
        try:
            ex.shutdown(wait=False, cancel_futures=True)
        finally:
            workers = getattr(watch, "processes", [])
            if wait_dead(workers):
                kill_all(workers)
            join_threads(threads)


def goes_on(ex, fs):
    """(the results of the futures `fs`, a new task's result, whether `ex`
    is broken): what a pool that goes on working gives (..., 3, False)."""
    return ([f.result(timeout=bound()) for f in fs],
            ex.submit(add, 1, 2).result(timeout=bound()), bool(ex._broken))


def warm_up(method):
    """Start the helper processes a start method keeps for the rest of the
    session (resource tracker, fork server), so that fds they hold are not
    counted against a pool."""
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    if method == "forkserver":
        from multiprocessing import forkserver
        forkserver.ensure_running()


def open_fds():
    """{fd: what it is} for the fds of this process."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:     # the directory's own fd, closed meanwhile
            pass
    return fds
