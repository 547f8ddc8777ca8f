"""Packaging: `python -m build` makes an sdist and a wheel with complete
metadata; the sdist, installed into a fresh virtual environment, builds,
and the installed package works from outside the source tree.

The sdist holds the sources, the typing files and the docs, and no tests
(MANIFEST.in prunes them: no test is shipped without the helpers it
imports).
"""
import email
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

from futures_helpers import run_once

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(sdist path, wheel path), built from the repository."""
    run_once("packaging")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(out), ROOT], capture_output=True, text=True)
    if done.returncode != 0 and "No module named build" in done.stderr:
        pytest.skip("the build package is not installed (it is in the test extra)")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sdists = [p for p in out.iterdir() if p.name.endswith(".tar.gz")]
    wheels = [p for p in out.iterdir() if p.name.endswith(".whl")]
    assert len(sdists) == 1 and len(wheels) == 1, list(out.iterdir())
    return sdists[0], wheels[0]


def test_sdist_holds_sources_and_docs_and_no_tests(dist):
    sdist, _ = dist
    with tarfile.open(str(sdist)) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for required in ("LICENSE", "README.md", "pyproject.toml", "setup.py",
                     "cfutures/__init__.py", "cfutures/__init__.pyi", "cfutures/py.typed",
                     "src/cfutures.h", "src/future.c"):
        assert required in names, required
    sources = {n for n in os.listdir(os.path.join(ROOT, "src"))}
    assert {"src/" + n for n in sources} <= names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]


def test_wheel_metadata(dist):
    sdist, wheel = dist
    with zipfile.ZipFile(str(wheel)) as z:
        files = z.namelist()
        meta_name = next(n for n in files if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
    import cfutures
    assert meta["Version"] == cfutures.__version__
    assert "ThreadPoolExecutor" in meta["Summary"] and "ProcessPoolExecutor" in meta["Summary"]
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier")
    for minor in range(9, 14):
        assert "Programming Language :: Python :: 3.%d" % minor in classifiers
    # every project URL names a file of this repository
    for entry in meta.get_all("Project-URL"):
        target = entry.split(",", 1)[1].strip().split("#")[0]
        assert os.path.exists(os.path.join(ROOT, target)), entry
    assert any(re.match(r"cfutures/_cfutures\..*\.so$", n) for n in files)
    for typing_file in ("cfutures/py.typed", "cfutures/__init__.pyi", "cfutures/thread.pyi",
                        "cfutures/process.pyi", "cfutures/_base.pyi",
                        "cfutures/distributed.pyi"):
        assert typing_file in files
    assert any(n.endswith("licenses/LICENSE") for n in files)


USE = textwrap.dedent("""
    import multiprocessing, os, sys
    import cfutures

    def square(x):
        return x * x

    if __name__ == "__main__":
        print(os.path.dirname(cfutures.__file__))
        with cfutures.ThreadPoolExecutor(2) as ex:
            print(list(ex.map(square, range(4))))
        context = multiprocessing.get_context("spawn")
        with cfutures.ProcessPoolExecutor(2, mp_context=context) as ex:
            print(ex.submit(square, 7).result(timeout=60))
        print(cfutures.__version__)
""")


def test_sdist_installs_into_a_fresh_venv_and_works_outside_the_tree(dist, tmp_path):
    sdist, _ = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           str(sdist)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "use.py").write_text(USE)
    done = subprocess.run([python, "use.py"], cwd=str(elsewhere), capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    where, mapped, squared, version = done.stdout.split("\n")[:4]
    assert where.startswith(str(venv)), where
    assert (mapped, squared) == ("[0, 1, 4, 9]", "49")
    import cfutures
    assert version == cfutures.__version__
    done = subprocess.run([python, "-m", "cfutures", "-c",
                           "import concurrent.futures as f; print(f.__name__)"],
                          cwd=str(elsewhere), capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "cfutures", done.stderr
