"""Run every example under concurrent.futures and under cfutures, compare.

Each example prints its results deterministically (sorted where completion
order varies), so the two outputs must be identical.  Exit status 1 if any
example fails or differs.
"""
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def run(script, impl):
    proc = subprocess.run([sys.executable, str(script), "--impl", impl],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"{script.name} --impl {impl} failed:\n{proc.stderr}")
    return proc.stdout


def main():
    failed = False
    for script in sorted(HERE.glob("*.py")):
        if script.name.startswith("_") or script.name == "run_all.py":
            continue
        outputs = {impl: run(script, impl) for impl in ("stdlib", "cfutures")}
        same = outputs["stdlib"] == outputs["cfutures"]
        failed |= not same
        print(f"== {script.name}: {'same output under both' if same else 'OUTPUTS DIFFER'}")
        print(outputs["cfutures"], end="")
        if not same:
            print("-- stdlib printed:\n" + outputs["stdlib"], end="")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
