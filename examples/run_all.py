"""Run every example under concurrent.futures and under cfutures, compare.

Each example prints its results deterministically (sorted where completion
order varies), so the two outputs must be identical.  The examples that use
processes (their source mentions ProcessPoolExecutor) are run once per
multiprocessing start method (--start-method, see _select.py: fork, spawn
and forkserver on Linux), under both modules each time; the others once,
with the platform's default.  Exit status 1 if any run fails or differs.
"""
import multiprocessing
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
IMPLS = ("stdlib", "cfutures")


def example_scripts():
    return [script for script in sorted(HERE.glob("*.py"))
            if not script.name.startswith("_") and script.name != "run_all.py"]


def uses_processes(script):
    return "ProcessPoolExecutor" in script.read_text()


def start_methods(script):
    """The start methods to run `script` under; None: no option, the default."""
    if uses_processes(script):
        return multiprocessing.get_all_start_methods()
    return [None]


def command(script, impl, start_method=None):
    cmd = [sys.executable, str(script), "--impl", impl]
    if start_method is not None:
        cmd += ["--start-method", start_method]
    return cmd


def run(script, impl, start_method=None):
    cmd = command(script, impl, start_method)
    what = " ".join([script.name] + cmd[2:])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        raise SystemExit(f"{what} timed out after {e.timeout} s;"
                         f" stdout so far:\n{e.stdout or ''}\nstderr:\n{e.stderr or ''}")
    if proc.returncode != 0:
        raise SystemExit(f"{what} exited {proc.returncode}:\n"
                         f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout


def main():
    failed = False
    for script in example_scripts():
        first = None  # (start method, cfutures output) of the script's first run
        for method in start_methods(script):
            outputs = {impl: run(script, impl, method) for impl in IMPLS}
            same = outputs["stdlib"] == outputs["cfutures"]
            failed |= not same
            label = script.name if method is None else f"{script.name} --start-method {method}"
            status = "same output under both" if same else "OUTPUTS DIFFER"
            if first is not None and same and outputs["cfutures"] == first[1]:
                # Later start methods: the output is only repeated if it changed.
                print(f"== {label}: {status} (and as under {first[0]})")
                continue
            print(f"== {label}: {status}")
            print(outputs["cfutures"], end="")
            if not same:
                print("-- stdlib printed:\n" + outputs["stdlib"], end="")
            if first is None:
                first = (method, outputs["cfutures"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
