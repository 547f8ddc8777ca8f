"""Green threads: concurrent.futures and cfutures after gevent's
``monkey.patch_all()`` or ``eventlet.monkey_patch()``.

Once patched, ``threading.Thread`` starts a greenlet and every lock and
condition switches greenlets instead of blocking the one OS thread.  The
stdlib's pool and futures are written with ``threading``, so they just
work: ``ex.submit(f).result(timeout=3)`` returns in about 10 ms.  A waiter
that blocks in C, on the only OS thread, never lets the other greenlets run:
the process hangs (or a wait with a timeout expires without the work having
been done).

Covered, per library and per module: submit/result, map, wait,
as_completed, a future completed by another greenlet, shutdown(wait=True),
the ``with`` block, a future whose ``_condition`` was replaced from outside
by a green Condition (futurist's GreenFuture does that; with eventlet it
does so without any monkey-patching, through ``eventlet.green.threading``),
importing the module before patching, and the process pool (whose own
thread is a greenlet then, and must wait for its pipes cooperatively).

Patching is process-wide, so the scenarios run in child processes: one
child per (library, module, import order) runs all the scenarios of that
combination one after the other, each under its own
``faulthandler.dump_traceback_later(..., exit=True)`` watchdog, so a hang
ends the child (with the stack on stderr) instead of the test run.  Each
scenario is reported on its own; one that hangs, crashes or raises is
reported as such, and the rest run in a fresh child (child_batch.py).  The
stdlib's outcome is the expected one; both modules must give it.
"""

import importlib.util
import json
import os
import sys
import textwrap

import pytest

import child_batch

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
HANG = 5.0          # the child's watchdog: no scenario may take this long
PROMPT = 2.0        # generous bound of an operation the stdlib does in ~10 ms
LIBS = ("gevent", "eventlet")

# gevent and eventlet patch the same threading on every version: 3.9 and 3.13.
pytestmark = [pytest.mark.timeout(120), pytest.mark.ends_only]

# Prepended to every scenario.  argv: library, module, import order, watchdog.
PRELUDE = r'''
import faulthandler, importlib, json, sys, time, warnings
LIB, MOD, ORDER = sys.argv[1:4]
HANG = float(sys.argv[4])


def patch():
    """Monkey-patch; return the warnings patching gave."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # eventlet's deprecation notice
        if LIB == "gevent":
            from gevent import monkey
        else:
            import eventlet
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if LIB == "gevent":
            monkey.patch_all()
        else:
            eventlet.monkey_patch()
    return sorted({"%s: %s" % (w.category.__name__,
                               str(w.message).strip().splitlines()[0])
                   for w in caught})


with warnings.catch_warnings():
    warnings.simplefilter("ignore")         # eventlet's deprecation notice
    if ORDER == "patch-first":
        PATCH_WARNINGS = patch()
        m = importlib.import_module(MOD)
    elif ORDER == "import-first":
        m = importlib.import_module(MOD)
        PATCH_WARNINGS = patch()
    else:
        assert ORDER == "no-patch"
        m = importlib.import_module(MOD)
        PATCH_WARNINGS = []
    if LIB == "gevent":
        import gevent
        spawn, green_sleep, join = gevent.spawn, gevent.sleep, gevent.joinall
    else:
        import eventlet
        spawn, green_sleep = eventlet.spawn, eventlet.sleep
        def join(gs):
            for g in gs:
                g.wait()

faulthandler.dump_traceback_later(HANG, exit=True)


def timed(fn, *args, **kwargs):
    """(value or 'ExcType: message', seconds taken)."""
    t0 = time.monotonic()
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:
        value = "%s: %s" % (type(exc).__name__, exc)
    return value, time.monotonic() - t0


# report(**outcome): each scenario's own, given by the batch driver below.


def double(x=21):
    return 2 * x
'''


def unusable(lib):
    """Why *lib* cannot be used here (None if it can): not installed, or
    its monkey-patching does not work on this Python (the scenario USABLE,
    on the stdlib, gives no outcome)."""
    if importlib.util.find_spec(lib) is None:
        return "%s is not installed" % lib
    got = batch(lib, "concurrent.futures", "patch-first")[USABLE]
    if isinstance(got, child_batch.Failure) or got != {"ok": True}:
        return "%s does not work on Python %s: %s" % (
            lib, sys.version.split()[0], getattr(got, "message", got))
    return None


@pytest.fixture(params=LIBS)
def lib(request):
    reason = unusable(request.param)
    if reason:
        print(reason)
        pytest.skip(reason)
    return request.param


# ---- the scenarios, run in batches ------------------------------------------

# name -> (import order, libraries or None for both, code).  Registered in
# the order a batch runs them: the process pool first, before the
# scenarios that start (green) threads, so that it forks a process as
# fresh as it was when each scenario had a child of its own.
SCENARIOS = {}


def scenario(name, *parts, order="patch-first", libs=None):
    """Register the code *parts* (each dedented), run after the prelude;
    it must report() its outcome."""
    SCENARIOS[name] = (order, libs,
                       "".join(textwrap.dedent(p) for p in parts))
    return name


# Appended to the prelude in a batch child.  argv after the prelude's:
# the tests directory, then [[name, code], ...] as JSON.
BATCH = r'''
sys.path.insert(0, sys.argv[5])
import child_batch
_CODES = dict(json.loads(sys.argv[6]))


def _run(_name):
    _box = []
    _ns = dict(globals())
    _ns["report"] = lambda **outcome: _box.append(outcome)
    exec(_CODES[_name], _ns)
    if not _box:
        raise AssertionError("the scenario report()ed nothing")
    return _box[-1]


child_batch.serve(list(_CODES), _run, HANG)
'''

# First in every patch-first batch: whether the library works at all here.
USABLE = scenario("usable", """
    g = spawn(double)
    join([g])
    report(ok=True)
""")

_BATCHES = {}       # (lib, module name, order) -> {name: outcome or Failure}


def batch(lib, modname, order):
    """The outcomes of every scenario of `order` for `lib`, on the module
    `modname`: one child runs them all (once per test session)."""
    key = (lib, modname, order)
    if key not in _BATCHES:
        names = [n for n, (o, libs, _) in SCENARIOS.items()
                 if o == order and (libs is None or lib in libs)]

        def argv(keys):
            codes = [[k, SCENARIOS[k][2]] for k in keys]
            return ["-c", PRELUDE + BATCH, lib, modname, order, str(HANG),
                    TESTS, json.dumps(codes)]

        _BATCHES[key] = child_batch.run_batch(
            argv, names, HANG, cwd=REPO,
            describe="%s child (%s, %s)" % (modname, lib, order))
    return _BATCHES[key]


def run_green(lib, mod, name):
    """The dict scenario `name` report()ed in the child for (lib, mod).  A
    scenario that hung (its watchdog fired), crashed or raised fails the
    test, and so does a child that failed at exit."""
    order = SCENARIOS[name][0]
    got = batch(lib, mod.__name__, order)[name]
    if isinstance(got, child_batch.Failure):
        pytest.fail("%s, %s, %s: %s" % (mod.__name__, lib, order,
                                        got.message), pytrace=False)
    return got


def assert_prompt(got, *keys):
    slow = {k: round(got[k], 3) for k in keys if not got[k] < PROMPT}
    assert not slow, "took %r s (the bound is %s s): %r" % (slow, PROMPT, got)


# ---- the process pool -------------------------------------------------------

# The pool's own thread is a greenlet too: it must wait for the workers'
# pipes cooperatively, or the greenlet that waits for a result never runs
# again.  (Builtins as tasks: a `-c` program has no importable module.)
PROCESS_POOL = """
    import multiprocessing
    ctx = multiprocessing.get_context(%r)
    t0 = time.monotonic()
    with m.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        one = ex.submit(pow, 2, 5).result(timeout=3)
        mapped = list(ex.map(abs, [-1, -2, -3], timeout=3))
        fs = [ex.submit(pow, 3, i) for i in range(4)]
        done = sorted(f.result(0) for f in m.as_completed(fs, timeout=3))
    report(value=[one, mapped, done], elapsed=time.monotonic() - t0)
"""
for _method in ("fork", "spawn"):
    scenario("process_pool_" + _method, PROCESS_POOL % _method)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool(lib, mod, method):
    got = run_green(lib, mod, "process_pool_" + method)
    assert got["value"] == [32, [1, 2, 3], [1, 3, 9, 27]], got
    assert_prompt(got, "elapsed")


# A task's time limit (cfutures only) is kept while the pool's greenlet
# waits in select: it wakes by the deadline, stops the worker, and fails
# the future with TimeoutError, long before the caller's own wait ends.
TASK_TIMEOUT = scenario("process_pool_task_timeout", """
    if m.__name__ == "cfutures":
        ex = m.ProcessPoolExecutor(1, task_timeout=0.2)
        f = ex.submit(time.sleep, 30)
        value, elapsed = timed(lambda: type(f.exception(timeout=3)).__name__)
        ex.shutdown(wait=True)
        report(value=value, elapsed=elapsed)
    else:
        report(value="no task_timeout in the stdlib")
""")


def test_process_pool_task_timeout_fires(lib, cf):
    got = run_green(lib, cf, TASK_TIMEOUT)
    assert got["value"] == "TimeoutError", got
    assert_prompt(got, "elapsed")


# ---- the thread pool --------------------------------------------------------

SUBMIT_RESULT = scenario("submit_result", """
    ex = m.ThreadPoolExecutor(2)
    value, elapsed = timed(lambda: ex.submit(double).result(timeout=3))
    ex.shutdown(wait=True)
    report(value=value, elapsed=elapsed)
""")


def test_submit_result_returns_promptly(lib, mod):
    got = run_green(lib, mod, SUBMIT_RESULT)
    assert got["value"] == 42, got
    assert_prompt(got, "elapsed")


MAP = scenario("map", """
    ex = m.ThreadPoolExecutor(2)
    value, elapsed = timed(lambda: list(ex.map(double, range(5),
                                               timeout=3)))
    ex.shutdown(wait=True)
    report(value=value, elapsed=elapsed)
""")


def test_map(lib, mod):
    got = run_green(lib, mod, MAP)
    assert got["value"] == [0, 2, 4, 6, 8], got
    assert_prompt(got, "elapsed")


WAIT = scenario("wait", """
    ex = m.ThreadPoolExecutor(2)
    fs = [ex.submit(double, i) for i in range(3)]
    (done, not_done), elapsed = timed(m.wait, fs, timeout=3)
    ex.shutdown(wait=True)
    report(done=len(done), not_done=len(not_done), elapsed=elapsed,
           results=sorted(f.result(0) for f in done))
""")


def test_wait(lib, mod):
    got = run_green(lib, mod, WAIT)
    assert (got["done"], got["not_done"], got["results"]) == (3, 0,
                                                              [0, 2, 4]), got
    assert_prompt(got, "elapsed")


AS_COMPLETED = scenario("as_completed", """
    ex = m.ThreadPoolExecutor(2)
    fs = [ex.submit(double, i) for i in range(3)]
    value, elapsed = timed(lambda: sorted(
        f.result(0) for f in m.as_completed(fs, timeout=3)))
    ex.shutdown(wait=True)
    report(value=value, elapsed=elapsed)
""")


def test_as_completed(lib, mod):
    got = run_green(lib, mod, AS_COMPLETED)
    assert got["value"] == [0, 2, 4], got
    assert_prompt(got, "elapsed")


# A task that never yields and one that yields to the hub (a green sleep)
# before it returns: shutdown must wait for both, and return promptly.
TWO_TASKS = """
    def sleepy():
        green_sleep(0.05)
        return 42
    def results(fs):
        return [f.result(0) if f.done() else "pending" for f in fs]
"""

SHUTDOWN_WAIT = scenario("shutdown_wait", TWO_TASKS, """
    ex = m.ThreadPoolExecutor(2)
    fs = [ex.submit(double), ex.submit(sleepy)]
    value, elapsed = timed(ex.shutdown, wait=True)
    report(value=value, results=results(fs), elapsed=elapsed)
""")


def test_shutdown_wait(lib, mod):
    got = run_green(lib, mod, SHUTDOWN_WAIT)
    assert (got["value"], got["results"]) == (None, [42, 42]), got
    assert_prompt(got, "elapsed")


WITH_BLOCK = scenario("with_block", TWO_TASKS, """
    t0 = time.monotonic()
    with m.ThreadPoolExecutor(2) as ex:
        fs = [ex.submit(double), ex.submit(sleepy)]
    elapsed = time.monotonic() - t0
    report(results=results(fs), elapsed=elapsed)
""")


def test_with_block(lib, mod):
    got = run_green(lib, mod, WITH_BLOCK)
    assert got["results"] == [42, 42], got
    assert_prompt(got, "elapsed")


# ---- futures completed by greenlets -----------------------------------------

COMPLETED_BY_GREENLET = scenario("completed_by_greenlet", """
    f = m.Future()
    def complete():
        green_sleep(0.05)
        f.set_result(42)
    g = spawn(complete)
    value, elapsed = timed(f.result, timeout=3)
    join([g])
    report(value=value, elapsed=elapsed)
""")


def test_result_of_future_completed_by_greenlet(lib, mod):
    got = run_green(lib, mod, COMPLETED_BY_GREENLET)
    assert got["value"] == 42, got
    assert_prompt(got, "elapsed")


# A greenlet waits on f.result(timeout=3) while another completes f; f's
# _condition was replaced from outside, as futurist's GreenFuture does.
REPLACED_CONDITION = """
    f = m.Future()
    f._condition = CONDITION()
    def waiter():
        return timed(f.result, timeout=3)
    def complete():
        green_sleep(0.05)
        f.set_result(42)
    w = spawn(waiter)
    c = spawn(complete)
    join([w, c])
    value, elapsed = w.get() if LIB == "gevent" else w.wait()
    report(value=value, elapsed=elapsed)
"""

PATCHED_CONDITION = scenario("patched_condition", """
    import threading        # patched
    CONDITION = threading.Condition
""", REPLACED_CONDITION)


def test_result_waits_through_replaced_condition(lib, mod):
    got = run_green(lib, mod, PATCHED_CONDITION)
    assert got["value"] == 42, got
    assert_prompt(got, "elapsed")


# futurist's GreenFuture in an unpatched process: its _condition is an
# eventlet.green.threading.Condition, and result() must wait on it.
GREEN_CONDITION = scenario("green_condition", """
    from eventlet.green import threading as green_threading
    CONDITION = green_threading.Condition
""", REPLACED_CONDITION, order="no-patch", libs=("eventlet",))


def test_green_condition_without_monkey_patching(mod):
    reason = unusable("eventlet")
    if reason:
        print(reason)
        pytest.skip(reason)
    got = run_green("eventlet", mod, GREEN_CONDITION)
    assert got["value"] == 42, got
    assert_prompt(got, "elapsed")


# ---- import order -----------------------------------------------------------

# The module imported first, then patched: the stdlib's pool looks up
# threading.Thread at submit time, so it still works, without warning.
IMPORT_FIRST = scenario("import_first", """
    ex = m.ThreadPoolExecutor(2)
    value, elapsed = timed(lambda: ex.submit(double).result(timeout=3))
    ex.shutdown(wait=True)
    f = m.Future()
    g = spawn(f.set_result, 7)
    green_value, green_elapsed = timed(f.result, timeout=3)
    join([g])
    report(value=value, elapsed=elapsed, green_value=green_value,
           green_elapsed=green_elapsed, warnings=PATCH_WARNINGS)
""", order="import-first")


def test_import_before_patching(lib, mod):
    got = run_green(lib, mod, IMPORT_FIRST)
    assert (got["value"], got["green_value"], got["warnings"]) == (
        42, 7, []), got
    assert_prompt(got, "elapsed", "green_elapsed")
