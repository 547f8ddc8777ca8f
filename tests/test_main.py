"""`python -m cfutures ...` is `python ...` with concurrent.futures replaced.

Every way python takes a program -- a script, `-m module`, `-c command`,
`-` and a program piped to stdin -- is run both ways, plainly and under the
launcher, and compared: sys.argv, sys.path[0] (a script's directory, so a
script imports its siblings from any working directory), python's own
messages and exit status for a missing script or module, a traceback that
shows only the program's frames.  Under the launcher concurrent.futures is
cfutures, also in process workers started by spawn or forkserver; and
`python -m cfutures -m pytest` runs a project's test suite on cfutures.
"""
import os
import signal
import sys
import textwrap

import pytest

from futures_helpers import run_child


# Prints what python set up; the last line says which futures it got.
SHOW = textwrap.dedent("""
    import sys
    import concurrent.futures
    print("argv", sys.argv)
    print("path0", sys.path[0])
    print("main", __name__, sorted(k for k in ("__file__",) if k in globals()))
    print("futures", concurrent.futures.__name__)
""")


def run(args, cwd, stdin=None, launcher=False, env=None):
    """(stdout, stderr, returncode) of `python [-m cfutures] args`."""
    rc, out, err = run_child(args, cwd=str(cwd), stdin=stdin, launcher=launcher, env=env)
    return out, err, rc


def compare(args, cwd, stdin=None):
    """Run both ways; assert everything matches but the futures module;
    return the plain run's stdout lines."""
    plain = run(args, cwd, stdin)
    swapped = run(args, cwd, stdin, launcher=True)
    assert plain[2] == swapped[2], (plain, swapped)
    assert plain[1] == swapped[1], (plain, swapped)
    plain_lines = plain[0].splitlines()
    swapped_lines = swapped[0].splitlines()
    assert [ln for ln in plain_lines if not ln.startswith("futures ")] == \
        [ln for ln in swapped_lines if not ln.startswith("futures ")]
    if "futures concurrent.futures" in plain_lines:
        assert "futures cfutures" in swapped_lines
    return plain_lines


@pytest.fixture
def project(tmp_path):
    """tmp_path/proj/prog.py with a sibling module, and an empty cwd."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "sibling.py").write_text("VALUE = 'sibling here'\n")
    (proj / "prog.py").write_text("import sibling\nprint(sibling.VALUE)\n" + SHOW)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return proj, elsewhere


def test_script_from_another_directory(project):
    proj, elsewhere = project
    lines = compare([str(proj / "prog.py"), "a", "b"], elsewhere)
    assert lines[0] == "sibling here"
    assert "path0 %s" % proj in lines
    assert "argv ['%s', 'a', 'b']" % (proj / "prog.py") in lines


def test_script_by_relative_path_and_symlink(project, tmp_path):
    proj, _ = project
    os.symlink(str(proj / "prog.py"), str(tmp_path / "link.py"))
    lines = compare(["link.py", "x"], tmp_path)
    # python resolves the link: the script's own directory comes first
    assert "path0 %s" % proj in lines
    assert "argv ['link.py', 'x']" in lines


def test_directory_with_main(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(SHOW)
    lines = compare(["app", "z"], tmp_path)
    assert "path0 %s" % app in lines        # made absolute


def test_command(tmp_path):
    lines = compare(["-c", SHOW, "x", "y"], tmp_path)
    assert "argv ['-c', 'x', 'y']" in lines
    assert "path0 " in lines


def test_stdin_dash_and_piped(tmp_path):
    lines = compare(["-", "q"], tmp_path, stdin=SHOW)
    assert "argv ['-', 'q']" in lines
    lines = compare([], tmp_path, stdin=SHOW)
    assert "argv ['']" in lines


def test_module(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tool.py").write_text(SHOW)
    lines = compare(["-m", "pkg.tool", "k"], tmp_path)
    assert "argv ['%s', 'k']" % (pkg / "tool.py") in lines


def test_missing_script_and_module(tmp_path):
    out, err, rc = run(["nosuch.py"], tmp_path, launcher=True)
    assert (out, rc) == ("", 2)
    assert err == ("%s: can't open file %r: [Errno 2] No such file or directory\n"
                   % (sys.executable, str(tmp_path / "nosuch.py")))
    compare(["nosuch.py"], tmp_path)
    compare(["-m", "nosuch_module_xyz"], tmp_path)


def test_traceback_shows_the_program_only(tmp_path):
    (tmp_path / "boom.py").write_text("def f():\n    1 / 0\n\nf()\n")
    out, err, rc = run(["boom.py"], tmp_path, launcher=True)
    assert rc == 1
    assert "runpy" not in err and "cfutures" not in err, err
    compare(["boom.py"], tmp_path)
    compare(["-c", "raise SystemExit(7)"], tmp_path)


INTERRUPTED = textwrap.dedent("""
    import atexit
    import threading
    from concurrent.futures import ThreadPoolExecutor

    atexit.register(print, "atexit hook ran", flush=True)
    started, release = threading.Event(), threading.Event()

    def task():
        started.set()
        release.wait(60)
        print("task ended", flush=True)

    ex = ThreadPoolExecutor(1)
    ex.submit(task)
    started.wait(60)
    # The exit joins the pool's worker: let the task end only once the
    # program is already on its way out.
    threading.Timer(0.2, release.set).start()
    raise KeyboardInterrupt
""")


def test_ctrl_c_escaping_the_program_exits_as_python_does(tmp_path):
    # Python reports the KeyboardInterrupt, joins the threads (the pool
    # waits for its running task), runs the atexit hooks, and then kills
    # itself with SIGINT so the shell sees an interrupted program.
    (tmp_path / "interrupted.py").write_text(INTERRUPTED)
    lines = compare(["interrupted.py"], tmp_path)
    assert lines == ["task ended", "atexit hook ran"]
    out, err, rc = run(["interrupted.py"], tmp_path, launcher=True)
    assert rc == -signal.SIGINT
    assert err.rstrip().endswith("KeyboardInterrupt"), err


def test_help_documents_the_forms(tmp_path):
    out, err, rc = run(["-h"], tmp_path, launcher=True)
    assert rc == 0
    for form in ("prog.py", "-m module", "-c command", " - "):
        assert form in out, out


WORKERS = textwrap.dedent("""
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from workers_tasks import which

    if __name__ == "__main__":
        for method in sys.argv[1:]:
            context = multiprocessing.get_context(method)
            with ProcessPoolExecutor(1, mp_context=context) as ex:
                print("futures", method, ex.submit(which).result(timeout=60))
""")


def test_process_workers_see_cfutures(tmp_path):
    (tmp_path / "workers_tasks.py").write_text(textwrap.dedent("""
        def which():
            import concurrent.futures
            return concurrent.futures.__name__
    """))
    (tmp_path / "workers.py").write_text(WORKERS)
    methods = ["fork", "spawn", "forkserver"]
    out, err, rc = run(["workers.py", *methods], tmp_path, launcher=True)
    assert rc == 0, err
    assert out.splitlines() == ["futures %s cfutures" % m for m in methods]
    out, err, rc = run(["workers.py", *methods], tmp_path)
    assert out.splitlines() == ["futures %s concurrent.futures" % m for m in methods]


def test_pytest_runs_a_project_on_cfutures(tmp_path):
    (tmp_path / "calc.py").write_text(textwrap.dedent("""
        from concurrent.futures import ThreadPoolExecutor

        def squares(n):
            with ThreadPoolExecutor(2) as ex:
                return list(ex.map(lambda x: x * x, range(n)))
    """))
    (tmp_path / "test_calc.py").write_text(textwrap.dedent("""
        import concurrent.futures
        import calc

        def test_squares():
            assert calc.squares(4) == [0, 1, 4, 9]

        def test_on_cfutures():
            assert concurrent.futures.__name__ == "cfutures"
    """))
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_calc.py"]
    # The plugins installed for our own suite (hypothesis, xdist, timeout)
    # are not the project's: not loading them saves each run ~2 s of start-up.
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    out, err, rc = run(args, tmp_path, launcher=True, env=env)
    assert rc == 0, out + err
    assert "2 passed" in out
    # plainly, the project's own check of the module fails, as it should
    out, err, rc = run(args, tmp_path, env=env)
    assert rc == 1 and "1 failed, 1 passed" in out
