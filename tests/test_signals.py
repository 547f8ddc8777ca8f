"""Ctrl-C while the main thread is blocked in result(), exception(), wait()
or as_completed() raises KeyboardInterrupt promptly.

Each case runs in a child interpreter: it prints READY, blocks on a future
nobody completes, and reports when KeyboardInterrupt reached it.  The parent
waits for READY and for the child to be asleep in the kernel, sends SIGINT,
and measures the delay on the shared monotonic clock (CLOCK_MONOTONIC is
system-wide on Linux).
"""

import select
import signal
import sys
import time

import pytest

from futures_helpers import TIMEOUT, agreed, start_child, which
from process_tasks import wait_asleep

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

PROMPT = 1.0    # must; the design target is 0.1 s

CHILD = r"""
import sys, time
from child import futures
m = futures(sys.argv[1])
op = sys.argv[2]
f = m.Future()
other = m.Future()
ops = {
    "result": lambda: f.result(),
    "result_timeout": lambda: f.result(timeout=300),
    "exception": lambda: f.exception(),
    "exception_timeout": lambda: f.exception(timeout=300),
    "wait": lambda: m.wait([f, other]),
    "wait_first": lambda: m.wait([f, other], return_when=m.FIRST_COMPLETED),
    "wait_timeout": lambda: m.wait([f], timeout=300),
    "as_completed": lambda: next(m.as_completed([f, other])),
    "as_completed_timeout": lambda: next(m.as_completed([f], timeout=300)),
}
block = ops[op]
try:
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    block()
    print("RETURNED", flush=True)
except KeyboardInterrupt:
    caught = time.monotonic()
    # the future still works after the interrupted wait
    f.set_result(7)
    print("KI %r %r %r" % (caught, f.result(timeout=5),
                           m.wait([f], timeout=5).done == {f}), flush=True)
"""

OPS = ["result", "result_timeout", "exception", "exception_timeout", "wait",
       "wait_first", "wait_timeout", "as_completed", "as_completed_timeout"]


def _read_line(stream, timeout):
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "child did not report READY within %s s" % timeout
    return stream.readline().strip()


def interrupted(m, op):
    """(what the child reported, its return code, its stderr, the delay)."""
    child = start_child(["-W", "error", "-c", CHILD, which(m), op],
                        pipe_stdout=True)
    try:
        assert _read_line(child.proc.stdout, TIMEOUT) == "READY"
        wait_asleep(child.proc.pid)
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
    except BaseException:
        child.kill()
        child.close()
        raise
    rc, out, err = child.finish()
    words = out.split()
    delay = None
    if words[:1] == ["KI"]:
        delay = float(words[1]) - sent
        words = ["KI"] + words[2:]
    return words, rc, err, delay


@pytest.mark.parametrize("op", OPS)
def test_sigint_interrupts_blocking_call(mod, op):
    delays = {}

    def scenario(m):
        words, rc, err, delay = interrupted(m, op)
        delays[m.__name__] = delay
        return words, rc, err, delay is not None and delay < PROMPT

    assert agreed(scenario, mod) == (["KI", "7", "True"], 0, "", True), delays
