"""The lesson examples print the same thing under both modules.

Each script in examples/ (found as examples/run_all.py finds them: every
*.py not starting with "_", except run_all.py) is run twice in a
subprocess, with `--impl stdlib` and `--impl cfutures`; both runs must exit
0 and print the same, non-empty, stdout.  The examples print
deterministically (sorted where completion order varies, coarse booleans
instead of timings), so any difference is a behaviour difference.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def example_scripts():
    return sorted(name for name in os.listdir(EXAMPLES)
                  if name.endswith(".py") and not name.startswith("_")
                  and name != "run_all.py")


def run(script, impl):
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), "--impl", impl],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f"{script} --impl {impl} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def test_examples_found():
    assert example_scripts(), f"no examples in {EXAMPLES}"


@pytest.mark.parametrize("script", example_scripts())
def test_example_same_output(script):
    # (No "stdlib" in test names: `pytest -k stdlib` must select only the
    # oracle half of the suite, see conftest.py.)
    reference = run(script, "stdlib")
    output = run(script, "cfutures")
    assert reference.strip(), f"{script} printed nothing"
    assert output == reference
