"""python -m cfutures prog.py [args...]

Run an unchanged program with concurrent.futures replaced by cfutures: the
program's `import concurrent.futures` (and its submodules _base, thread,
process) gets cfutures, everything else is as if it had been run with
`python prog.py [args...]`.
"""
import runpy
import sys

import concurrent
import cfutures
import cfutures._base
import cfutures.process
import cfutures.thread

USAGE = "usage: python -m cfutures prog.py [args...]"


def install():
    """Make `concurrent.futures` and its submodules resolve to cfutures."""
    replacements = {
        "concurrent.futures": cfutures,
        "concurrent.futures._base": cfutures._base,
        "concurrent.futures.thread": cfutures.thread,
        "concurrent.futures.process": cfutures.process,
    }
    sys.modules.update(replacements)
    concurrent.futures = cfutures


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    install()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
