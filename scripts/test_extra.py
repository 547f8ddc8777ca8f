"""Print the requirements of pyproject.toml's `test` extra, one per line,
for the interpreter running this script.

The extra is the single list of test dependencies; this reads it without
tomllib (absent before 3.11) because the file's layout is ours and simple.
The packages only the `ends_only` tests use (type checkers, green threads,
joblib/loky: tests/conftest.py) are left out on the versions those tests do
not run on, unless CFUTURES_EVERY_VERSION is set: installing them five
times costs `make test` a minute of CI's fifteen.
"""
import ast
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENDS_ONLY = {"mypy", "pyright", "gevent", "eventlet", "joblib", "loky"}

text = ROOT.joinpath("pyproject.toml").read_text()
match = re.search(r"^test\s*=\s*\[(.*?)\]", text, re.M | re.S)
extras = re.findall(r'"([^"]+)"', match.group(1))
conftest = ROOT.joinpath("tests", "conftest.py").read_text()
ends = ast.literal_eval(re.search(r"^ENDS = (.*)$", conftest, re.M).group(1))
if sys.version_info[:2] not in ends and not os.environ.get("CFUTURES_EVERY_VERSION"):
    extras = [e for e in extras if re.split(r"[<>=!~\[ ]", e)[0] not in ENDS_ONLY]
print("\n".join(extras))
