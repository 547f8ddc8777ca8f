"""Several scenarios in one child interpreter, each reported on its own.

Tests that run a scenario per child interpreter (because today's build may
crash or hang on it, or because it changes process-wide state) spend most
of their time starting interpreters.  Here one child runs a whole batch of
scenarios, one after the other, and reports each as it goes:

    @@batch-start@@ <key>             before the scenario runs
    @@batch-done@@ <key> <repr>       its outcome (a literal: ast.literal_eval)

The same start line is written to stderr, so that the parent can tell which
scenario wrote what there.  Each scenario runs under its own watchdog
(faulthandler.dump_traceback_later(..., exit=True)): one that hangs ends
the child with the stacks on stderr.  One that raises prints its traceback
and ends the child too (whatever it left behind must not disturb the next
one).  The parent (run_batch) then starts a fresh child for the scenarios
not run yet, so every scenario is reported: with its outcome, or as a
Failure that says whether it crashed, hung or raised, with its stderr.  A
child that ends with a non-zero status after reporting all its scenarios
(an error at interpreter exit) fails every scenario it ran.

Both sides live here: the child imports this module (the tests directory
must be on its sys.path) and calls serve(); the test calls run_batch().
"""

import ast
import faulthandler
import gc
import os
import signal
import sys
import traceback

START = "@@batch-start@@ "
DONE = "@@batch-done@@ "


# ---- the child's side -------------------------------------------------------

def serve(keys, run, hang):
    """Run ``run(key)`` for each key, each under a watchdog of `hang`
    seconds, and report as described above.  Exits the process (status 1)
    at the first scenario that raises.  (The child's side imports nothing
    but the standard modules above: a child may monkey-patch first.)"""
    for key in keys:
        for stream in (sys.stdout, sys.stderr):
            stream.write(START + key + "\n")
            stream.flush()
        faulthandler.dump_traceback_later(hang, exit=True)
        try:
            value = run(key)
            text = repr(value)
            ast.literal_eval(text)      # must be readable by the parent
        except BaseException:  # noqa: B902 - reported, then the child ends
            faulthandler.cancel_dump_traceback_later()
            traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        # Whatever the scenario left for the collector (and the __del__
        # methods that would run) goes now, not inside the next scenario.
        gc.collect()
        faulthandler.cancel_dump_traceback_later()
        sys.stdout.write(DONE + key + " " + text + "\n")
        sys.stdout.flush()


# ---- the test's side --------------------------------------------------------

class Failure(object):
    """A scenario without an outcome: `message` says why (crashed, hung,
    raised, or the child failed at exit), with the child's stderr."""

    def __init__(self, key, message):
        self.key = key
        self.message = message

    def __repr__(self):
        return "Failure(%r)" % (self.key,)


def run_module_batch(module, which, keys, hang):
    """run_batch() for a test module that serves its own scenarios: the
    child imports `module` and calls its ``child_main(which, keys)``, in
    the root of the tree under test."""
    from futures_helpers import ROOT
    code = "import sys, %s as T; T.child_main(%r, sys.argv[1:])" % (module,
                                                                  which)
    return run_batch(lambda keys: ["-c", code] + list(keys), keys, hang,
                     cwd=ROOT, describe="%s child" % which)


def _stderr_of(err, key):
    """The part of the child's stderr written while `key` ran."""
    mark = START + key + "\n"
    at = err.rfind(mark)
    return err if at < 0 else err[at + len(mark):]


def run_batch(args_for, keys, hang, cwd=None, grace=60.0, describe="child"):
    """{key: outcome or Failure} for every key.  ``python *args_for(keys)``
    is a child that calls serve() on those keys (in that order) with the
    watchdog `hang`; it is started by futures_helpers.start_child (the tree
    under test and the tests directory on its path, a session of its own),
    and whatever it leaves running is killed with its process group.  If a
    child runs past every watchdog (plus `grace` seconds), it is killed and
    the scenario it was in counts as hung."""
    from futures_helpers import start_child    # not in the child: see serve
    results = {}
    remaining = list(keys)
    while remaining:
        limit = hang * len(remaining) + grace
        child = start_child(args_for(remaining), cwd=cwd)
        try:
            rc = child.wait(limit)
            if rc is None:
                rc = "killed after %s s" % limit
            stdout, stderr = child.output()
        finally:
            child.close()
        started, done = [], {}
        for line in stdout.splitlines():
            if line.startswith(START):
                started.append(line[len(START):])
            elif line.startswith(DONE):
                key, _, text = line[len(DONE):].partition(" ")
                done[key] = ast.literal_eval(text)
        if rc != 0 and len(done) == len(remaining):
            # Every scenario reported, but the child failed afterwards.
            for key in remaining:
                results[key] = Failure(key, (
                    "%s: the %s ran this scenario (among %d) and then exited "
                    "with status %s; its stderr ends:\n%s"
                    % (key, describe, len(remaining), rc, stderr[-3000:])))
            break
        results.update(done)
        lost = [k for k in started if k not in done]
        if not started:
            for key in remaining:
                results[key] = Failure(key, (
                    "%s: the %s ended (status %s) before its first scenario;"
                    " its stderr ends:\n%s"
                    % (key, describe, rc, stderr[-3000:])))
            break
        for key in lost:
            text = _stderr_of(stderr, key)
            if isinstance(rc, str):
                what = "hung (the %s was %s)" % (describe, rc)
            elif "Timeout (" in text:
                what = "hung (no outcome within %s s)" % hang
            elif rc == 1 and "Traceback (most recent call last)" in text:
                what = "raised"
            elif isinstance(rc, int) and rc < 0:
                what = "crashed (%s)" % signal.Signals(-rc).name
            else:
                what = "ended the %s with status %s" % (describe, rc)
            results[key] = Failure(key, "%s: the scenario %s; stderr:\n%s"
                                   % (key, what, text.strip()[-3000:]))
        remaining = [k for k in remaining if k not in results]
        if remaining and not lost:
            # Exited early without a scenario in progress: no progress can
            # be made by trying again.
            for key in remaining:
                results[key] = Failure(key, (
                    "%s: the %s exited (status %s) before running it; its "
                    "stderr ends:\n%s" % (key, describe, rc, stderr[-3000:])))
            break
    return results
