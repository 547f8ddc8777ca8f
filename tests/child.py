"""The child's side of futures_helpers.run_child(): what the scripts that
tests run in a child interpreter share.  Import only what they need: a
cfutures child must not import the stdlib's pools by accident."""

import importlib
import sys


def futures(which):
    """The module a child tests: "stdlib" or "cfutures" (see
    futures_helpers.which)."""
    return importlib.import_module(
        "concurrent.futures" if which == "stdlib" else "cfutures")


def say(text):
    """One line on stdout, in one write, flushed: PYTHONUNBUFFERED may be
    set, and workers may share the pipe."""
    sys.stdout.write("%s\n" % (text,))
    sys.stdout.flush()
