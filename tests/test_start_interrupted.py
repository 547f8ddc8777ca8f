"""Found by the fault run (scripts/fault_run.py): what a pool starts, and
what a failed submit leaves behind.

- Ctrl-C can land in threading.Thread.start() after the new thread was
  created (start() waits for it to run): a pool's I/O thread or worker then
  runs although start() raised.  submit() raises the KeyboardInterrupt, and
  the pool goes on: later submits work, shutdown(wait=True) joins every
  thread it started, nothing is left running and the interpreter exits.
- A call that cannot be pickled fails its future with the pickling error
  (the formatted traceback as its __cause__, as the stdlib's); the error
  keeps no frame of submit()'s caller alive, so a dropped executor goes away
  with its workers even while the failed future lives.

Each case runs in a child interpreter (a leaked thread would hang its exit),
for both modules where the stdlib has an outcome to compare with.
"""
import textwrap

import pytest

from futures_helpers import ROOT, run_child


pytestmark = pytest.mark.timeout(120)

INTERRUPTED_START = textwrap.dedent("""
    import importlib, multiprocessing, sys, threading
    m = importlib.import_module(sys.argv[1])
    which = sys.argv[2]
    started = threading.Thread.start

    def start(self):
        started(self)
        raise KeyboardInterrupt          # as Ctrl-C in start()'s wait

    if which == "thread":
        ex = m.ThreadPoolExecutor(2)
    else:
        ex = m.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(which))
    threading.Thread.start = start
    try:
        ex.submit(abs, -1)
        print("submit returned")
    except KeyboardInterrupt:
        print("submit raised KeyboardInterrupt")
    threading.Thread.start = started
    print("then", ex.submit(abs, -5).result(timeout=30))
    ex.shutdown(wait=True)
    print("left", [t.name for t in threading.enumerate()
                   if t is not threading.main_thread()],
          multiprocessing.active_children())
""")


def run_code(code, *args):
    rc, out, _ = run_child(["-c", code, *args], cwd=ROOT)
    return rc, out.splitlines()


def test_ctrl_c_while_a_thread_pool_worker_starts(mod):
    rc, lines = run_code(INTERRUPTED_START, mod.__name__, "thread")
    assert (rc, lines[:2]) == (0, ["submit raised KeyboardInterrupt", "then 5"]), lines
    if mod.__name__ == "concurrent.futures":
        # The stdlib's worker, never added to _threads, runs on unjoined.
        assert lines[2] == "left ['ThreadPoolExecutor-0_0'] []"
    else:
        assert lines[2] == "left [] []"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_ctrl_c_while_a_process_pool_thread_starts(cf, method):
    # cfutures only: the stdlib's management thread takes the same
    # KeyboardInterrupt (in its call queue's feeder start) and dies, and the
    # next result() waits forever -- there is no stdlib outcome to match.
    rc, lines = run_code(INTERRUPTED_START, cf.__name__, method)
    assert (rc, lines) == (0, ["submit raised KeyboardInterrupt", "then 5", "left [] []"]), lines


DROPPED = textwrap.dedent("""
    import gc, importlib, multiprocessing, sys, threading, time
    m = importlib.import_module(sys.argv[1])

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle this")

    def submit(ex, fn, *args):
        return ex.submit(fn, *args)

    if __name__ == "__main__":
        ex = m.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
        ex.submit(abs, -1).result(timeout=30)
        f = submit(ex, abs, Unpicklable())
        error = f.exception(timeout=30)
        print(type(error).__name__, error, type(error.__cause__).__name__)
        del ex
        gc.collect()
        deadline = time.monotonic() + 20
        while (multiprocessing.active_children() or threading.active_count() > 1) \\
                and time.monotonic() < deadline:
            time.sleep(0.05)          # polling what has no event to wait on
        print("left", threading.active_count() - 1, len(multiprocessing.active_children()))
""")


def test_failed_pickling_keeps_no_executor_alive(mod):
    rc, lines = run_code(DROPPED, mod.__name__)
    assert rc == 0, lines
    assert lines == ["TypeError cannot pickle this _RemoteTraceback", "left 0 0"]
