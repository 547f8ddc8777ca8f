#!/usr/bin/env python3
"""Randomized, time-bounded fault-injection run over both pools.

    python scripts/fault_run.py [--rounds N] [--seed S] [--seconds T]
                                [--impl cfutures|stdlib] [--kinds a,b,...]

Each round picks one scenario kind at random and runs it in a fresh child
interpreter (this file again, with --child KIND), in a session of its own,
under a time bound.  The child warms up what multiprocessing keeps for good
(resource tracker, forkserver, one pool of the kinds it will use), takes a
baseline of its fds, descendant processes and threads, runs the scenario,
then checks: every future submit() returned is done (or cancelled) within a
bound, no new thread is alive, no new descendant process is alive or
unreaped, no new fd is open.  It prints one JSON line.  The parent counts:

  crash   the child interpreter died of a signal (or a fork()ed grandchild
          did, in the fork scenario)
  hang    the child missed its time bound (the group is killed, faulthandler
          has dumped every thread's stack to the log), or a bounded step
          inside it (shutdown, a helper thread, a forked child) overran
  lost    a future returned by submit() that is neither done nor cancelled
          at the end (or right after shutdown(wait=True) returned)
  fds / procs / threads   leaked after shutdown (procs also: processes of
          the child's session still running after the child exited)
  errors  a wrong result, an exception of an unexpected type, or the
          child failing without a result

Exit status 0 only when every count is 0.  A round is replayed with
    python scripts/fault_run.py --child KIND --impl IMPL --seed CHILD_SEED
(the seed is printed for every round that found something).
"""

import argparse
import collections
import gc
import itertools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

MARK = "FAULT-RUN-RESULT "
METHODS = ("fork", "spawn", "forkserver")
CHILD_TIMEOUT = 30.0    # a child round, whole
BOUND = 10.0            # a bounded step inside a child
SETTLE = 5.0            # how long leftovers get to go away

KINDS = (
    "submit_storm",
    "worker_crash",
    "ctrl_c",
    "shutdown_in_pickle",
    "iterators",
    "fork",
    "max_tasks",
    "sigterm_ignored",
    "cancel_storm",
    "callbacks",
)
COUNTS = ("crashes", "hangs", "lost", "fds", "procs", "threads", "errors")


# =============================================================================
# /proc helpers (child and parent)
# =============================================================================

def proc_table():
    """{pid: (state, ppid, sid)} of every process visible in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as fh:
                data = fh.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        table[int(name)] = (rest[0], int(rest[1]), int(rest[3]))
    return table


def descendants(root, table=None):
    """{pid: state} of every descendant of `root`."""
    table = proc_table() if table is None else table
    children = collections.defaultdict(list)
    for pid, (state, ppid, _sid) in table.items():
        children[ppid].append(pid)
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid not in found:
                found[pid] = table[pid][0]
                todo.append(pid)
    return found


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            data = fh.read().replace(b"\0", b" ")
        return data.decode(errors="replace")[:120]
    except OSError:
        return "?"


def join(t, timeout):
    """Thread.join that tolerates a thread which never started (Ctrl-C in
    Thread.start() before the thread was created leaves it in threading's
    limbo for good)."""
    try:
        t.join(max(0.0, timeout))
    except RuntimeError:
        pass


def fd_map():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:
            pass        # the directory fd listdir used, already closed
    return fds


# =============================================================================
# The child: one scenario, its own checks, one JSON line
# =============================================================================

class Env(object):
    """What a scenario works with: the module under test, its random
    generator, the futures it got back, its helper threads, and the counts
    it found on the way."""

    def __init__(self, mod, impl, kind, seed):
        self.mod = mod
        self.impl = impl
        self.kind = kind
        self.seed = seed
        self.rng = random.Random(seed)
        self.futures = []
        self.helpers = []
        self.params = {}
        self.counts = dict.fromkeys(COUNTS, 0)
        self.details = []
        self.base = None
        self.skipped = False
        self.exit_now = False       # leave without the checks (exit path)

    # ---- parameters and records ---------------------------------------------

    def choice(self, name, seq):
        value = self.rng.choice(list(seq))
        self.params[name] = value
        return value

    def randint(self, name, a, b):
        value = self.rng.randint(a, b)
        self.params[name] = value
        return value

    def uniform(self, name, a, b):
        value = round(self.rng.uniform(a, b), 3)
        self.params[name] = value
        return value

    def coin(self, name, p=0.5):
        value = self.rng.random() < p
        self.params[name] = value
        return value

    def count(self, what, detail, n=1):
        self.counts[what] += n
        self.details.append("%s: %s" % (what, detail))

    def unexpected(self, where, exc):
        self.count("errors", "%s raised %s: %s"
                   % (where, type(exc).__name__, str(exc)[:200]))

    # ---- pools, futures, helper threads -------------------------------------

    @property
    def broken_types(self):
        return (RuntimeError,)      # BrokenExecutor and "after shutdown"

    def pick_pool(self, thread=True, methods=METHODS):
        kind = self.choice("pool", ("thread", "process")) if thread \
            else "process"
        self.params["pool"] = kind
        method = self.choice("method", methods) if kind == "process" else None
        return kind, method

    def make(self, kind, method, workers, **kwargs):
        import multiprocessing
        if kind == "thread":
            return self.mod.ThreadPoolExecutor(workers, **kwargs)
        return self.mod.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(method), **kwargs)

    def submit(self, ex, fn, *args):
        f = ex.submit(fn, *args)
        self.futures.append(f)
        return f

    def thread(self, target, *args):
        t = threading.Thread(target=self._guard, args=(target,) + args,
                             name="fault-helper-%d" % len(self.helpers))
        t.daemon = True
        self.helpers.append(t)
        t.start()
        return t

    def _guard(self, target, *args):
        try:
            target(*args)
        except BaseException as exc:
            self.unexpected("helper %s" % getattr(target, "__name__", "?"),
                            exc)

    def join_helpers(self, bound=BOUND):
        deadline = time.monotonic() + bound
        for t in self.helpers:
            join(t, deadline - time.monotonic())
        stuck = [t for t in self.helpers if t.is_alive()]
        for t in stuck:
            self.count("hangs", "helper thread %s still blocked" % t.name)
        self.helpers = stuck

    def timed(self, what, fn, bound=BOUND):
        t0 = time.monotonic()
        result = fn()
        spent = time.monotonic() - t0
        if spent > bound:
            self.count("hangs", "%s took %.1f s" % (what, spent))
        return result

    def wait_done(self, fs, bound=BOUND):
        """Poll (independently of the module's wait()) until every future
        of `fs` is done or `bound` passed; return those not done."""
        deadline = time.monotonic() + bound
        pending = list(fs)
        while pending and time.monotonic() < deadline:
            pending = [f for f in pending if not f.done()]
            if pending:
                time.sleep(0.01)
        return [f for f in pending if not f.done()]

    # ---- warm-up and baseline -----------------------------------------------

    def begin(self, kinds, method=None):
        """Start what multiprocessing keeps for good, run one pool of each
        kind to its end, then take the baseline."""
        import multiprocessing
        from multiprocessing import resource_tracker
        import fault_tasks
        resource_tracker.ensure_running()
        if method == "forkserver":
            from multiprocessing import forkserver
            forkserver.ensure_running()
        threads = set(threading.enumerate())
        procs = set(descendants(os.getpid()))
        for kind in kinds:
            ex = self.make(kind, method, 1)
            ex.submit(fault_tasks.square, 3).result(timeout=BOUND)
            ex.shutdown(wait=True)
            del ex
        self._settle(threads, procs)
        gc.collect()
        self.base = {
            "threads": set(threading.enumerate()),
            "procs": set(descendants(os.getpid())),
            "fds": fd_map(),
        }

    def _settle(self, threads, procs, bound=SETTLE):
        deadline = time.monotonic() + bound
        for t in threading.enumerate():
            if t not in threads and t is not threading.current_thread():
                join(t, deadline - time.monotonic())
        t = None
        while time.monotonic() < deadline:
            if not set(descendants(os.getpid())) - procs:
                break
            time.sleep(0.01)

    # ---- the checks at the end ----------------------------------------------

    def finish(self):
        """Lost futures, stuck helpers, leaked threads, processes, fds."""
        lost = self.wait_done(self.futures)
        for f in lost[:5]:
            self.details.append("lost: %r" % (f,))
        self.counts["lost"] += len(lost)
        self.futures = []
        del lost
        self.join_helpers()
        if self.base is None:
            return
        deadline = time.monotonic() + SETTLE
        me = threading.current_thread()
        new = [t for t in threading.enumerate()
               if t not in self.base["threads"] and t is not me
               and t not in self.helpers]
        for t in new:
            join(t, deadline - time.monotonic())
        for t in new:
            if t.is_alive():
                self.count("threads", repr(t))
        # A finished thread object can hold what its pool owned (the
        # stdlib's manager thread holds the queues): drop them before
        # counting fds.
        new = t = None
        leaked = {}
        while True:
            leaked = {p: s for p, s in descendants(os.getpid()).items()
                      if p not in self.base["procs"]}
            if not leaked or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        for p, s in sorted(leaked.items()):
            self.count("procs", "pid %d state %s: %s" % (p, s, cmdline(p)))
        gc.collect()
        base = self.base["fds"]
        for fd, target in sorted(fd_map().items()):
            if base.get(fd) != target:
                self.count("fds", "fd %d -> %s" % (fd, target))

    def result(self, elapsed):
        return {"kind": self.kind, "impl": self.impl, "seed": self.seed,
                "params": self.params, "counts": self.counts,
                "details": self.details[:20], "skipped": self.skipped,
                "elapsed": round(elapsed, 3)}


def _buffersize_ok(env):
    return env.impl == "cfutures" or sys.version_info >= (3, 14)


# ---- 1. submit storm + shutdown at a random moment --------------------------

def scenario_submit_storm(env):
    import fault_tasks
    kind, method = env.pick_pool()
    env.begin([kind], method)
    workers = env.randint("workers", 1, 4)
    nthreads = env.randint("threads", 2, 6)
    cap = env.choice("per_thread", (50, 300, 2000) if kind == "thread"
                     else (20, 100, 400))
    delay = env.uniform("delay", 0.0, 1.0)
    end = env.choice("end", ("shutdown", "shutdown", "shutdown", "drop"))
    wait = env.coin("wait")
    cancel = env.coin("cancel_futures")
    env.exit_now = env.coin("exit_now", 0.15)
    ex = env.make(kind, method, workers)
    stop = threading.Event()

    def submitter(i):
        r = random.Random(env.seed * 31 + i)
        for n in range(cap):
            if stop.is_set():
                return
            try:
                if r.random() < 0.02:
                    list(ex.map(fault_tasks.square, range(r.randint(1, 20))))
                elif r.random() < 0.02:
                    env.submit(ex, fault_tasks.raise_value_error, n)
                elif kind == "process" and r.random() < 0.02:
                    env.submit(ex, fault_tasks.return_unpicklable, n)
                elif kind == "process" and r.random() < 0.02:
                    try:
                        env.submit(ex, fault_tasks.identity,
                                   fault_tasks.Unpicklable())
                    except TypeError:
                        pass                    # raised by submit: fine
                else:
                    env.submit(ex, fault_tasks.sleep_return, n,
                               0.005 if r.random() < 0.05 else 0)
            except env.mod.CancelledError:
                pass                            # map, cancel_futures
            except RuntimeError:
                return                          # shut down, or broken
            if r.random() < 0.05:
                time.sleep(0.001)

    for i in range(nthreads):
        env.thread(submitter, i)
    time.sleep(delay)
    if end == "drop":
        # No shutdown: the executor is dropped with work queued.
        stop.set()
        env.join_helpers()
        del ex
        gc.collect()
        return
    accepted = list(env.futures)        # all returned before shutdown began
    env.timed("shutdown(wait=%s, cancel_futures=%s)" % (wait, cancel),
              lambda: ex.shutdown(wait=wait, cancel_futures=cancel))
    if wait:
        early = [f for f in accepted if not f.done()]
        if early:
            env.count("lost", "%d of %d futures not done when "
                      "shutdown(wait=True) returned: %r"
                      % (len(early), len(accepted), early[0]), len(early))
    stop.set()
    env.join_helpers()


# ---- 2. workers crashing ----------------------------------------------------

def scenario_worker_crash(env):
    import fault_tasks
    from concurrent.futures.process import BrokenProcessPool
    kind, method = env.pick_pool(thread=False)
    env.begin([kind], method)
    workers = env.randint("workers", 1, 4)
    n = env.randint("tasks", 5, 60)
    crashes = env.randint("crashes", 1, 3)
    how = [env.rng.choice(fault_tasks.CRASH_KINDS) for _ in range(crashes)]
    env.params["crash_kinds"] = how
    at = set(env.rng.sample(range(n), crashes))
    use_map = env.coin("map", 0.3)
    big = 0 if use_map else env.choice(
        "big", (0, 0, 1 << 16, 1 << 20, 8 << 20))
    env.exit_now = env.coin("exit_now", 0.15)
    ex = env.make(kind, method, workers)
    plan, k = [], 0
    for i in range(n):
        crash = None
        if i in at:
            crash, k = how[k], k + 1
        plan.append((i, env.rng.choice((0, 0, 0.01, 0.05)), crash))
    fs = []
    try:
        if use_map:
            it = ex.map(fault_tasks.maybe_crash, *zip(*plan))
            got = []
            try:
                for value in it:
                    got.append(value)
            except BrokenProcessPool:
                pass
            if got != list(range(len(got))):
                env.count("errors", "map results out of order: %r" % got[:10])
        elif big:
            # Big arguments (a write into a pipe whose reader dies) and big
            # results (a read from a writer that dies).
            for i, _d, crash in plan:
                if env.rng.random() < 0.5:
                    fs.append(env.submit(ex, fault_tasks.big_or_crash,
                                         b"a" * big, crash))
                    plan[i] = (big, 0, crash)
                else:
                    fs.append(env.submit(ex, fault_tasks.maybe_crash,
                                         i, 0, crash))
                    if crash is None and env.rng.random() < 0.5:
                        fs[-1] = env.submit(ex, fault_tasks.length,
                                            b"b" * big)
                        plan[i] = (big, 0, None)
        else:
            for args in plan:
                fs.append(env.submit(ex, fault_tasks.maybe_crash, *args))
    except BrokenProcessPool:
        pass            # submit after the break was noticed
    not_done = env.wait_done(fs)
    for i, f in enumerate(fs):
        if f in not_done:
            continue
        if f.cancelled():
            continue
        exc = f.exception()
        if exc is None:
            if f.result() != plan[i][0] or plan[i][2] is not None:
                env.count("errors", "task %d returned %r" % (i, f.result()))
        elif not isinstance(exc, BrokenProcessPool):
            env.unexpected("task %d" % i, exc)
    # The pool is broken now (or about to be): a submit must fail.
    try:
        f = env.submit(ex, fault_tasks.square, 3)
        env.wait_done([f])
        if f.done() and not f.cancelled() and f.exception() is None:
            env.count("errors", "submit after a worker crash succeeded")
    except BrokenProcessPool:
        pass
    except Exception as exc:
        env.unexpected("submit after crash", exc)
    wait = env.coin("wait")
    env.timed("shutdown(wait=%s)" % wait, lambda: ex.shutdown(wait=wait))


# ---- 3. Ctrl-C while blocked ------------------------------------------------

def scenario_ctrl_c(env):
    import fault_tasks
    kind, method = env.pick_pool()
    env.begin([kind], method)
    ops = ["result", "wait", "as_completed", "map", "shutdown", "with",
           "submit_loop"]
    if _buffersize_ok(env):
        ops.append("map_buffersize")
    if kind == "process":
        ops += ["submit_big", "result_big"]
    op = env.choice("op", ops)
    env.exit_now = env.coin("exit_now", 0.15)
    workers = env.randint("workers", 1, 3)
    n = env.randint("tasks", 2, 12)
    dur = env.choice("duration", (0.02, 0.1, 0.3))
    if env.rng.random() < 0.3:      # early: while the pool starts up
        delay = env.uniform("delay", 0.0, 0.02)
    else:
        delay = env.uniform("delay", 0.0, min(1.5, n * dur / workers + 0.2))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.name = "fault-timer"
    timer.daemon = True
    env.helpers.append(timer)
    ex = env.make(kind, method, workers)
    interrupted = False
    where = ["op"]
    try:
        timer.start()
        if op == "with":
            with ex:
                for i in range(n):
                    env.submit(ex, fault_tasks.sleep_return, i, dur)
        else:
            fs = [env.submit(ex, fault_tasks.sleep_return, i, dur)
                  for i in range(n)]
            if op == "result":
                for f in fs:
                    f.result()
            elif op == "wait":
                env.mod.wait(fs)
            elif op == "as_completed":
                for f in env.mod.as_completed(fs):
                    pass
            elif op == "map":
                list(ex.map(fault_tasks.sleep_return, range(n),
                            itertools.repeat(dur)))
            elif op == "map_buffersize":
                list(ex.map(fault_tasks.sleep_return, range(n * 4),
                            itertools.repeat(dur / 4), buffersize=2))
            elif op == "submit_loop":
                t_end = time.monotonic() + 2.0
                for _ in range(20000):
                    if time.monotonic() > t_end:
                        break
                    env.submit(ex, fault_tasks.square, 3)
            elif op == "submit_big":
                data = b"x" * (4 << 20)
                for i in range(40):
                    env.submit(ex, fault_tasks.length, data)
            elif op == "result_big":
                for i in range(10):
                    env.submit(ex, fault_tasks.big_result, 8 << 20).result()
            elif op == "shutdown":
                ex.shutdown(wait=True)
        where[0] = "after"
        timer.join()
        time.sleep(0.3)                 # the KeyboardInterrupt lands here
    except KeyboardInterrupt:
        interrupted = True
        # Where it landed: the innermost frames, for telling apart the
        # module's windows from multiprocessing's or threading's.
        frames = traceback.extract_tb(sys.exc_info()[2])[-3:]
        env.params["landed_at"] = " < ".join(
            "%s:%s:%d" % (os.path.basename(f.filename), f.name, f.lineno)
            for f in reversed(frames))
    env.params["interrupted"] = interrupted
    env.params["landed"] = where[0]
    timer.join()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env.timed("shutdown(cancel_futures=True) after Ctrl-C",
              lambda: ex.shutdown(wait=True, cancel_futures=True))


# ---- 4. shutdown while the call is pickled ----------------------------------

def scenario_shutdown_in_pickle(env):
    import fault_tasks
    kind, method = env.pick_pool(thread=False)
    env.begin([kind], method)
    workers = env.randint("workers", 1, 3)
    variant = env.choice("variant", ("shutdown_in_reduce", "sleep_in_reduce",
                                     "fail_in_reduce"))
    cancel = env.coin("cancel_futures")
    wait = env.coin("wait")
    n = env.randint("tasks", 3, 30)
    hooks = env.randint("hooked", 1, 3)
    at = set(env.rng.sample(range(n), min(hooks, n)))
    two = env.coin("two_submitters", 0.3)
    ex = env.make(kind, method, workers)
    token = "t%d" % env.seed

    if variant == "shutdown_in_reduce":
        def hook():
            ex.shutdown(wait=False, cancel_futures=cancel)
    elif variant == "sleep_in_reduce":
        pause = env.uniform("pause", 0.05, 0.5)

        def hook():
            time.sleep(pause)
        env.thread(lambda: (time.sleep(env.rng.uniform(0, 0.3)),
                            ex.shutdown(wait=wait, cancel_futures=cancel)))
    else:
        def hook():
            if env.rng.random() < 0.5:
                ex.shutdown(wait=False, cancel_futures=cancel)
    fault_tasks.HOOKS[token] = hook

    def submitter(lo, hi):
        for i in range(lo, hi):
            arg = i
            if i in at:
                arg = fault_tasks.Hook(token, i,
                                       fail=variant == "fail_in_reduce")
            try:
                env.submit(ex, fault_tasks.sleep_return, arg,
                           env.rng.choice((0, 0, 0.01)))
            except RuntimeError:
                return
            except Exception as exc:        # pickling error raised by submit
                if "on purpose" not in str(exc):
                    env.unexpected("submit", exc)

    if two:
        env.thread(submitter, n // 2, n)
        submitter(0, n // 2)
    else:
        submitter(0, n)
    env.join_helpers()
    for i, f in enumerate(env.futures):
        if f.done() and not f.cancelled():
            exc = f.exception()
            if exc is not None and "on purpose" not in str(exc) \
                    and not isinstance(exc, RuntimeError):
                env.unexpected("future %d" % i, exc)
    env.timed("shutdown(wait=True)", lambda: ex.shutdown(wait=True))
    fault_tasks.HOOKS.pop(token, None)


# ---- 5. map / as_completed iterators from several threads -------------------

def scenario_iterators(env):
    import fault_tasks
    kind, method = env.pick_pool()
    env.begin([kind], method)
    workers = env.randint("workers", 1, 3)
    n = env.randint("items", 5, 40)
    dur = env.choice("duration", (0, 0.005, 0.02))
    which = env.choice("iterator", ("map", "as_completed", "both"))
    reenter = env.choice("reenter", (0.0, 0.2, 0.5))
    close_after = env.uniform("close_after", 0.0, 0.5)
    buffersize = None
    if _buffersize_ok(env) and env.coin("use_buffersize"):
        buffersize = env.randint("buffersize", 1, 4)
    timeout = env.choice("timeout", (None, None, 5.0, 0.01))
    ex = env.make(kind, method, workers)
    holder = []
    lock = threading.Lock()
    expected = (ValueError, StopIteration, env.mod.TimeoutError,
                env.mod.CancelledError, GeneratorExit)
    seen = collections.Counter()

    def note(exc):
        with lock:
            seen[type(exc).__name__] += 1

    def gen(count):
        for i in range(count):
            if holder and env.rng.random() < reenter:
                try:
                    next(env.rng.choice(holder))
                except expected as exc:
                    note(exc)
                except RuntimeError as exc:     # a generator's StopIteration
                    note(exc)
            yield i

    def consume(it):
        while True:
            try:
                next(it)
            except StopIteration:
                return
            except expected as exc:
                note(exc)
                if not isinstance(exc, ValueError):
                    return
                time.sleep(0.001)
            except RuntimeError as exc:
                note(exc)
                return

    def closer(it):
        time.sleep(close_after)
        close = getattr(it, "close", None)
        if close is not None:
            try:
                close()
            except expected as exc:
                note(exc)

    iters = []
    if which in ("map", "both"):
        kwargs = {"timeout": timeout}
        if buffersize:
            kwargs["buffersize"] = buffersize
        it = ex.map(fault_tasks.sleep_return, gen(n), itertools.repeat(dur),
                    **kwargs)
        iters.append(it)
        holder.append(it)
    if which in ("as_completed", "both"):
        def inputs():
            for i in gen(n):
                yield env.submit(ex, fault_tasks.sleep_return, i, dur)
        it = env.mod.as_completed(inputs(), timeout=timeout)
        iters.append(it)
        holder.append(it)
    for it in iters:
        env.thread(consume, it)
        env.thread(consume, it)
        if env.rng.random() < 0.7:
            env.thread(closer, it)
    env.join_helpers(BOUND + (timeout or 0))
    env.params["exceptions"] = dict(seen)
    del iters, holder, it
    env.timed("shutdown", lambda: ex.shutdown(
        wait=True, cancel_futures=env.rng.random() < 0.5))


# ---- 6. fork() with busy pools ----------------------------------------------

def _fork_child(env, tp, pp):
    """In the fork()ed child: the thread pool must work, the process pool
    works or is broken.  Exit status bits: 1 thread pool timed out, 2
    thread pool failed, 4 process pool timed out, 8 process pool failed
    otherwise."""
    import fault_tasks
    code = 0
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(20)
        try:
            if tp.submit(fault_tasks.square, 7).result(timeout=5) != 49:
                code |= 2
        except env.mod.TimeoutError:
            code |= 1
        except BaseException:
            code |= 2
        try:
            pp.submit(fault_tasks.square, 7).result(timeout=5)
        except env.mod.TimeoutError:
            code |= 4
        except RuntimeError:        # BrokenProcessPool
            pass
        except BaseException:
            code |= 8
    finally:
        os._exit(code)


def scenario_fork(env):
    import fault_tasks
    method = env.choice("method", METHODS)
    env.begin(["thread", "process"], method)
    tp = env.make("thread", None, env.randint("thread_workers", 1, 4))
    pp = env.make("process", method, env.randint("process_workers", 1, 3))
    for i in range(env.randint("tasks", 2, 12)):
        d = env.rng.choice((0.01, 0.05, 0.2))
        env.submit(tp, fault_tasks.sleep_return, i, d)
        env.submit(pp, fault_tasks.sleep_return, i, d)
    time.sleep(env.uniform("delay", 0.0, 0.3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pid = os.fork()
    if pid == 0:
        _fork_child(env, tp, pp)
    # The parent's pools go on working.
    more = [(i, env.submit(tp, fault_tasks.square, i)) for i in range(5)]
    more += [(i, env.submit(pp, fault_tasks.square, i)) for i in range(5)]
    env.wait_done([f for _, f in more])
    for i, f in more:
        if f.done() and (f.cancelled() or f.exception() is not None
                         or f.result() != i * i):
            env.count("errors", "parent's pool after fork: %r" % (f,))
    deadline = time.monotonic() + 25
    status = None
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        env.count("hangs", "fork()ed child did not exit")
        status = 0
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGALRM:
            env.count("hangs", "fork()ed child ran out of time")
        else:
            env.count("crashes", "fork()ed child died of %s"
                      % signal.Signals(sig).name)
    elif os.WIFEXITED(status) and os.WEXITSTATUS(status):
        code = os.WEXITSTATUS(status)
        names = {1: "thread pool timed out in the fork()ed child",
                 2: "thread pool failed in the fork()ed child",
                 4: "process pool timed out in the fork()ed child",
                 8: "process pool failed in the fork()ed child"}
        for bit, text in names.items():
            if code & bit:
                env.count("hangs" if bit in (1, 4) else "errors", text)
    env.timed("thread pool shutdown", lambda: tp.shutdown(wait=True))
    env.timed("process pool shutdown", lambda: pp.shutdown(wait=True))


# ---- 7. max_tasks_per_child + shutdown right after submitting ---------------

def scenario_max_tasks(env):
    import fault_tasks
    kind, method = env.pick_pool(thread=False, methods=("spawn", "forkserver"))
    env.begin([kind], method)
    workers = env.randint("workers", 1, 3)
    per = env.randint("max_tasks_per_child", 1, 3)
    n = env.randint("tasks", 3, min(40, 12 * per))
    wait = env.coin("wait")
    cancel = env.coin("cancel_futures")
    try:
        ex = env.make(kind, method, workers, max_tasks_per_child=per)
    except TypeError:
        env.skipped = True          # before 3.11
        return
    for i in range(n):
        env.submit(ex, fault_tasks.sleep_return, i,
                   env.rng.choice((0, 0, 0.01)))
    # Every task past the limit starts a process (spawn: ~0.1-0.5 s each).
    env.timed("shutdown(wait=%s, cancel_futures=%s)" % (wait, cancel),
              lambda: ex.shutdown(wait=wait, cancel_futures=cancel),
              bound=2 * BOUND)
    not_done = env.wait_done(env.futures, bound=2 * BOUND)
    for i, f in enumerate(env.futures):
        if f in not_done or f.cancelled():
            continue
        if f.exception() is not None or f.result() != i:
            env.count("errors", "task %d: %r" % (i, f))


# ---- 8. workers ignoring SIGTERM, one killed --------------------------------

def scenario_sigterm_ignored(env):
    import fault_tasks
    kind, method = env.pick_pool(thread=False)
    env.begin([kind], method)
    workers = env.randint("workers", 2, 4)
    n = env.randint("tasks", 4, 16)
    how = env.choice("kill", ("task", "external"))
    wait = env.coin("wait", 0.7)
    end = env.choice("end", ("shutdown", "shutdown", "terminate_workers",
                             "kill_workers"))
    ex = env.make(kind, method, workers,
                  initializer=fault_tasks.ignore_sigterm)
    if not hasattr(ex, end):
        end = env.params["end"] = "shutdown"   # before 3.14
    kill_at = env.rng.randrange(n)
    for i in range(n):
        if how == "task" and i == kill_at:
            env.submit(ex, fault_tasks.crash_after,
                       env.rng.uniform(0, 0.5), "sigkill")
        env.submit(ex, fault_tasks.sleep_return, i,
                   env.rng.choice((0.05, 0.3, 1.0)))
    if how == "external":
        time.sleep(env.rng.uniform(0.1, 0.6))
        pids = sorted(getattr(ex, "_processes", None) or ())
        if pids:
            try:
                os.kill(env.rng.choice(pids), signal.SIGKILL)
            except ProcessLookupError:
                pass
    if end != "shutdown":
        time.sleep(env.rng.uniform(0, 0.5))
        env.timed(end, getattr(ex, end))
    env.wait_done(env.futures)
    env.timed("shutdown(wait=%s) with SIGTERM ignored" % wait,
              lambda: ex.shutdown(wait=wait))


# ---- 9. cancel() storms -----------------------------------------------------

def scenario_cancel_storm(env):
    import fault_tasks
    kind, method = env.pick_pool()
    env.begin([kind], method)
    workers = env.randint("workers", 1, 3)
    n = env.randint("tasks", 20, 300 if kind == "thread" else 120)
    dur = env.choice("duration", (0, 0.001, 0.01))
    how = env.choice("main_waits", ("wait", "as_completed", "result",
                                    "shutdown_cancel"))
    ncancel = env.randint("cancellers", 1, 3)
    ex = env.make(kind, method, workers)
    fs = [env.submit(ex, fault_tasks.sleep_return, i, dur) for i in range(n)]
    cancelled_ok = set()
    stop = threading.Event()

    def canceller(i):
        r = random.Random(env.seed * 17 + i)
        while not stop.is_set():
            f = r.choice(fs)
            if f.cancel():
                cancelled_ok.add(fs.index(f))
            f.cancelled(), f.running(), f.done()
            if r.random() < 0.1:
                time.sleep(0.0005)

    for i in range(ncancel):
        env.thread(canceller, i)
    try:
        if how == "wait":
            env.mod.wait(fs, timeout=BOUND)
        elif how == "as_completed":
            for _ in env.mod.as_completed(fs, timeout=BOUND):
                pass
        elif how == "result":
            for f in fs:
                try:
                    f.result(timeout=BOUND)
                except env.mod.CancelledError:
                    pass
        else:
            time.sleep(env.rng.uniform(0, 0.2))
            ex.shutdown(wait=True, cancel_futures=True)
    except env.mod.TimeoutError:
        pass                    # counted as lost at the end
    stop.set()
    env.join_helpers()
    for i, f in enumerate(fs):
        if not f.done():
            continue
        if i in cancelled_ok and not f.cancelled():
            env.count("errors", "cancel() returned True but %r" % (f,))
        if f.cancelled():
            try:
                f.result(timeout=0)
                env.count("errors", "result() of cancelled %r" % (f,))
            except env.mod.CancelledError:
                pass
        elif f.exception() is not None or f.result() != i:
            env.count("errors", "task %d: %r" % (i, f))
    env.timed("shutdown", lambda: ex.shutdown(wait=True))


# ---- 10. done-callbacks that submit, shut down or raise ---------------------

def scenario_callbacks(env):
    import fault_tasks
    kind, method = env.pick_pool()
    env.begin([kind], method)
    workers = env.randint("workers", 1, 3)
    n = env.randint("tasks", 3, 30)
    budget = [env.randint("budget", 0, 150)]
    weights = env.choice("mix", ((4, 1, 1, 1, 1), (1, 1, 3, 1, 1),
                                 (2, 0, 1, 1, 1), (3, 1, 0, 0, 0)))
    env.exit_now = env.coin("exit_now", 0.15)
    ex = env.make(kind, method, workers)
    lock = threading.Lock()
    actions = ("submit", "shutdown", "raise", "result", "nothing")

    def callback(f):
        r = random.Random(id(f) ^ env.seed)
        action = r.choices(actions, weights)[0]
        if action == "submit":
            for _ in range(r.randint(1, 2)):
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                try:
                    g = env.submit(ex, fault_tasks.sleep_return, 0,
                                   r.choice((0, 0.01)))
                except RuntimeError:
                    return
                g.add_done_callback(callback)
        elif action == "shutdown":
            ex.shutdown(wait=False, cancel_futures=r.random() < 0.5)
        elif action == "raise":
            raise ValueError("callback raises on purpose")
        elif action == "result":
            if not f.cancelled():
                f.exception()

    for i in range(n):
        try:
            f = env.submit(ex, fault_tasks.sleep_return, i,
                           env.rng.choice((0, 0.01, 0.05)))
        except RuntimeError:
            break
        f.add_done_callback(callback)
        if env.rng.random() < 0.3:
            f.add_done_callback(callback)
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        fs = list(env.futures)
        if not env.wait_done(fs, max(0.0, deadline - time.monotonic())) \
                and len(env.futures) == len(fs):
            break
    env.timed("shutdown(wait=True)", lambda: ex.shutdown(wait=True))


SCENARIOS = {name: globals()["scenario_" + name] for name in KINDS}


def child_main(kind, impl, seed):
    import faulthandler
    faulthandler.enable()
    faulthandler.dump_traceback_later(CHILD_TIMEOUT - 4, exit=False)
    warnings.simplefilter("ignore")
    log = logging.getLogger("concurrent.futures")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    if impl == "stdlib":
        import concurrent.futures as mod
    else:
        import cfutures as mod
    import fault_tasks  # noqa: F401  (fail early if workers could not)
    env = Env(mod, impl, kind, seed)
    t0 = time.monotonic()
    try:
        SCENARIOS[kind](env)
    except BaseException as exc:
        env.count("errors", "scenario raised %s: %s\n%s"
                  % (type(exc).__name__, exc,
                     traceback.format_exc(limit=6)))
    try:
        if env.exit_now:
            # Leave at once: the interpreter's exit path meets the pools'
            # leftovers; the parent counts a hang, a crash, or processes
            # left behind.
            env.futures = []
            env.join_helpers()
        else:
            env.finish()
    except BaseException as exc:
        env.count("errors", "checks raised %s: %s" % (type(exc).__name__, exc))
    sys.stdout.write(MARK + json.dumps(env.result(time.monotonic() - t0))
                     + "\n")
    sys.stdout.flush()
    if env.counts["hangs"] or env.counts["lost"] or env.counts["threads"]:
        # Something is stuck: leave without joining it (the parent kills
        # the session).
        sys.stderr.flush()
        os._exit(0)
    # Otherwise leave normally: interpreter exit is checked too.


# =============================================================================
# The parent
# =============================================================================

def set_subreaper():
    """Orphans of a child round become our children (we reap them and can
    tell them apart from what pid 1 keeps)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)          # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def session_left(sid):
    """The processes of session `sid` still running; reaps those of its
    zombies that became ours (never waitpid(-1): other rounds' children)."""
    me = os.getpid()
    left = {}
    for p, (state, ppid, psid) in proc_table().items():
        if psid != sid:
            continue
        if state in ("Z", "X"):
            if ppid == me:
                try:
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
        else:
            left[p] = state
    return left


LIVE = set()     # process groups (= sessions) of the running rounds


def run_round(args, kind, seed, index):
    cmd = [args.python, os.path.abspath(__file__), "--child", kind,
           "--impl", args.impl, "--seed", str(seed)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [HERE, ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTHONFAULTHANDLER", None)
    base = os.path.join(args.log_dir, "round-%04d-%s" % (index, kind))
    rec = {"kind": kind, "seed": seed, "counts": dict.fromkeys(COUNTS, 0),
           "details": [], "log": base}
    t0 = time.monotonic()
    with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True)
        LIVE.add(proc.pid)
        timed_out = False
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
        finally:
            LIVE.discard(proc.pid)
    rec["elapsed"] = time.monotonic() - t0
    result = None
    with open(base + ".out", errors="replace") as fh:
        for line in fh:
            if line.startswith(MARK):
                try:
                    result = json.loads(line[len(MARK):])
                except ValueError:
                    pass
    counts = rec["counts"]
    if result is not None:
        for name in COUNTS:
            counts[name] += result["counts"].get(name, 0)
        rec["details"] += result.get("details", [])
        rec["params"] = result.get("params")
        rec["skipped"] = result.get("skipped")
    if timed_out:
        counts["hangs"] += 1
        rec["details"].append("hang: child killed after %.0f s%s"
                              % (args.timeout, " (after its result: at exit)"
                                 if result else ""))
    elif proc.returncode < 0:
        counts["crashes"] += 1
        rec["details"].append("crash: child died of %s%s" % (
            signal.Signals(-proc.returncode).name,
            " (after its result: at exit)" if result else ""))
    elif result is None:
        counts["errors"] += 1
        rec["details"].append("error: child exited %d without a result"
                              % proc.returncode)
    elif proc.returncode:
        counts["errors"] += 1
        rec["details"].append("error: child exited %d after its result"
                              % proc.returncode)
    # What the session still runs once the child is gone.
    deadline = time.monotonic() + (0.5 if timed_out else 3.0)
    left = session_left(proc.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = session_left(proc.pid)
    if left:
        if not timed_out and not counts["hangs"]:
            extra = len(left) - counts["procs"]
            if extra > 0:
                counts["procs"] += extra
                rec["details"].append("procs: %d left after the child exited:"
                                      " %s" % (len(left), "; ".join(
                                          "%d %s" % (p, cmdline(p))
                                          for p in sorted(left))))
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
        session_left(proc.pid)
    bad = any(counts.values())
    if not bad and not args.keep_logs:
        for suffix in (".out", ".err"):
            try:
                os.unlink(base + suffix)
            except OSError:
                pass
    return rec


def print_report(args, records, wall):
    by_kind = collections.OrderedDict((k, []) for k in args.kinds)
    for rec in records:
        by_kind[rec["kind"]].append(rec)
    print()
    header = ("%-20s %5s %5s" % ("scenario", "runs", "skip")
              + "".join(" %7s" % c for c in COUNTS))
    rows = []
    totals = collections.Counter()
    for kind, recs in by_kind.items():
        c = collections.Counter()
        for rec in recs:
            c.update(rec["counts"])
        skipped = sum(1 for r in recs if r.get("skipped"))
        totals.update(c)
        totals["runs"] += len(recs)
        totals["skip"] += skipped
        print("%s: runs=%d skipped=%d %s" % (
            kind, len(recs), skipped,
            " ".join("%s=%d" % (name, c[name]) for name in COUNTS)))
        rows.append("%-20s %5d %5d" % (kind, len(recs), skipped)
                    + "".join(" %7d" % c[name] for name in COUNTS))
    print()
    print("summary (impl=%s, python=%s, seed=%d, rounds=%d, wall %.1f s)"
          % (args.impl, args.python_version, args.seed, len(records), wall))
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)
    print("-" * len(header))
    print("%-20s %5d %5d" % ("total", totals["runs"], totals["skip"])
          + "".join(" %7d" % totals[name] for name in COUNTS))
    return sum(totals[name] for name in COUNTS)


def parent_main(args):
    set_subreaper()
    if args.log_dir is None:
        import tempfile
        args.log_dir = tempfile.mkdtemp(prefix="fault_run-")
    os.makedirs(args.log_dir, exist_ok=True)
    args.python_version = subprocess.check_output(
        [args.python, "-c", "import sys; print('%d.%d.%d' % "
         "sys.version_info[:3])"]).decode().strip()
    rng = random.Random(args.seed)
    print("fault run: impl=%s python=%s seed=%d rounds<=%s seconds<=%s "
          "logs in %s" % (args.impl, args.python_version, args.seed,
                          args.rounds or "inf", args.seconds, args.log_dir))
    sys.stdout.flush()
    records = []
    t0 = time.monotonic()
    # The rounds' kinds and seeds depend on --seed only (not on timing).
    plan = ((index, rng.choice(args.kinds), rng.randrange(1 << 31))
            for index in itertools.count())
    lock = threading.Lock()

    def next_round():
        with lock:
            if args.rounds and len(records) + running[0] >= args.rounds:
                return None
            if time.monotonic() - t0 >= args.seconds:
                return None
            running[0] += 1
            return next(plan)

    def worker():
        while True:
            item = next_round()
            if item is None:
                return
            index, kind, seed = item
            try:
                rec = run_round(args, kind, seed, index)
            except Exception as exc:   # keep going whatever one round did
                rec = {"kind": kind, "seed": seed, "log": "-",
                       "counts": dict.fromkeys(COUNTS, 0), "elapsed": 0,
                       "details": ["error: parent: %r" % (exc,)]}
                rec["counts"]["errors"] = 1
            with lock:
                running[0] -= 1
                records.append(rec)
                report_round(args, index, kind, seed, rec)

    running = [0]
    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:
        print("interrupted: killing the running rounds")
        args.seconds = 0
        for pid in list(LIVE):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        for t in threads:
            t.join(5.0)
    bad = print_report(args, records, time.monotonic() - t0)
    return 1 if bad else 0


def report_round(args, index, kind, seed, rec):
    if not any(rec["counts"].values()):
        return
    print("round %d %s seed=%d: %s  [%s.err; replay: %s %s --child %s"
          " --impl %s --seed %d]" % (
              index, kind, seed, " ".join(
                  "%s=%d" % kv for kv in rec["counts"].items() if kv[1]),
              rec["log"], os.path.basename(args.python),
              os.path.relpath(__file__), kind, args.impl, seed))
    for d in rec["details"][:6]:
        print("    " + d.replace("\n", "\n    ").rstrip())
    if rec.get("params"):
        print("    params: %s" % json.dumps(rec["params"]))
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=0,
                    help="stop after N rounds (default: only --seconds)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=240.0,
                    help="stop starting rounds after T seconds (240)")
    ap.add_argument("--impl", choices=("cfutures", "stdlib"),
                    default="cfutures")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="comma-separated scenario kinds (all)")
    ap.add_argument("--timeout", type=float, default=CHILD_TIMEOUT,
                    help="bound of one round (%d s)" % CHILD_TIMEOUT)
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter for the child rounds (this one)")
    ap.add_argument("--log-dir", default=None,
                    help="where the rounds' output goes (a new temp dir)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the output of clean rounds too")
    ap.add_argument("--jobs", type=int, default=1,
                    help="rounds run at once (1; more adds load)")
    ap.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 31)
    if args.child:
        child_main(args.child, args.impl, args.seed)
        return 0
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for k in args.kinds:
        if k not in KINDS:
            ap.error("unknown kind %r (known: %s)" % (k, ", ".join(KINDS)))
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
