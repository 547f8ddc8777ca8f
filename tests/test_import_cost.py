"""Importing cfutures costs no more than importing concurrent.futures.

Measured as what a fresh interpreter imports (the timing is a benchmark,
benchmarks/run.py's import_* workloads): `import cfutures` imports nothing
but itself -- every name comes on first use -- and `from cfutures import
ThreadPoolExecutor` imports nothing that `from concurrent.futures import
ThreadPoolExecutor` does not, besides cfutures' own modules.  The process
pool's machinery (multiprocessing, pickle, socket) waits for the first
ProcessPoolExecutor, as in the stdlib.
"""
import pytest

from futures_helpers import run_child

HEAVY = ("multiprocessing", "pickle", "socket", "concurrent.futures.process")


def imported_by(statement):
    """The modules a fresh interpreter imports for `statement`."""
    code = ("import sys; before = set(sys.modules); %s; "
            "print('\\n'.join(sorted(set(sys.modules) - before)))" % statement)
    rc, out, err = run_child(["-c", code])
    assert rc == 0, err
    return set(out.split())


def own(modules):
    return {m for m in modules if m == "cfutures" or m.startswith("cfutures.")}


def test_import_cfutures_imports_only_itself():
    assert imported_by("import cfutures") == {"cfutures"}


@pytest.mark.parametrize("name", ["ThreadPoolExecutor", "Future", "wait", "CancelledError"])
def test_a_name_imports_no_more_than_the_stdlib(name):
    ours = imported_by("from cfutures import %s" % name)
    theirs = imported_by("from concurrent.futures import %s" % name)
    assert ours - own(ours) <= theirs
    assert not any(m.startswith(HEAVY) for m in ours)


def test_process_pool_machinery_comes_with_the_process_pool():
    ours = imported_by("from cfutures import ProcessPoolExecutor")
    theirs = imported_by("from concurrent.futures import ProcessPoolExecutor")
    assert ours - own(ours) <= theirs
