"""Ctrl-C in a program using a ProcessPoolExecutor, as in the stdlib.

Each case runs a child interpreter (in a session of its own) that starts a
pool, gives it a long task, reports its workers' pids, prints READY and
blocks in f.result(), wait(), list(ex.map(...)) or ex.shutdown(wait=True).
The test then sends SIGINT:

- to the child's whole process group, as a terminal's Ctrl-C does (the
  workers get it too): the child prints KI (KeyboardInterrupt reached its
  main thread) and exits at once, and no worker is left running;
- to the child alone: KI is printed at once, then -- as the stdlib does at
  interpreter exit -- the child waits for the running task, and exits when
  the test lets that task finish; no worker is left running.

Every wait is bounded; the process group is killed at the end regardless.
"""

import concurrent.futures
import os
import queue
import signal
import subprocess
import sys
import threading

import pytest

from futures_helpers import TIMEOUT, agreed_once, start_child, which
from process_tasks import Sync, wait_asleep, wait_gone

REF = concurrent.futures

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals, /proc"),
]

# The stdlib before 3.13 never exits after Ctrl-C interrupted
# shutdown(wait=True) (seen here on 3.9-3.12, group or main process alike;
# 3.13 exits at once).  There cfutures is checked alone against what the
# 3.13 stdlib does.
STDLIB_SHUTDOWN_OK = sys.version_info >= (3, 13)

CHILD = r"""
import multiprocessing, sys
import process_tasks
from child import futures, say
which, op, method, directory = sys.argv[1:5]
m = futures(which)

if __name__ == "__main__":
    sync = process_tasks.Sync(directory)
    ctx = multiprocessing.get_context(method)
    ex = m.ProcessPoolExecutor(2, mp_context=ctx)
    say("WARM %d" % ex.submit(process_tasks.square, 3).result())
    if op == "map":
        it = ex.map(process_tasks.block, [directory] * 2, ["long", "long2"])
        block = lambda: list(it)
    else:
        f = ex.submit(process_tasks.block, directory, "long")
        block = {"result": f.result,
                 "wait": lambda: m.wait([f]),
                 "shutdown": ex.shutdown}[op]
    sync.started("long")
    say("PIDS " + " ".join(str(p) for p in sorted(ex._processes)))
    say("READY")
    try:
        block()
        say("RETURNED")
    except KeyboardInterrupt:
        say("KI")
"""


def _wait_all_asleep(child, pids):
    """Until the child's main thread and its workers all sleep in the
    kernel.  A worker that is runnable may have just been handed a lock it
    waited for (the stdlib's idle worker: the call queue's reader lock)
    without having run since: a SIGINT then raises KeyboardInterrupt in it
    after the lock was taken and before the `with` that would release it,
    the lock stays taken forever, and the stdlib's exit hangs (seen on a
    loaded machine).  Asleep, it is past that point."""
    for pid in [child.proc.pid] + list(pids):
        wait_asleep(pid)


class Child(object):
    """The child interpreter (start_child, its stdout a pipe), its stdout
    read line by line by a thread."""

    def __init__(self, m, op, method, directory):
        self.child = start_child(["-c", CHILD, which(m), op, method,
                                  directory], pipe_stdout=True)
        self.proc = self.child.proc
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=TIMEOUT):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("child said nothing for %s s; stderr:\n%s"
                                 % (timeout, self.stderr()))

    def until_ready(self):
        """The worker pids the child reported before READY."""
        pids = []
        while True:
            line = self.line()
            if line is None or line == "READY":
                assert line == "READY", "child ended early:\n" + self.stderr()
                return pids
            if line.startswith("PIDS "):
                pids = [int(p) for p in line.split()[1:]]

    def rest(self, timeout=TIMEOUT):
        """The remaining lines, and the exit status (None: still running
        after timeout)."""
        # (what it leaves is left to the test to find)
        if self.child.wait(timeout, reap_group=False) is None:
            return None, None
        self.reader.join(TIMEOUT)
        lines = []
        while True:
            line = self.lines.get(timeout=TIMEOUT)
            if line is None:
                return lines, self.proc.returncode
            lines.append(line)

    def stderr(self):
        return self.child.stderr()

    def close(self):
        self.child.kill()
        self.reader.join(TIMEOUT)
        self.child.close()


def compare(scenario, m, stdlib_ok, expected):
    """agreed_once() where the stdlib behaves; else cfutures alone against what
    the stdlib does where it does not hang."""
    if stdlib_ok:
        return agreed_once(scenario, m)
    if m is REF:
        pytest.skip("this stdlib hangs here (fixed in 3.13)")
    got = scenario(m)
    assert got == expected
    return got


CASES = [("result", "fork"), ("result", "spawn"), ("result", "forkserver"),
         ("wait", "fork"), ("map", "fork"), ("map", "spawn"),
         ("shutdown", "fork"), ("shutdown", "forkserver")]


@pytest.mark.parametrize("op, method", CASES)
def test_ctrl_c_to_the_process_group(mod, tmp_path, op, method):
    def scenario(m):
        directory = str(tmp_path / m.__name__)
        os.mkdir(directory)
        child = Child(m, op, method, directory)
        try:
            pids = child.until_ready()
            _wait_all_asleep(child, pids)
            os.killpg(child.proc.pid, signal.SIGINT)
            lines, rc = child.rest()
            left = wait_gone(pids)
            return lines, rc, len(pids) > 0, left
        finally:
            Sync(directory).release()
            child.close()

    expected = (["KI"], 0, True, [])
    got = compare(scenario, mod, op != "shutdown" or STDLIB_SHUTDOWN_OK,
                  expected)
    assert got == expected


@pytest.mark.parametrize("op", ["result", "wait", "map", "shutdown"])
def test_ctrl_c_to_the_main_process_only(mod, tmp_path, op):
    def scenario(m):
        directory = str(tmp_path / m.__name__)
        os.mkdir(directory)
        child = Child(m, op, "fork", directory)
        try:
            pids = child.until_ready()
            _wait_all_asleep(child, pids)
            child.proc.send_signal(signal.SIGINT)
            first = child.line()
            # Exit waits for the running task, as the stdlib's does.
            try:
                child.proc.wait(0.3)
                waits = False
            except subprocess.TimeoutExpired:
                waits = True
            Sync(directory).release()
            lines, rc = child.rest()
            left = wait_gone(pids)
            return first, waits, lines, rc, len(pids) > 0, left
        finally:
            Sync(directory).release()
            child.close()

    expected = ("KI", True, [], 0, True, [])
    got = compare(scenario, mod, op != "shutdown" or STDLIB_SHUTDOWN_OK,
                  expected)
    assert got == expected
