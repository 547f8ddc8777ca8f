"""Other people's code on cfutures: the replaced modules' names, and real
libraries run under `python -m cfutures prog.py`.

What this covers:
- cfutures, cfutures._base, cfutures.thread and cfutures.process answer every
  name (private ones included) of their concurrent.futures counterparts, as
  libraries reach for them (loky: `from concurrent.futures.process import
  _MAX_WINDOWS_WORKERS`; pickle: `concurrent.futures.process._rebuild_exc`);
  the natively implemented names are cfutures' own objects, the exception
  classes and constants the stdlib's very objects.
- Programs run in a child process twice, `python prog.py` (id "stdlib", the
  oracle) and `python -m cfutures prog.py` (id "cfutures"), and must print the
  same: a process-pool task that raises, under fork, spawn and forkserver (its
  future gets the exception, the pool stays usable); joblib and loky;
  asyncio's run_in_executor with a process pool; gevent's ThreadPoolExecutor,
  and the thread pool under gevent's and eventlet's monkey-patching.
Task functions live in a module written next to the program, so that spawn
and forkserver workers can import them.
"""
import importlib
import importlib.util
import os
import subprocess
import textwrap

import pytest

from futures_helpers import run_child

# joblib and loky drive the same executor API on every version: 3.9 and 3.13.
pytestmark = [pytest.mark.timeout(180), pytest.mark.ends_only]

MODULE_PAIRS = [
    ("concurrent.futures", "cfutures"),
    ("concurrent.futures._base", "cfutures._base"),
    ("concurrent.futures.thread", "cfutures.thread"),
    ("concurrent.futures.process", "cfutures.process"),
]

# Implemented by cfutures itself: these names must give cfutures' objects.
NATIVE = ("Future", "Executor", "ThreadPoolExecutor", "ProcessPoolExecutor",
          "wait", "as_completed")

TASKS = textwrap.dedent("""
    def square(x):
        return x * x

    def fail(message):
        raise ValueError(message)
""")


# ---- the names of the replaced modules ---------------------------------------

def names_of(module):
    """dir() of a module without its dunder attributes (__file__, __spec__...)."""
    return [name for name in dir(module)
            if not (name.startswith("__") and name.endswith("__"))]


def is_shared(name, value):
    """Exception classes and constants: the stdlib's very objects."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return True
    return name == "DoneAndNotDoneFutures" or name.lstrip("_").isupper()


def test_every_name_of_the_replaced_modules_is_answered(cf):
    missing = {}
    for std_name, cf_name in MODULE_PAIRS:
        std, ours = importlib.import_module(std_name), importlib.import_module(cf_name)
        absent = [name for name in names_of(std) if not hasattr(ours, name)]
        if absent:
            missing[cf_name] = absent
    assert missing == {}


def test_names_are_cfutures_own_or_the_very_same_objects(cf):
    wrong = []
    for std_name, cf_name in MODULE_PAIRS:
        std, ours = importlib.import_module(std_name), importlib.import_module(cf_name)
        for name in names_of(std):
            theirs = getattr(std, name)
            got = getattr(ours, name, "<missing>")
            if name in NATIVE:
                if got is not getattr(cf, name) or got is theirs:
                    wrong.append("%s.%s: %r is not cfutures' own" % (cf_name, name, got))
            elif is_shared(name, theirs) and got is not theirs:
                wrong.append("%s.%s: %r is not %s.%s" % (cf_name, name, got, std_name, name))
    assert wrong == []


# ---- programs run plainly and under `python -m cfutures` ------------------------

def need(module_name):
    """Skip (with the reason printed by -ra) when a library is not installed.
    Only looked up: importing eventlet here would warn, and warnings are errors."""
    if importlib.util.find_spec(module_name) is None:
        pytest.skip("%s is not installed" % module_name)


@pytest.fixture(params=("stdlib", "cfutures"))
def run_program(request, tmp_path):
    """run_program(source, *args) runs `source` as tmp_path/prog.py, plainly
    (stdlib) or under `python -m cfutures`; ecosystem_tasks.py lies next to it.
    A program that is not done within TIMEOUT hangs: it is killed with its
    workers, and the test fails."""
    (tmp_path / "ecosystem_tasks.py").write_text(TASKS)

    def run(source, *args):
        prog = tmp_path / "prog.py"
        prog.write_text(textwrap.dedent(source))
        rc, out, err = run_child([str(prog), *args], cwd=str(tmp_path),
                                 launcher=request.param == "cfutures")
        return subprocess.CompletedProcess(prog, rc, out, err)

    return run


def assert_prints(done, *lines):
    assert (done.returncode, done.stdout.splitlines()) == (0, list(lines)), done.stderr[-3000:]


RAISING_TASK = """
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from ecosystem_tasks import fail, square

    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        with ProcessPoolExecutor(2, mp_context=context) as ex:
            futures = [ex.submit(fail, "boom 0"), ex.submit(square, 3),
                       ex.submit(fail, "boom 2"), ex.submit(square, 4)]
            for i, f in enumerate(futures):
                try:
                    print(i, "result", f.result(timeout=30))
                except Exception as e:
                    print(i, type(e).__name__, e, type(e.__cause__).__name__)
            print("map", list(ex.map(square, range(4), timeout=30)))
"""


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_raising_task_fails_only_its_future(run_program, start_method):
    # The worker sends the stdlib's _ExceptionWithTraceback, pickled by
    # reference to concurrent.futures.process._rebuild_exc.
    assert_prints(run_program(RAISING_TASK, start_method),
                  "0 ValueError boom 0 _RemoteTraceback",
                  "1 result 9",
                  "2 ValueError boom 2 _RemoteTraceback",
                  "3 result 16",
                  "map [0, 1, 4, 9]")


def test_loky_imports_and_runs(run_program):
    need("loky")
    not_under_asan(LOKY_UNDER_ASAN)
    done = run_program("""
        import loky
        from ecosystem_tasks import square

        if __name__ == "__main__":
            executor = loky.get_reusable_executor(max_workers=2)
            print(list(executor.map(square, range(6), timeout=30)))
            executor.shutdown(wait=True)
    """)
    assert_prints(done, "[0, 1, 4, 9, 16, 25]")


def not_under_asan(why):
    """Runs that the AddressSanitizer build (make sanitize) cannot judge are
    left to the normal suite, with the reason."""
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip(why)


LOKY_UNDER_ASAN = ("loky's own workers hang under the preloaded ASan runtime, "
                   "with either module")
GREENLET_UNDER_ASAN = ("greenlets switch stacks by copying them, which ASan "
                       "reports as an overflow (its HINT says so)")


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_joblib_parallel(run_program, backend):
    need("joblib")
    if backend == "loky":
        not_under_asan(LOKY_UNDER_ASAN)
    done = run_program("""
        import sys
        from joblib import Parallel, delayed
        from ecosystem_tasks import fail, square

        if __name__ == "__main__":
            backend = sys.argv[1]
            print(Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(8)))
            calls = [delayed(square)(1), delayed(fail)("boom"), delayed(square)(2)]
            try:
                Parallel(n_jobs=2, backend=backend)(calls)
            except ValueError as e:
                print("ValueError", e)
    """, backend)
    assert_prints(done, "[0, 1, 4, 9, 16, 25, 36, 49]", "ValueError boom")


def test_asyncio_run_in_process_pool(run_program):
    done = run_program("""
        import asyncio
        import concurrent.futures
        from ecosystem_tasks import fail, square

        async def main():
            loop = asyncio.get_running_loop()
            with concurrent.futures.ProcessPoolExecutor(2) as ex:
                print(await asyncio.gather(*(loop.run_in_executor(ex, square, i)
                                             for i in range(4))))
                try:
                    await loop.run_in_executor(ex, fail, "boom")
                except ValueError as e:
                    print("ValueError", e)
                print(await loop.run_in_executor(ex, square, 5))

        if __name__ == "__main__":
            asyncio.run(main())
    """)
    assert_prints(done, "[0, 1, 4, 9]", "ValueError boom", "25")


def test_gevent_thread_pool_executor(run_program):
    # gevent's subclass uses the stdlib pool's _shutdown_lock and _shutdown.
    need("gevent")
    done = run_program("""
        from gevent.threadpool import ThreadPoolExecutor
        from ecosystem_tasks import square

        with ThreadPoolExecutor(2) as ex:
            print(ex.submit(square, 5).result(timeout=30))
            print(list(ex.map(square, range(4), timeout=30)))
    """)
    assert_prints(done, "25", "[0, 1, 4, 9]")


MONKEY_PATCHED_POOL = """
    from concurrent.futures import ThreadPoolExecutor, wait
    from ecosystem_tasks import square

    with ThreadPoolExecutor(2) as ex:
        done, not_done = wait([ex.submit(square, i) for i in range(4)], timeout=30)
        print(sorted(f.result() for f in done), len(not_done))
"""


MONKEY_PATCH = {"gevent": "from gevent import monkey\nmonkey.patch_all()\n",
                "eventlet": "import eventlet\neventlet.monkey_patch()\n"}


@pytest.mark.parametrize("lib", ["gevent", "eventlet"])
def test_thread_pool_under_monkey_patching(run_program, lib):
    # Patched, the workers are greenlets (gevent) or green threads
    # (eventlet): one that blocks the OS thread blocks every one of them.
    need(lib)
    not_under_asan(GREENLET_UNDER_ASAN)
    done = run_program(MONKEY_PATCH[lib] + textwrap.dedent(MONKEY_PATCHED_POOL))
    assert_prints(done, "[0, 1, 4, 9] 0")
