"""How fast the process pool's options act: a timed-out task's future fails
(after its limit), a crashed worker's task fails, a cancelled running task
is cancelled, and a replacement worker takes the next task.

Run from the repository root:

    python3 benchmarks/option_latency.py [--repeat 10] [--method fork]

Each figure is measured from the moment the task began in its worker (it
writes the monotonic time, one clock for every process here) and printed as
median and min-max over the repetitions.
"""
import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.join(os.path.dirname(HERE), "tests"), os.path.dirname(HERE),
                os.environ.get("PYTHONPATH")) if p)

import cfutures                     # noqa: E402
import option_tasks                 # noqa: E402

TIMEOUT = 0.5


def wait_mark(path):
    while not os.path.exists(path):
        time.sleep(0.001)
    return option_tasks.read_mark(path)


def one_round(ex, directory, n, submit, settle):
    """(seconds from the task's start to its future's end, seconds from then
    to the next task's result)."""
    path = os.path.join(directory, "mark.%s" % n)
    f = submit(path)
    _, began = wait_mark(path)
    settle(f)
    f.exception(timeout=60) if not f.cancelled() else None
    ended = time.monotonic()
    ex.submit(option_tasks.square, 2).result(timeout=60)
    return ended - began, time.monotonic() - ended


def measure(method, repeat):
    context = multiprocessing.get_context(method)
    cases = {
        "timeout (after the %.1f s limit)" % TIMEOUT: (
            dict(task_timeout=TIMEOUT),
            lambda ex, path: ex.submit(option_tasks.sleep_forever, path),
            lambda f: None, TIMEOUT),
        "crash (os._exit), isolated": (
            dict(isolate_crashes=True),
            lambda ex, path: ex.submit(option_tasks.marked_crash, path, "exit"),
            lambda f: None, 0.0),
        "cancel() of a running task": (
            dict(cancel_running=True),
            lambda ex, path: ex.submit(option_tasks.sleep_forever, path),
            lambda f: f.cancel(), 0.0),
    }
    with tempfile.TemporaryDirectory() as directory:
        for name, (options, submit, settle, offset) in cases.items():
            fail, replace = [], []
            with cfutures.ProcessPoolExecutor(1, mp_context=context, **options) as ex:
                ex.submit(option_tasks.square, 1).result(timeout=60)     # started
                for n in range(repeat):
                    tag = "%s.%d" % (name[:4].strip(), n)
                    a, b = one_round(ex, directory, tag, lambda p: submit(ex, p), settle)
                    fail.append(a - offset)
                    replace.append(b)
            print("%-34s fails %s later; next result %s after" % (name, spread(fail), spread(replace)))


def spread(values):
    return "%.3f s (%.3f-%.3f)" % (statistics.median(values), min(values), max(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--method", default="fork", choices=["fork", "spawn", "forkserver"])
    args = parser.parse_args()
    print("start method %s, %d repetitions, median (min-max)" % (args.method, args.repeat))
    measure(args.method, args.repeat)


if __name__ == "__main__":
    main()
