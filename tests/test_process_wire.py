"""ProcessPoolExecutor: what travels between the parent and its workers.

1. Fds.  A forked process (a pool's worker, or a user's os.fork() child)
   touches no fd it does not own: a forked worker closes the parent's pool
   fds it inherited, so their numbers are free for the task's own files, and
   nothing may later write into (or close) those files; a nested pool in a
   worker works, with fds the task opened before; a user's child of a
   process with a started pool writes nothing to, and closes nothing of, the
   fd numbers the pool had (they may be the child's own files by then), and
   the parent's pool keeps working.
2. Payloads of 4 GiB and more, in both directions: carried whole, or
   refused with a clear error on that one future; the next futures get their
   own results (the stream of frames never loses its place).  Runs in a
   child process, bounded in time and in memory.
3. A call that cannot be unpickled in the worker (an Exception, or
   SystemExit, raised while unpickling), a result or an exception that
   cannot be unpickled in the parent: the future raises BrokenProcessPool as
   in the stdlib (which breaks the whole pool then); cfutures fails only that
   future, with the error as __cause__, and the pool goes on.

Workers run the functions of ``process_tasks`` (the "wire tasks" block).
"""

import concurrent.futures
import concurrent.futures.process
import gc
import json
import os
import re
import sys
import time

import pytest

import process_tasks as tasks
from futures_helpers import (TIMEOUT, agreed_once, outcome, run_child,
                             run_once, start_child, which)
from process_tasks import pool, wait_dead

REF = concurrent.futures
BrokenProcessPool = concurrent.futures.process.BrokenProcessPool
RemoteTraceback = concurrent.futures.process._RemoteTraceback

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc, fds"),
]


# ---- 1. fds a forked process does not own -----------------------------------

USER_TEXT = b"a user's log line\n"


def test_fork_worker_leaves_reused_fd_numbers_alone(mod, tmp_path):
    # The task opens its own files on every number of the parent's pool fds
    # that is free in the worker (cfutures' worker closes the parent's ends
    # it inherited; the stdlib's keeps them all, so it finds none free), and
    # leaves them open.  When the worker exits, those files must hold what
    # the task wrote: today cfutures' worker still knows the parent's pools
    # and, at exit, writes its wake-up (8 bytes) into the parent's eventfd
    # number -- the task's file now.
    def scenario(m):
        directory = tmp_path / which(m)
        directory.mkdir()
        gc.collect()        # fds of earlier tests' garbage are not the pool's
        before = set(tasks.open_fds())
        with pool(m, "fork", max_workers=1) as (ex, watch):
            assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4
            numbers = sorted(set(tasks.open_fds()) - before)
            taken = ex.submit(tasks.take_over_free_fds, str(directory),
                              numbers, USER_TEXT).result(timeout=TIMEOUT)
            ex.shutdown(wait=True)
            assert wait_dead(watch.processes) == []
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            "fd%d" % n for n in taken)
        return {p.name: p.read_bytes() for p in directory.iterdir()
                if p.read_bytes() != USER_TEXT}

    assert agreed_once(scenario, mod) == {}


def test_nested_pool_in_a_fork_worker(mod, tmp_path):
    # A task opens a log file (under cfutures it gets the number of one of
    # the parent's pool fds, free in the worker) and runs a nested fork pool
    # whose tasks write to that inherited fd.  Today cfutures hands the
    # parent's stale fd numbers to the nested pool's workers, which close
    # them: the log fd among them (OSError EBADF in the nested task).
    def scenario(m):
        log = tmp_path / ("%s.log" % which(m))
        with pool(m, "fork", max_workers=1) as (ex, _):
            assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4
            f = ex.submit(tasks.nested_pool_log, m.__name__, str(log), 4)
            got = outcome(f.result, timeout=2 * TIMEOUT)
            after = ex.submit(tasks.square, 3).result(timeout=TIMEOUT)
        lines = sorted(log.read_bytes().splitlines()) if log.exists() else []
        return got, after, lines

    assert agreed_once(scenario, mod) == (
        ("return", ([0, 1, 2, 3], True)), 9,
        [b"line 0", b"line 1", b"line 2", b"line 3"])


FORK_CHILD = r"""
import gc, json, multiprocessing, multiprocessing.process, os, sys
import warnings
import process_tasks as tasks
from child import futures
which, action = sys.argv[1:3]
m = futures(which)


def report(**items):
    sys.stdout.write(json.dumps(items) + "\n")
    sys.stdout.flush()


def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork, threads
    before = set(tasks.open_fds())
    fork = multiprocessing.get_context("fork")
    ex = m.ProcessPoolExecutor(2, mp_context=fork)
    first = ex.submit(tasks.square, 3).result(timeout=30)
    pool_fds = sorted(set(tasks.open_fds()) - before)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The child's own files take the numbers of the pool's fds: here the
        # write end of a probe pipe, so that any byte written to them shows.
        os.close(r)
        for n in pool_fds:
            os.dup2(w, n)
        os.close(w)
        # As multiprocessing does in its own children: the parent's workers
        # are not this process's to join at exit.
        multiprocessing.process._children.clear()
        if action == "shutdown":
            ex.shutdown(wait=True)
        if action in ("drop", "shutdown"):
            del ex
            gc.collect()
        report(closed=[n for n in pool_fds if not is_open(n)])
        sys.exit(0)         # the interpreter's exit: its hooks run
    os.close(w)
    _, status = os.waitpid(pid, 0)
    probe = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        probe += chunk
    # The parent's pool after the child is gone.
    results = [f.result(timeout=30)
               for f in [ex.submit(tasks.square, i) for i in range(6)]]
    ex.shutdown(wait=True)
    report(first=first, pool_fds=pool_fds, status=status, probe=probe.hex(),
           results=results)
"""


def run_fork_child(m, action):
    rc, out, err = run_child(["-c", FORK_CHILD, which(m), action],
                             reap_group=False)
    got = {}
    for line in out.splitlines():
        got.update(json.loads(line))
    return got, err, rc


@pytest.mark.parametrize("action", ["exit", "drop", "shutdown"])
def test_forked_child_leaves_pool_fds_alone(mod, action):
    # A user's os.fork() child of a process whose pool runs: its files land
    # on the pool's fd numbers; then it exits (after dropping its copy of
    # the executor, or shutting that copy down).  Both modules: the child
    # exits cleanly and the parent's pool keeps working.
    #
    # cfutures must also write nothing to those numbers and close none of
    # them.  The stdlib falls short of that, so this part is cfutures' alone:
    # its child writes the wake-up of the pool's manager thread (4 zero
    # bytes) into the numbers of that thread's wake-up pipe at exit, and its
    # copy's shutdown() closes that pipe's numbers.  Today cfutures' child
    # writes its 8-byte eventfd wake-up into them.
    runs = {}       # module -> its run: the cfutures half checks its own run further

    def scenario(m):
        got, err, rc = runs[m] = run_fork_child(m, action)
        return (rc, err, got.get("first"), got.get("status"),
                got.get("results"), "closed" in got)

    assert agreed_once(scenario, mod) == (0, "", 9, 0, [i * i for i in range(6)],
                                     True)
    if mod is not REF:
        got, err, rc = runs[mod]
        assert rc == 0, err
        assert got["probe"] == "", (
            "the child wrote %r into the pool's fd numbers %r"
            % (bytes.fromhex(got["probe"]), got["pool_fds"]))
        assert got["closed"] == [], (
            "the child closed its files on the pool's fd numbers %r"
            % (got["closed"],))
        assert got["results"] == [i * i for i in range(6)]


# ---- 2. payloads of 4 GiB and more ------------------------------------------

GIB = 1 << 30
BIG = 4 * GIB + 16          # bytes(BIG): more than a 32-bit length can say
# The pool's processes together (the main process and its worker) may use
# this much memory: a 4 GiB payload is pickled in one process (4 GiB), read
# in the other (4 GiB) and unpickled there (4 GiB), and the sender may keep
# its copy until the answer comes: 12 GiB at most.  Measured with the
# stdlib (which carries it whole, on 3.9, 3.11 and 3.13): 8.0 GiB peak and
# about 55 s per direction on a 2-core VM -- affordable, so the stdlib half
# stays.  Going over the budget fails the test (the run is killed), so the
# machine never runs short.
RSS_BUDGET = 14 * GIB
MEM_NEEDED = RSS_BUDGET + 2 * GIB
BIG_TIMEOUT = 400           # the whole child; the stdlib took ~55 s here
SIZE_WORDS = re.compile(r"large|big|size|length|limit|GiB|GB|bytes|2\*\*32"
                        r"|4294967", re.IGNORECASE)

BIG_CHILD = r"""
import json, multiprocessing, sys, time
import process_tasks as tasks
from child import futures
which, direction, size, limit = sys.argv[1:5]
m = futures(which)
size, limit = int(size), float(limit)


def plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def outcome(get):
    try:
        return ["return", plain(get())]
    except BaseException as exc:
        kind = type(exc)
        return ["raise", kind.__module__ + "." + kind.__qualname__,
                str(exc)[:500]]


if __name__ == "__main__":
    start = time.monotonic()
    fork = multiprocessing.get_context("fork")
    ex = m.ProcessPoolExecutor(1, mp_context=fork)
    # Started before the big object exists: the fork copies nothing big.
    warm = ex.submit(tasks.square, 2).result(timeout=60)
    # bytes(size) comes from calloc: no memory until it is read.
    if direction == "call":
        big = outcome(lambda: ex.submit(tasks.big_summary, b"head",
                                        bytes(size), b"tail"))
        get_big = lambda f: f.result(timeout=limit)
    else:
        big = outcome(lambda: ex.submit(tasks.big_result, b"head", size,
                                        b"tail"))
        get_big = lambda f: tasks.big_summary(*f.result(timeout=limit))
    small = [outcome(lambda i=i: ex.submit(tasks.square, i))
             for i in range(4)]
    if big[0] == "return":
        big = outcome(lambda: get_big(big[1]))
    small = [outcome(lambda f=f: f[1].result(timeout=limit))
             if f[0] == "return" else f for f in small]
    after = outcome(lambda: ex.submit(tasks.add, 1, 2).result(timeout=limit))
    sys.stdout.write(json.dumps({"warm": warm, "big": big, "small": small,
                                 "after": after,
                                 "seconds": time.monotonic() - start}) + "\n")
    sys.stdout.flush()
    ex.shutdown(wait=True)
"""


def mem_available():
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def session_rss(sid):
    """Resident bytes of every process of session `sid`."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as fh:
                stat = fh.read()
            if int(stat[stat.rindex(")") + 2:].split()[3]) != sid:
                continue
            with open("/proc/%s/status" % name) as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    return total


def run_watched(args, timeout, budget):
    """Run ``python *args`` (start_child: in a session of its own); kill
    the whole session when it outlives `timeout` or its resident memory
    exceeds `budget`.  Returns (stdout, stderr, returncode, why killed or
    None, peak rss bytes)."""
    child = start_child(args)
    killed, peak = None, 0
    deadline = time.monotonic() + timeout
    try:
        while child.proc.poll() is None:
            rss = session_rss(child.proc.pid)
            peak = max(peak, rss)
            if rss > budget:
                killed = "over its memory budget (%.1f GiB)" % (rss / GIB)
            elif time.monotonic() > deadline:
                killed = "still running after %d s" % timeout
            if killed:
                break
            time.sleep(0.05)    # polling a measure, not synchronising
        child.kill()            # whatever is left
        out, err = child.output()
    finally:
        child.close()
    return out, err, child.proc.returncode, killed, peak


def big_acceptable(m, big):
    """Carried whole; or (cfutures only: the stdlib carries it) refused
    with an error that says the payload is too big -- not a pickling error
    from a cut frame, not a broken pool."""
    if big == ["return", ["head", BIG, "tail"]]:
        return True
    return (m is not REF and big[0] == "raise"
            and big[1] in ("builtins.ValueError", "builtins.OverflowError")
            and SIZE_WORDS.search(big[2]) is not None)


@pytest.mark.timeout(BIG_TIMEOUT + 60)
@pytest.mark.parametrize("direction", ["call", "result"])
def test_payload_of_4_gib(mod, direction):
    # One worker: the small tasks follow the big frame on the same pipes.
    # Today cfutures writes the length modulo 2**32: the worker reads a
    # cut frame, then takes bytes of the big payload for frame headers
    # (the worker dies: "unexpected frame kind"; the other way, the parent
    # reads 4 GiB of zeros as 8-byte frames, futures get garbage and its
    # memory grows until the budget stops it).
    #
    # Each case moves 4 GiB twice and takes 30 - 60 s, so the suite runs
    # each once, on one Python (futures_helpers.ONCE_ON), and for cfutures
    # only: the stdlib carries 4 GiB in both directions on 3.9 - 3.13
    # (checked by hand: 8 GiB peak, ~55 s a direction), and the frames are
    # the same on every version.
    if mod is REF:
        pytest.skip("the stdlib carries 4 GiB payloads (checked by hand)")
    run_once("payload_4gib_" + direction)
    available = mem_available()
    if available < MEM_NEEDED:
        reason = ("needs %d GiB of MemAvailable (a %d GiB budget for a "
                  "4 GiB payload, and room to spare), has %.1f GiB"
                  % (MEM_NEEDED // GIB, RSS_BUDGET // GIB, available / GIB))
        print(reason)
        pytest.skip(reason)
    out, err, rc, killed, peak = run_watched(
        ["-c", BIG_CHILD, which(mod), direction, str(BIG), "300"],
        BIG_TIMEOUT, RSS_BUDGET)
    print("peak RSS of the pool's processes: %.2f GiB" % (peak / GIB))
    assert killed is None, "the run was killed, %s; stderr:\n%s" % (
        killed, err[-3000:])
    assert out, "no report (rc %s); stderr:\n%s" % (rc, err[-3000:])
    got = json.loads(out.splitlines()[0])
    assert big_acceptable(mod, got["big"]), got
    assert got["small"] == [["return", i * i] for i in range(4)], got
    assert got["after"] == ["return", 3], got
    assert rc == 0, err[-3000:]


# ---- 3. calls, results and exceptions that cannot be unpickled --------------

# (submit arguments, where unpickling fails, the error it raises)
UNPICKLABLE = {
    # the call, in the worker: its argument's reconstructor raises
    "call": ((tasks.echo, tasks.OnlyHere()), ValueError,
             "cannot be unpickled outside process", "_unpickle_only_in"),
    # the call, in the worker: SystemExit while unpickling
    "call-exit": ((tasks.echo, tasks.ExitElsewhere()), SystemExit,
                  "unpickled outside process", "_exit_if_not_in"),
    # the result, in the parent
    "result": ((tasks.return_only_here,), ValueError,
               "cannot be unpickled outside process", None),
    # the task's exception, in the parent (TwoArgError("first") misses b)
    "exception": ((tasks.raise_two_arg_error,), TypeError,
                  "missing 1 required positional argument", None),
}


@pytest.mark.parametrize("case", sorted(UNPICKLABLE))
def test_unpickling_failure_raises_broken_process_pool(mod, case):
    # The stdlib (3.9 - 3.13 alike) breaks the pool: the worker dies on a
    # call it cannot unpickle (its traceback goes to its stderr; the future
    # gets BrokenProcessPool "A process in the process pool was terminated
    # abruptly ..." with no __cause__); a result or exception it cannot
    # unpickle fails every future with that BrokenProcessPool, whose
    # __cause__ is a _RemoteTraceback of the unpickling error.  Compared
    # here: the class of what result() raises.  Today cfutures raises the
    # unpickling error itself (ValueError, TypeError -- or SystemExit).
    call = UNPICKLABLE[case][0]

    def scenario(m):
        with pool(m, "fork", max_workers=1) as (ex, _):
            assert ex.submit(tasks.square, 2).result(timeout=TIMEOUT) == 4
            f = ex.submit(*call)
            try:
                f.result(timeout=TIMEOUT)
            except BaseException as exc:   # noqa: B902 - SystemExit today
                return issubclass(type(exc), BrokenProcessPool), f.done()
            return "no error", f.done()

    assert agreed_once(scenario, mod) == (True, True)


def cause_chain(exc):
    """The exceptions down the __cause__ chain, `exc` first."""
    chain = []
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__
    return chain


def chain_text(exc):
    """Every message and remote traceback text down the chain."""
    parts = []
    for e in cause_chain(exc):
        parts.append(str(e))
        if isinstance(e, RemoteTraceback):
            parts.append(e.tb)
    return "\n".join(parts)


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("case", sorted(UNPICKLABLE))
def test_unpickling_failure_fails_only_its_future(cf, case, method):
    # cfutures alone (the stdlib breaks the whole pool here): that future
    # raises BrokenProcessPool with the unpickling error as __cause__ -- and,
    # when it happened in the worker, the worker's traceback of it further
    # down the chain; the futures around it, and later submits, succeed.
    call, error, text, worker_function = UNPICKLABLE[case]
    with pool(cf, method, max_workers=1) as (ex, watch):
        before = [ex.submit(tasks.square, i) for i in range(3)]
        bad = ex.submit(*call)
        after = [ex.submit(tasks.square, i) for i in range(3, 6)]
        exc = bad.exception(timeout=TIMEOUT)
        assert type(exc) is BrokenProcessPool, (
            "%s raised %r, not BrokenProcessPool" % (case, exc))
        cause = exc.__cause__
        assert isinstance(cause, error) and text in str(cause), (
            "__cause__ is %r, not the %s of unpickling" % (cause,
                                                           error.__name__))
        if worker_function is not None:
            assert worker_function in chain_text(exc), (
                "no worker traceback down the chain:\n" + chain_text(exc))
        assert tasks.goes_on(ex, before + after) == (
            [i * i for i in range(6)], 3, False)
        workers = watch.processes
    assert wait_dead(workers) == []
