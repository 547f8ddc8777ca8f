"""Helpers shared by the test modules (imported as ``futures_helpers``).

The central idea: a *scenario* is a function ``scenario(m)`` that drives the
module ``m`` (concurrent.futures or cfutures) and returns its observable
outcome as a plain, comparable value.  ``agreed(scenario, mod)`` runs it on
the stdlib (the oracle) and on ``mod`` and asserts the two outcomes are
equal; tests then assert the outcome is the value the stdlib is known to give.
"""

import concurrent.futures
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

REF = concurrent.futures  # the oracle
TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)     # the tree under test (cfutures/ is here)

# The bound of every wait that must never take long: an event a task sets
# at once, the future of a trivial task, a helper thread's or a child
# interpreter's end.  Reaching it means the test failed (a hang), so it
# costs nothing on a passing run; it is generous because CI runs the five
# interpreters' suites two pytest workers at a time on two cores, where a
# spawn or forkserver worker has been seen to take seconds to start.
# Timeouts that a test is about (result(timeout=0.05) expecting
# TimeoutError, "has not returned within 0.2 s") are written out instead.
TIMEOUT = 30.0

# What the stdlib says: submit() after shutdown; a broken process pool, on
# the futures it fails and from submit() afterwards.
SHUTDOWN = "cannot schedule new futures after shutdown"
BROKEN_FUTURE = ("A process in the process pool was terminated abruptly while"
                 " the future was running or pending.")
BROKEN_POOL = ("A child process terminated abruptly, the process pool is not"
               " usable anymore")

# ProcessPoolExecutor(max_tasks_per_child=...) is new in 3.11 (the
# ``mtmod`` fixture, conftest.py).
HAS_MAX_TASKS = sys.version_info >= (3, 11)
LOGGER_NAME = "concurrent.futures"
STATES = ("PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED",
          "FINISHED")

_HEX_ADDR = re.compile(r"0x[0-9a-fA-F]+")


def agreed(scenario, mod):
    """Outcome of ``scenario(mod)``, asserted equal to ``scenario(stdlib)``."""
    return _same_as(scenario(REF), scenario, mod)


def _same_as(reference, scenario, mod):
    """*reference* (the stdlib's outcome) for the stdlib; else the outcome
    of ``scenario(mod)``, asserted equal to it."""
    if mod is REF:
        return reference
    got = scenario(mod)
    assert got == reference, (
        "cfutures disagrees with concurrent.futures:\n  cfutures: %r\n"
        "  stdlib:   %r" % (got, reference))
    return got


# agreed_once(): test key -> the stdlib's outcomes, in the order asked.
_ORACLE = {}
_ORACLE_CALLS = {}


def _oracle_key():
    """The running test's id with its module parameter ("stdlib" or
    "cfutures") taken out, so that both halves of one test get the same
    key; None outside a parametrized test."""
    nodeid = os.environ.get("PYTEST_CURRENT_TEST", "").rpartition(" (")[0]
    name, bracket, params = nodeid.partition("[")
    if not bracket:
        return None
    ids = params.rstrip("]").split("-")
    if "stdlib" not in ids and "cfutures" not in ids:
        return None
    return name + "[" + "-".join(
        "MOD" if i in ("stdlib", "cfutures") else i for i in ids) + "]"


def agreed_once(scenario, mod):
    """agreed(), with the stdlib's outcome computed once per test: the
    [stdlib] half runs the scenario on the stdlib (its check) and keeps the
    outcome; the [cfutures] half of the same test (same other parameters)
    compares with that instead of running the stdlib again (it does when it
    runs alone, e.g. under -k cfutures).  For scenarios that are expensive
    on the stdlib (processes) and whose outcome does not depend on the test
    instance; the n-th call in one half pairs with the n-th in the other."""
    key = _oracle_key()
    if key is None:
        return agreed(scenario, mod)
    calls = _ORACLE_CALLS[os.environ["PYTEST_CURRENT_TEST"]] = \
        _ORACLE_CALLS.get(os.environ["PYTEST_CURRENT_TEST"], 0) + 1
    kept = _ORACLE.setdefault(key, {})
    if mod is REF or calls not in kept:
        kept[calls] = scenario(REF)
    return _same_as(kept[calls], scenario, mod)


# Tests whose subject does not change with the interpreter (the 4 GiB
# frames, the sdist) and that cost tens of seconds run on one version of
# the five `make test` covers, each on its own, and not on 3.9 or 3.13,
# which carry the spawn and forkserver runs (conftest.py).
ONCE_ON = {"payload_4gib_call": (3, 10), "payload_4gib_result": (3, 12),
           "packaging": (3, 11)}


def run_once(what):
    """Skip the calling test unless this is the interpreter ONCE_ON names."""
    import pytest   # not at the top: child processes import this module too
    version = ONCE_ON[what]
    if sys.version_info[:2] != version:
        pytest.skip("%s runs once, on %d.%d" % ((what,) + version))


def cause_kind(exc):
    """The type of `exc.__cause__`, with cfutures' WorkerDied -- the cause
    that names a dead worker, which the stdlib gives only from 3.15 -- seen
    as the stdlib's None (tests/test_process_options.py checks it)."""
    from cfutures.process import WorkerDied
    cause = exc.__cause__
    return type(None) if isinstance(cause, WorkerDied) else type(cause)


# What re-entering a running iterator raises, as reentering_input records it.
REENTRY_ERROR = ("raise", "ValueError", "generator already executing")


def reentering_input(box, action, swallow, caught):
    """An input for map(..., buffersize=1) that, after two items, calls
    next() on -- or closes -- the iterator in box[0], the one consuming it,
    then yields a third.  The ValueError that raises leaves the input, or,
    with `swallow`, is recorded in `caught` (REENTRY_ERROR)."""
    yield -1
    yield -2
    try:
        if action == "next":
            next(box[0])
        else:
            box[0].close()
    except ValueError as exc:
        if not swallow:
            raise
        caught.append(("raise", type(exc).__name__, str(exc)))
    yield -3


def exc_view(exc):
    """A comparable summary of an exception from a task: its class, message
    (addresses normalised) and what kind of __cause__ it has."""
    if exc is None:
        return None
    return (type(exc), norm_any_addr(str(exc)), cause_kind(exc))


def outcome(fn, /, *args, **kwargs):
    """('return', value) or ('raise', exception type, str(exception))."""
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: B902 - outcomes include BaseException
        return ("raise", type(exc), str(exc))
    return ("return", value)


def addr(obj):
    """The address as the stdlib's Future.__repr__ prints it."""
    return "%#x" % id(obj)


def norm(text, *objs):
    """Replace the addresses (hex, as in reprs) and ids (decimal, as in the
    'unexpected state' log line) of *objs* by placeholders."""
    for obj in objs:
        text = text.replace(addr(obj), "0xADDR").replace(str(id(obj)), "ID")
    return text


def norm_any_addr(text):
    return _HEX_ADDR.sub("0xADDR", text)


def state(f):
    """The public view of a future's state, in one tuple."""
    return (f.running(), f.cancelled(), f.done())


class Worker(object):
    """A helper thread running ``fn(*args)``; ``join()`` is bounded and
    re-raises whatever the thread raised."""

    def __init__(self, fn, *args, **kwargs):
        self.value = None
        self.error = None
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def ident(self):
        return self.thread.ident

    def _run(self):
        try:
            self.value = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # noqa: B902 - reported by join()
            self.error = exc

    def join(self, timeout=TIMEOUT):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "helper thread did not finish"
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.value


def start(fn, *args, **kwargs):
    return Worker(fn, *args, **kwargs)


def in_lockstep(it, completions, before=None):
    """The items of the iterator `it` (an as_completed()), one completion
    in flight at a time: the first is taken; then a helper thread calls
    before() (if given) and each of `completions` (each completes a
    future), the next one only once `it` has yielded another item."""
    received = [threading.Event() for _ in completions]

    def finish():
        if before is not None:
            before()
        for k, complete_one in enumerate(completions):
            complete_one()
            must_wait(received[k])

    first = next(it)
    w = start(finish)
    rest = []
    for k, f in enumerate(it):
        rest.append(f)
        received[k].set()
    w.join()
    return [first] + rest


_prefix_counter = iter(range(10 ** 9))


def unique_prefix(tag):
    """A thread_name_prefix no other pool of this process has."""
    return "tp%s-%d-%d" % (tag, os.getpid(), next(_prefix_counter))


def pool_threads(prefix):
    """The threads of the pool whose thread_name_prefix is *prefix*."""
    return [t for t in threading.enumerate()
            if t.name.startswith(prefix + "_")]


def join_all(threads, timeout=TIMEOUT):
    """Join *threads* (within *timeout* in all); fail if one still runs."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    assert not alive, "threads still alive: %r" % (alive,)


def default_max_workers(pool_class):
    """The max_workers of a new ``pool_class()`` (shut down after)."""
    ex = pool_class()
    try:
        return ex._max_workers
    finally:
        ex.shutdown()


def run_into(f, fn, *args, **kwargs):
    """Complete future *f* as an executor that runs ``fn(*args, **kwargs)``
    at once would: with its result, or what it raised.  Returns *f*."""
    try:
        f.set_result(fn(*args, **kwargs))
    except BaseException as exc:  # noqa: B902 - the future carries it
        f.set_exception(exc)
    return f


def wait_until(predicate, timeout=TIMEOUT, what="condition"):
    """Poll *predicate* until true; for internal states no event can signal
    (e.g. 'a stdlib waiter has been installed in f._waiters')."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.0005)


def must_wait(event, timeout=TIMEOUT):
    assert event.wait(timeout), "event not set within %s s" % timeout


class Blocker(object):
    """A task for a thread pool that says it runs, then waits to be let go:
    ``started`` is set when it runs; ``release()`` lets it return
    ``value``."""

    def __init__(self, value="done"):
        self.value = value
        self.started = threading.Event()
        self.go = threading.Event()

    def __call__(self):
        self.started.set()
        must_wait(self.go)
        return self.value

    def wait_started(self):
        must_wait(self.started)

    def release(self):
        self.go.set()


class LogCapture(logging.Handler):
    """Collects records of the 'concurrent.futures' logger (usable outside
    pytest fixtures, e.g. in hypothesis state machines)."""

    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        logger = logging.getLogger(LOGGER_NAME)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger(LOGGER_NAME).removeHandler(self)
        return False


class LogRecords(LogCapture):
    """The records, as comparable tuples in ``seen``: (logger, level,
    message with addresses replaced, the type name of the exception it
    carries -- with exc_text, (type name, its text) -- or None)."""

    def __init__(self, exc_text=False):
        LogCapture.__init__(self)
        self.exc_text = exc_text
        self.seen = []

    def emit(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            exc = ((type(exc).__name__, str(exc)) if self.exc_text
                   else type(exc).__name__)
        self.seen.append((record.name, record.levelname,
                          norm_any_addr(record.getMessage()), exc))


def record_view(record, *objs):
    """A comparable summary of a log record: logger, level, message, and the
    type and identity-free text of the exception it carries."""
    exc = None
    if record.exc_info and record.exc_info[1] is not None:
        exc = (type(record.exc_info[1]), str(record.exc_info[1]))
    return (record.name, record.levelname, norm(record.getMessage(), *objs),
            exc)


class DuckFuture(object):
    """Only the public Future API -- no _condition, _state or _waiters.

    cfutures.wait/as_completed must accept it (through add_done_callback).
    """

    __slots__ = ("_duck_lock", "_duck_done", "_duck_cancelled",
                 "_duck_result", "_duck_exception", "_duck_callbacks",
                 "_duck_event", "__weakref__")

    def __init__(self):
        self._duck_lock = threading.Lock()
        self._duck_done = False
        self._duck_cancelled = False
        self._duck_result = None
        self._duck_exception = None
        self._duck_callbacks = []
        self._duck_event = threading.Event()

    def __repr__(self):
        return "<DuckFuture done=%s>" % self._duck_done

    # -- the public consumer API ------------------------------------------
    def add_done_callback(self, fn):
        with self._duck_lock:
            if not self._duck_done:
                self._duck_callbacks.append(fn)
                return
        fn(self)

    def done(self):
        return self._duck_done

    def cancelled(self):
        return self._duck_cancelled

    def _wait_done(self, timeout):
        if not self._duck_event.wait(timeout):
            raise REF.TimeoutError()
        if self._duck_cancelled:
            raise REF.CancelledError()

    def result(self, timeout=None):
        self._wait_done(timeout)
        if self._duck_exception is not None:
            raise self._duck_exception
        return self._duck_result

    def exception(self, timeout=None):
        self._wait_done(timeout)
        return self._duck_exception

    # -- the producer side ----------------------------------------------------
    def _finish(self, result=None, exception=None, cancelled=False):
        with self._duck_lock:
            assert not self._duck_done, "duck completed twice"
            self._duck_result = result
            self._duck_exception = exception
            self._duck_cancelled = cancelled
            self._duck_done = True
            callbacks, self._duck_callbacks = self._duck_callbacks, []
        self._duck_event.set()
        for fn in callbacks:
            fn(self)

    def set_result(self, result):
        self._finish(result=result)

    def set_exception(self, exception):
        self._finish(exception=exception)

    def cancel(self):
        self._finish(cancelled=True)
        return True


def complete(f, how, value=None):
    """Complete *f* one of three ways, as an executor would."""
    if how == "result":
        f.set_result(value)
    elif how == "exception":
        f.set_exception(value if value is not None else ValueError("boom"))
    elif how == "cancel":
        if isinstance(f, DuckFuture):
            f.cancel()
        else:
            assert f.cancel()
            assert f.set_running_or_notify_cancel() is False
    else:
        raise AssertionError(how)


class MyError(Exception):
    pass


def make_futures(m, spec):
    """Futures of module *m* from a spec string, one letter per future:
    p pending, r running, c cancelled (not notified), n cancelled and
    notified, d done with a result, e done with an exception,
    z done via set_exception(None)."""
    out = []
    for i, ch in enumerate(spec):
        f = m.Future()
        if ch == "r":
            f.set_running_or_notify_cancel()
        elif ch == "c":
            f.cancel()
        elif ch == "n":
            f.cancel()
            f.set_running_or_notify_cancel()
        elif ch == "d":
            f.set_result(i)
        elif ch == "e":
            f.set_exception(MyError(i))
        elif ch == "z":
            f.set_exception(None)
        else:
            assert ch == "p"
        out.append(f)
    return out


# ---- child interpreters -----------------------------------------------------

def which(m):
    """The id of module *m* ("stdlib" or "cfutures"), as children take it
    (child.futures() turns it back into the module)."""
    return "stdlib" if m is REF else "cfutures"


def child_env(env=None):
    """*env* (default: this process's environment) with the tree under test
    and the tests directory first on PYTHONPATH: a child imports the
    cfutures being tested, and the helpers (child, process_tasks)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, TESTS, env.get("PYTHONPATH")) if p)
    return env


class Child(object):
    """A child Python that start_child() started, in a session of its own.
    Its stderr (and stdout, unless piped) go to files, not pipes: a process
    the child leaves behind (a worker, a fork server) must not hold us."""

    def __init__(self, args, cwd=None, env=None, stdin=None,
                 pipe_stdout=False, launcher=False):
        self.files = [tempfile.TemporaryFile("w+")]
        if not pipe_stdout:
            self.files.append(tempfile.TemporaryFile("w+"))
        feed = subprocess.DEVNULL
        if stdin is not None:
            feed = tempfile.TemporaryFile("w+")
            feed.write(stdin)
            feed.seek(0)
            self.files.append(feed)
        argv = [sys.executable] + (["-m", "cfutures"] if launcher else [])
        self.proc = subprocess.Popen(
            argv + list(args), cwd=cwd, env=child_env(env), stdin=feed,
            stdout=subprocess.PIPE if pipe_stdout else self.files[1],
            stderr=self.files[0], encoding="utf-8", errors="replace",
            start_new_session=True)

    def wait(self, timeout=TIMEOUT, reap_group=True):
        """The child's return code, or None if it still ran after *timeout*
        seconds (it is killed then, with its whole process group).  With
        *reap_group*, whatever it left in its session is killed too (a test
        that checks itself that nothing is left passes False)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None or reap_group:
            self.kill()
        return rc

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def output(self):
        """(stdout, stderr) so far (stdout: what a pipe still holds).  The
        files are read without moving their offset, which the child
        shares: it may still be writing."""
        if self.proc.stdout is not None:
            out = self.proc.stdout.read()
        else:
            out = _read_whole(self.files[1])
        return out, self.stderr()

    def stderr(self):
        """What the child wrote to stderr so far (see output)."""
        return _read_whole(self.files[0])

    def close(self):
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        for f in self.files:
            f.close()

    def finish(self, timeout=TIMEOUT, reap_group=True):
        """(returncode, stdout, stderr); a child still running after
        *timeout* seconds fails the test (with what it wrote)."""
        try:
            rc = self.wait(timeout, reap_group)
            out, err = self.output()
        finally:
            self.close()
        if rc is None:
            raise AssertionError(
                "%s still ran after %s s (killed); stdout ends:\n%s\n"
                "stderr ends:\n%s" % (" ".join(self.proc.args[:3]), timeout,
                                      out[-3000:], err[-3000:]))
        return rc, out, err


def _read_whole(f):
    fd = f.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")


def start_child(args, **kwargs):
    """Start ``python *args`` (``python -m cfutures *args`` with
    launcher=True; *args* a str: ``python -c <that code, dedented>``); see
    Child.  For a child the test talks to while it runs; run_child() for
    one it only waits for."""
    if isinstance(args, str):
        args = ["-c", textwrap.dedent(args)]
    return Child(args, **kwargs)


def run_child(args, timeout=TIMEOUT, reap_group=True, **kwargs):
    """(returncode, stdout, stderr) of ``python *args``, run with the tree
    under test on PYTHONPATH (see Child and Child.finish)."""
    return start_child(args, **kwargs).finish(timeout, reap_group)


class Counted(object):
    """An iterator that counts the items taken from it."""

    def __init__(self, source):
        self._source = iter(source)
        self.taken = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._source)
        self.taken += 1
        return item


def next_in_thread(it, view):
    """Start a thread that calls next(it); returns (thread, inside, box),
    `box` getting `view(next, it)`.  `inside` is set at the moment the
    thread calls next(): with a long switch interval it holds the GIL from
    there until next() blocks, so once the caller sees the event the thread
    is inside the iterator."""
    inside = threading.Event()
    box = []

    def hook(frame, event, arg):
        if event == "c_call" and arg is next:
            inside.set()

    def run():
        sys.setprofile(hook)
        try:
            box.append(view(next, it))
        finally:
            sys.setprofile(None)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, inside, box
