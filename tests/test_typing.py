"""Typing: cfutures' stubs cover the public surface, and type checkers say
of code written against cfutures exactly what they say of the same code
written against concurrent.futures.

- `mypy --strict` (and pyright, where it runs) on tests/typing/sample.py, a
  typed program that uses every public name with assert_type checks: no
  diagnostic at all.
- The lesson examples, each made into two static programs (`import
  concurrent.futures as futures`, `import cfutures as futures`), under
  `mypy --strict` and pyright: the same diagnostics, line for line (a real
  type error in a lesson still shows).
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "tests", "typing", "sample.py")
EXAMPLES = os.path.join(ROOT, "examples")

pytestmark = [pytest.mark.timeout(300), pytest.mark.ends_only]


def tool(name):
    """The console script of a type checker installed next to this Python."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        path = shutil.which(name)
    return path


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory):
    """One mypy cache for this file's runs: each of them otherwise analyses
    the stdlib's stubs afresh (seconds).  mypy rechecks what changed, so the
    diagnostics are those of a cold run."""
    return tmp_path_factory.mktemp("mypy-cache")


def mypy(cache, *args, cwd=None):
    if tool("mypy") is None:
        pytest.skip("mypy is not installed (it is in the test extra)")
    env = dict(os.environ, MYPYPATH=ROOT)
    done = subprocess.run(
        [tool("mypy"), "--strict", "--no-error-summary", "--cache-dir",
         str(cache), *args],
        cwd=cwd or ROOT, env=env, capture_output=True, text=True)
    return done.stdout + done.stderr


def pyright(tmp_path, *files, cwd):
    exe = tool("pyright")
    if exe is None:
        pytest.skip("pyright is not installed (it is in the test extra)")
    config = tmp_path / "pyrightconfig.json"
    config.write_text(json.dumps({"extraPaths": [ROOT],
                                  "pythonVersion": "%d.%d" % sys.version_info[:2]}))
    done = subprocess.run([exe, "--pythonpath", sys.executable, "-p", str(config), *files],
                          cwd=cwd, capture_output=True, text=True)
    if "error: " not in done.stdout and "errors," not in done.stdout:
        pytest.skip("pyright does not run here: " + (done.stdout + done.stderr)[-300:])
    return done.stdout


def test_sample_is_clean_under_mypy_strict(mypy_cache):
    assert mypy(mypy_cache, SAMPLE) == ""


def test_sample_is_clean_under_pyright(tmp_path):
    out = pyright(tmp_path, SAMPLE, cwd=ROOT)
    assert "0 errors, 0 warnings" in out, out


def lesson_variants(directory):
    """Every lesson example, twice: with concurrent.futures, with cfutures
    (the examples pick the module at run time; here it is imported)."""
    made = []
    for name in sorted(os.listdir(EXAMPLES)):
        if not name.endswith(".py") or name in ("_select.py", "run_all.py"):
            continue
        with open(os.path.join(EXAMPLES, name)) as f:
            source = f.read()
        assert "from _select import futures_module" in source, name
        for module, sub in (("concurrent.futures", "stdlib"), ("cfutures", "cf")):
            text = source.replace("from _select import futures_module",
                                  "import %s as futures" % module)
            text = re.sub(r"^(\s*)futures = futures_module\(.*\)\s*$", r"\1pass",
                          text, flags=re.M)
            (directory / sub).mkdir(exist_ok=True)
            (directory / sub / name).write_text(text)
        made.append(name)
    return made


def normalised(report, directory):
    """Diagnostics without the file's directory and the module's name."""
    report = report.replace(str(directory), "<dir>")
    return sorted(re.sub(r"\bcfutures\b", "concurrent.futures", line)
                  for line in report.splitlines() if line.strip())


def test_lessons_give_the_same_mypy_diagnostics(tmp_path, mypy_cache):
    names = lesson_variants(tmp_path)
    reports = {sub: mypy(mypy_cache, *names, cwd=str(tmp_path / sub))
               for sub in ("stdlib", "cf")}
    assert normalised(reports["cf"], tmp_path / "cf") == \
        normalised(reports["stdlib"], tmp_path / "stdlib")
    # the lessons are untyped code: strict mode does have things to say
    assert reports["stdlib"].count("error:") > 0


@pytest.mark.newest_only        # (pyright's view of the lessons is not the version's)
def test_lessons_give_the_same_pyright_diagnostics(tmp_path):
    names = lesson_variants(tmp_path)
    reports = {sub: pyright(tmp_path, *names, cwd=str(tmp_path / sub))
               for sub in ("stdlib", "cf")}
    assert normalised(reports["cf"], tmp_path / "cf") == \
        normalised(reports["stdlib"], tmp_path / "stdlib")
