"""Build the extension for the running interpreter, always from scratch.

    python scripts/build.py              # in place, next to cfutures/*.py
    python scripts/build.py --out DIR    # into DIR/cfutures/ with a copy of
                                         # the package (sanitizer builds)

Flags come from the environment (CFUTURES_STRICT, CFUTURES_SANITIZE, ...; see
setup.py).  --force because the same file name is built with different flags.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys
import sysconfig

root = pathlib.Path(__file__).resolve().parent.parent
parser = argparse.ArgumentParser()
parser.add_argument("--out", type=pathlib.Path)
args = parser.parse_args()

tag = sysconfig.get_config_var("SOABI") or "py%d%d" % sys.version_info[:2]
command = [sys.executable, "setup.py", "-q", "build_ext", "--force",
           "--build-temp", "build/temp-%s" % tag]
if args.out is None:
    command.append("--inplace")
else:
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(root / "cfutures", out / "cfutures",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    command += ["--build-lib", str(out)]
subprocess.check_call(command, cwd=root)
