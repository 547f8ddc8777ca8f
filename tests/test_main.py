"""`python -m cfutures prog.py [args]` runs an unchanged program on cfutures."""
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent("""
    import multiprocessing
    import sys
    import concurrent.futures as cf
    from concurrent.futures import ThreadPoolExecutor, ProcessPoolExecutor, as_completed
    from concurrent.futures.thread import BrokenThreadPool

    def square(x):
        return x * x

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[1])
        with ThreadPoolExecutor(2) as ex:
            fs = [ex.submit(square, i) for i in range(5)]
            print(type(ex).__module__, sorted(f.result() for f in as_completed(fs)))
        with ProcessPoolExecutor(2) as ex:
            print(type(ex).__module__, list(ex.map(square, range(5))))
        print(cf.Future.__module__, BrokenThreadPool.__module__, sys.argv[1:])
""")


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_program_runs_on_cfutures(tmp_path, start_method):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)

    def run(*prefix):
        return subprocess.run([sys.executable, *prefix, str(prog), start_method, "x"],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    plain, swapped = run(), run("-m", "cfutures")
    assert plain.returncode == 0 and swapped.returncode == 0, (plain.stderr, swapped.stderr)
    assert plain.stdout.splitlines() == [
        "concurrent.futures.thread [0, 1, 4, 9, 16]",
        "concurrent.futures.process [0, 1, 4, 9, 16]",
        "concurrent.futures._base concurrent.futures.thread ['%s', 'x']" % start_method,
    ]
    # The same program, the same results, on cfutures; the exception classes
    # stay the stdlib's own.
    assert swapped.stdout.splitlines() == [
        "cfutures.thread [0, 1, 4, 9, 16]",
        "cfutures.process [0, 1, 4, 9, 16]",
        "cfutures._base concurrent.futures.thread ['%s', 'x']" % start_method,
    ]


def test_usage_without_a_program():
    done = subprocess.run([sys.executable, "-m", "cfutures"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "usage: python -m cfutures prog.py" in done.stderr
