"""Ctrl-C ends a program that uses cfutures promptly and quietly.

A child program blocks in one call -- result(), wait(), as_completed(),
map(), shutdown(), the `with` block's exit, or no block at all (the
interpreter's exit) -- while its process pool's workers run long tasks and
more wait; then it gets a real SIGINT, to its whole process group (as a
terminal sends it) or to itself alone (its running tasks then go on).
Within 2 s it must be gone, having printed one traceback (its own
KeyboardInterrupt), none from the workers, and no queued task may have
started.  The stdlib hangs here (its exit waits for every queued task), so
only cfutures runs; a thread pool left by Ctrl-C cancels its queued tasks
the same way (its running ones cannot be stopped).  Under a group SIGINT
the running tasks end at once by KeyboardInterrupt; the pool then holds its
queued work back for 0.5 s, so that the main thread cancels it first.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals, process groups"),
]

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
PROMPT = 2.0            # the bar: back at the prompt this soon after Ctrl-C

PROGRAM = textwrap.dedent("""
    import multiprocessing, os, sys, time
    import cfutures

    MARKS = sys.argv[1]

    def task(i):
        open(os.path.join(MARKS, "ran.%d" % i), "w").close()
        time.sleep(30)
        return i

    def started(n):
        while len([m for m in os.listdir(MARKS) if m.startswith("ran.")]) < n:
            time.sleep(0.01)

    def block(ex, fs, where):
        if where == "result":
            fs[0].result()
        elif where == "wait":
            cfutures.wait(fs)
        elif where == "as_completed":
            for f in cfutures.as_completed(fs):
                pass
        elif where == "map":
            list(ex.map(time.sleep, [30] * 4))
        elif where == "shutdown":
            ex.shutdown()

    if __name__ == "__main__":
        kind, method, where = sys.argv[2:5]
        if kind == "process":
            ex = cfutures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method))
        else:
            ex = cfutures.ThreadPoolExecutor(2)
        if where == "exit":
            fs = [ex.submit(task, i) for i in range(6)]
            started(2)
            print("ready", flush=True)
            fs[0].result()
        with ex:
            fs = [ex.submit(task, i) for i in range(6)]
            started(2)
            print("ready", flush=True)
            block(ex, fs, where)
""")


def run_interrupted(tmp_path, kind, method, where, to_group):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    child = subprocess.Popen(
        [sys.executable, str(script), str(marks), kind, method, where],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=env)
    try:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
        time.sleep(0.2)     # into the blocking call (nothing to wait on: it blocks)
        sent = time.monotonic()
        if to_group:
            os.killpg(child.pid, signal.SIGINT)
        else:
            os.kill(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    ran = sorted(int(m.split(".")[1]) for m in os.listdir(str(marks)))
    return took, err, ran, child.returncode


def assert_prompt_and_quiet(took, err, ran, returncode):
    assert took < PROMPT, "%.2f s after Ctrl-C" % took
    assert err.count("Traceback") == 1 and err.rstrip().endswith("KeyboardInterrupt"), err
    assert ran == [0, 1], "queued tasks started: %r" % ran
    assert returncode == -signal.SIGINT


@pytest.mark.parametrize("where", ["result", "wait", "as_completed", "map", "shutdown",
                                   "with", "exit"])
def test_process_pool_ctrl_c_from_the_terminal(tmp_path, where):
    assert_prompt_and_quiet(*run_interrupted(tmp_path, "process", "fork", where, True))


@pytest.mark.parametrize("method, where", [
    ("fork", "result"), ("fork", "with"), ("fork", "exit"), ("spawn", "shutdown"),
    ("forkserver", "as_completed")])
def test_process_pool_ctrl_c_to_the_parent_alone(tmp_path, method, where):
    # The workers get no SIGINT: their tasks run on until they are stopped.
    assert_prompt_and_quiet(*run_interrupted(tmp_path, "process", method, where, False))


def test_thread_pool_with_block_left_by_ctrl_c_cancels_the_queue(tmp_path):
    # Its two running tasks cannot be stopped (they sleep 30 s); SIGINT goes
    # to the group, which interrupts neither.  What the program must not do
    # is start the four queued ones: we stop it once it is back to waiting
    # for the running two.
    script = tmp_path / "program.py"
    script.write_text(PROGRAM.replace("time.sleep(30)", "time.sleep(1.0)"))
    marks = tmp_path / "marks"
    marks.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT)
    child = subprocess.Popen(
        [sys.executable, str(script), str(marks), "thread", "-", "result"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=env)
    try:
        assert child.stdout.readline() == "ready\n"
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    assert sorted(os.listdir(str(marks))) == ["ran.0", "ran.1"]
    assert err.count("Traceback") == 1 and "KeyboardInterrupt" in err
