#!/usr/bin/env bash
# scripts/venv.sh PYTHON DIR [editable|deps]
# Create the virtual environment DIR for interpreter PYTHON, once, with the
# project's test extra.  "editable" (the default) also installs cfutures
# itself in editable mode, so examples, benchmarks and child processes import
# the in-place build from any directory; "deps" installs only the test extra.
set -euo pipefail
python=$1 dir=$2 mode=${3:-editable}
stamp="$dir/.cfutures-$mode"
# What this interpreter's tests need (scripts/test_extra.py); the stamp
# keeps it, so a change of the list (CFUTURES_EVERY_VERSION=1) installs more.
extras=$("$python" scripts/test_extra.py)
[ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$(cat "$stamp")" = "$extras" ] && exit 0
echo "-- creating $dir ($("$python" --version 2>&1), $mode)"
[ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
# --no-compile: pip would compile every module of every package (half its
# time; five venvs at once on two cores); the tests compile what they import.
pip_install() { "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-compile "$@"; }
pip_install --upgrade pip setuptools wheel
# shellcheck disable=SC2086
pip_install $extras
if [ "$mode" = editable ]; then
    # Python files only: every make target that installs cfutures this way
    # builds the extension in place next (scripts/build.py, strict flags).
    CFUTURES_NO_EXTENSION=1 pip_install --no-build-isolation --no-deps -e .
fi
printf '%s\n' "$extras" > "$stamp"
