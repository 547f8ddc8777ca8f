"""Shared fixtures: every behaviour runs against the stdlib and cfutures.

The ``mod`` fixture is parametrized with ids ``stdlib`` and ``cfutures``, so
``pytest -k stdlib`` checks the suite itself against the oracle, and
``pytest -k cfutures`` checks the extension.  ``import cfutures`` is done
lazily inside the fixture: while the extension is not built, the cfutures
half of the suite errors (on purpose -- it must not be skipped).

Tests that only make sense for cfutures (``Future._get_snapshot``, mixing
with duck-typed futures) take the ``cf`` fixture instead; they carry the
keyword "cfutures" (see pytest_collection_modifyitems) and are deselected by
``-k stdlib``.  Never put the word "stdlib" in a test or file name, or
``-k stdlib`` would select cfutures tests.
"""

import concurrent.futures
import importlib
import os
import sys
import threading
import time

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    # Works whatever --import-mode the project picks.
    sys.path.insert(0, _HERE)

pytest.register_assert_rewrite("futures_helpers")

MODULE_IDS = ("stdlib", "cfutures")


def load_module(which):
    """Return concurrent.futures for "stdlib", the cfutures package otherwise."""
    if which == "stdlib":
        return concurrent.futures
    return importlib.import_module("cfutures")


# The files that take longest (tens of seconds), longest first.  They run
# first, so that under pytest-xdist (make test: three workers, one file at
# a time each, handed out in this order: --no-loadscope-reorder) the short
# files fill the end and the workers finish together.  Any order is
# correct; this one is faster.
LONG_FILES = ("test_packaging.py", "test_cluster.py", "test_executor_contract.py",
              "test_process_lifecycle.py", "test_typing.py", "test_process_options.py",
              "test_process_shm.py", "test_refleaks.py", "test_process_pool.py",
              "test_examples.py", "test_thread_stress.py", "test_main.py",
              "test_ecosystem.py", "test_green_threads.py",
              "test_thread_pool_races.py", "test_process_signals.py")


def _file_rank(item):
    name = os.path.basename(str(item.fspath))
    return LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)


# Some tests run on the oldest and the newest Python only, as running them
# on all five would take `make test` past CI's budget: the process-pool
# tests under spawn (on the oldest) and under forkserver (on the newest),
# each a fresh interpreter per worker (fork runs everywhere -- the pool's
# code is the same under every start method, and multiprocessing's start
# methods change little between versions), and
# tests marked `ends_only` (type-checker runs, the million-task stress,
# gevent/eventlet and joblib/loky), and tests marked `newest_only` (the
# million-task stress, pyright over the lessons, the Dask cluster tests
# that start processes or clusters of their own, and as_completed over
# 10,000 Dask futures: 3.9's older distributed runs the rest of the
# cluster tests).
# CFUTURES_EVERY_VERSION=1 runs them everywhere.
ENDS = ((3, 9), (3, 13))
WHERE = {"spawn": ((3, 9),), "forkserver": ((3, 13),), "ends_only": ENDS,
         "newest_only": ((3, 13),)}


def _runs_on(item):
    """The versions `item` is kept to, or None for every version."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    method = params.get("method", params.get("start_method",
                                              getattr(getattr(item, "cls", None), "METHOD", None)))
    if method in WHERE:
        return WHERE[method]
    for marker in ("ends_only", "newest_only"):
        if item.get_closest_marker(marker) is not None:
            return WHERE[marker]
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "ends_only: runs on the oldest and newest Python only")
    config.addinivalue_line("markers", "newest_only: runs on the newest Python only")


def pytest_collection_modifyitems(items):
    every = os.environ.get("CFUTURES_EVERY_VERSION")
    for item in items:
        # `-k cfutures` also selects the cfutures-only tests.
        if "cf" in getattr(item, "fixturenames", ()):
            item.extra_keyword_matches.add("cfutures")
        versions = _runs_on(item)
        if not every and versions is not None and sys.version_info[:2] not in versions:
            item.add_marker(pytest.mark.skip(
                reason="runs on %s (CFUTURES_EVERY_VERSION=1: here too)"
                % " and ".join("%d.%d" % v for v in versions)))
    items.sort(key=_file_rank)      # stable: the order within a file stays


@pytest.fixture(params=MODULE_IDS)
def mod(request):
    """The module under test: concurrent.futures or cfutures."""
    return load_module(request.param)


@pytest.fixture(params=MODULE_IDS)
def mtmod(request):
    """Like ``mod``, for ProcessPoolExecutor(max_tasks_per_child=...): the
    stdlib half runs only where the stdlib has it (3.11+)."""
    from futures_helpers import HAS_MAX_TASKS
    if request.param == "stdlib" and not HAS_MAX_TASKS:
        pytest.skip("the running stdlib has no max_tasks_per_child")
    return load_module(request.param)


@pytest.fixture
def cf():
    """cfutures itself, for cfutures-only checks and explicit comparisons."""
    return load_module("cfutures")


@pytest.fixture(autouse=True)
def _no_thread_left_behind():
    """Every thread a test starts must be gone when the test ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    for t in threading.enumerate():
        if t not in before and t is not threading.current_thread():
            t.join(max(0.0, deadline - time.monotonic()))
    left = [t for t in threading.enumerate()
            if t not in before and t.is_alive()]
    assert not left, "threads left behind: %r" % (left,)


@pytest.fixture
def sync(tmp_path):
    """Files through which process-pool tests and their tasks meet
    (process_tasks.Sync); blocked tasks are released at the end."""
    from process_tasks import Sync
    s = Sync(tmp_path)
    yield s
    s.release()
