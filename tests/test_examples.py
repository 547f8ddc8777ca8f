"""The lesson examples print the same thing under both modules.

Each script in examples/ (found as examples/run_all.py finds them: every
*.py not starting with "_", except run_all.py) is run twice in a
subprocess, with `--impl stdlib` and `--impl cfutures`; both runs must exit
0 and print the same, non-empty, stdout.  The examples print
deterministically (sorted where completion order varies, coarse booleans
instead of timings), so any difference is a behaviour difference.

The scripts that use processes (their source mentions ProcessPoolExecutor,
as run_all.py decides) are run so under every multiprocessing start method
the platform has (`--start-method fork|spawn|forkserver`, see
examples/_select.py): under spawn and forkserver the workers import the
script again, which the scripts' `if __name__ == "__main__":` guard must
survive.  The thread-only scripts run once, with the default.
"""
import multiprocessing
import os

import pytest

from futures_helpers import ROOT, TIMEOUT, start_child

EXAMPLES = os.path.join(ROOT, "examples")


def example_scripts():
    return sorted(name for name in os.listdir(EXAMPLES)
                  if name.endswith(".py") and not name.startswith("_")
                  and name != "run_all.py")


def uses_processes(script):
    with open(os.path.join(EXAMPLES, script), encoding="utf-8") as f:
        return "ProcessPoolExecutor" in f.read()


def example_runs():
    """(script, start method) pairs; start method None: the default, no option."""
    runs = []
    for script in example_scripts():
        if uses_processes(script):
            runs += [pytest.param(script, method, id=f"{script}-{method}")
                     for method in multiprocessing.get_all_start_methods()]
        else:
            runs.append(pytest.param(script, None, id=script))
    return runs


def start(script, impl, start_method):
    args = [os.path.join(EXAMPLES, script), "--impl", impl]
    if start_method is not None:
        args += ["--start-method", start_method]
    return start_child(args, cwd=ROOT)


def finish(script, child):
    """The stdout of a run start() began."""
    # (longer than TIMEOUT: some examples sleep on purpose, and two run at
    # once)
    rc, out, err = child.finish(4 * TIMEOUT)
    assert rc == 0, (
        f"{' '.join([script] + child.proc.args[2:])} exited {rc}:\n{err}")
    return out


def test_examples_found():
    assert example_scripts(), f"no examples in {EXAMPLES}"


def test_process_examples_found():
    # The start-method runs below must not silently vanish.
    assert any(uses_processes(s) for s in example_scripts())


def needs_missing_package(script):
    """The optional package an example imports that is not installed here
    (progress_bars.py needs tqdm, which the test extra installs)."""
    import importlib.util
    with open(os.path.join(EXAMPLES, script), encoding="utf-8") as f:
        source = f.read()
    for package in ("tqdm",):
        if ("from %s " % package in source or "import %s" % package in source) and \
                importlib.util.find_spec(package) is None:
            return package
    return None


@pytest.mark.parametrize("script, start_method", example_runs())
def test_example_same_output(script, start_method):
    # (No "stdlib" in test names: `pytest -k stdlib` must select only the
    # oracle half of the suite, see conftest.py.)
    missing = needs_missing_package(script)
    if missing:
        pytest.skip("%s needs %s, which is not installed" % (script, missing))
    # Both runs at once: the examples mostly sleep (their timings print as
    # coarse booleans with wide margins).
    runs = [start(script, impl, start_method)
            for impl in ("stdlib", "cfutures")]
    try:
        reference = finish(script, runs[0])
        output = finish(script, runs[1])
    finally:
        for child in runs:
            child.kill()
            child.close()
    assert reference.strip(), f"{script} printed nothing"
    assert output == reference
