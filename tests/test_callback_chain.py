"""Done-callbacks: long chains of them, and their lifetime.

(a) f[i].add_done_callback(f[i + 1].set_result) for a long chain, then
    f[0].set_result(0): each callback completes the next future from inside
    the previous one's callbacks.
    - With a raised recursion limit (10**6) and 40,000 links, in the main
      thread and in a threading.Thread (default stack size): every future is
      completed, nothing is logged, nothing crashes.  The 3.11+ stdlib does
      this; the 3.9/3.10 stdlib overflows the C stack itself, so its half is
      skipped there (cfutures is still held to the 3.11+ behaviour).  The
      stdlib half runs 10,000 links: it only establishes the oracle's
      outcome, which does not depend on the length there (its callbacks
      recurse in Python frames, not on the C stack; 3.9/3.10 overflow at
      10,000 as at 40,000), at a quarter of the time.
    - With the default recursion limit and 5,000 links: the stdlib logs one
      RecursionError through the 'concurrent.futures' logger ("exception
      calling callback for <Future ...>") and the rest of the chain stays
      pending.  The shape is compared (a prefix done, the record), not the
      depth.
    These run in a child process: today's build crashes (C stack overflow)
    or drops the RecursionError silently.  All the chains of one module run
    in one child, each reported on its own; one that crashes or hangs is
    reported as such, and the rest run in a fresh child (child_batch.py).
(b) The stdlib keeps the done-callbacks after running them: f._done_callbacks
    still lists them, and a callback stays alive as long as its future.
"""

import concurrent.futures
import gc
import os
import sys
import threading
import weakref

import pytest

import child_batch
from futures_helpers import LogRecords, agreed

REF = concurrent.futures
THIS = os.path.splitext(os.path.basename(__file__))[0]

pytestmark = pytest.mark.timeout(300)


# ---- running the chains in a child ------------------------------------------

class ChildDied(Exception):
    pass


HANG = 120.0        # the watchdog of each chain in the child
_OUTCOMES = {}      # which -> {key: outcome or child_batch.Failure}


def key_of(n, limit, where, link):
    return "%d-%s-%s-%s" % (n, limit, where, link)


def args_of(key):
    n, limit, where, link = key.split("-")
    return int(n), (None if limit == "None" else int(limit)), where, link


N_CFUTURES = 40000      # links of the chains with a raised limit
N_STDLIB = 10000        # the same for the oracle (see the docstring)


def all_args(which):
    """The arguments of chain() for every test of (a) below, on the module
    `which` names."""
    n = N_STDLIB if which == "stdlib" else N_CFUTURES
    return ([(n, 10 ** 6, w, k) for w in WHERE for k in LINKS]
            + [(5000, None, w, k) for w in WHERE for k in LINKS])


def child_outcome(which, *args):
    """The outcome of ``chain(m, *args)`` in a child interpreter (m: the
    module `which` names); ChildDied if it crashed or hung.  Every chain
    of one module runs in one child (computed once per test session)."""
    if which not in _OUTCOMES:
        _OUTCOMES[which] = child_batch.run_module_batch(
            THIS, which, [key_of(*a) for a in all_args(which)], HANG)
    got = _OUTCOMES[which][key_of(*args)]
    if isinstance(got, child_batch.Failure):
        raise ChildDied("%s: %s" % (which, got.message))
    return got


def cf_outcome(*args):
    """cfutures' outcome; its crash or hang fails the test."""
    try:
        return child_outcome("cfutures", *args)
    except ChildDied as exc:
        failure = str(exc)
    pytest.fail(failure)


def child_main(which, keys):
    if which == "stdlib":
        m = REF
    else:
        import cfutures as m
    default_limit = sys.getrecursionlimit()

    def run(key):
        try:
            return chain(m, *args_of(key))
        finally:
            sys.setrecursionlimit(default_limit)

    child_batch.serve(keys, run, HANG)


def chain(m, n, limit, where, link):
    """Build and fire the chain; return (how many done, whether the done
    ones are a prefix, the log records)."""
    if limit is not None:
        sys.setrecursionlimit(limit)
    box = []

    def run():
        fs = [m.Future() for _ in range(n + 1)]
        for i in range(n):
            if link == "bound":
                fs[i].add_done_callback(fs[i + 1].set_result)
            else:
                fs[i].add_done_callback(
                    lambda f, nxt=fs[i + 1]: nxt.set_result(f))
        fs[0].set_result(0)
        done = [f.done() for f in fs]
        k = done.count(True)
        box.append((k, done == [True] * k + [False] * (n + 1 - k)))

    with LogRecords() as log:
        if where == "main":
            run()
        else:
            t = threading.Thread(target=run)
            t.start()
            t.join()
    return box[0] + (log.seen,)


# ---- (a) long chains ----------------------------------------------------------

LINKS = ["bound", "closure"]
WHERE = ["main", "thread"]


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("where", WHERE)
def test_long_chain_with_raised_limit_completes(mod, where, link):
    n = N_CFUTURES
    try:
        reference = child_outcome("stdlib", N_STDLIB, 10 ** 6, where, link)
    except ChildDied as exc:
        if sys.version_info >= (3, 11):
            raise AssertionError("the stdlib must complete the chain: %s"
                                 % exc)
        reference, crash = None, str(exc).splitlines()[0]
    if reference is None and mod is REF:
        pytest.skip("the %d.%d stdlib itself overflows the C stack on this "
                    "chain (%s)" % (sys.version_info[:2] + (crash,)))
    if reference is not None:
        assert reference == (N_STDLIB + 1, True, [])
    if mod is not REF:
        assert cf_outcome(n, 10 ** 6, where, link) == (n + 1, True, [])


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("where", WHERE)
def test_chain_over_default_limit_logs_recursion_error(mod, where, link):
    n = 5000
    args = (n, None, where, link)
    reference = child_outcome("stdlib", *args)
    k, prefix, records = reference
    # The stdlib: a prefix of the chain done, the rest pending, and one
    # RecursionError logged by the future whose callback failed.
    assert 0 < k < n + 1 and prefix
    assert records == [(
        "concurrent.futures", "ERROR",
        "exception calling callback for <Future at 0xADDR state=finished "
        "returned Future>",
        "RecursionError")]
    if mod is not REF:
        k2, prefix2, records2 = cf_outcome(*args)
        assert (0 < k2 < n + 1, prefix2, records2) == (True, True, records)


# ---- (b) callbacks stay referenced after they ran ---------------------------

def make_callback():
    hits = []

    def callback(f):
        hits.append(f.done())

    return callback, hits


def finish(f, how):
    if how == "result":
        f.set_result(1)
    elif how == "exception":
        f.set_exception(ValueError("x"))
    else:
        assert f.cancel()


@pytest.mark.parametrize("how", ["result", "exception", "cancel"])
def test_callbacks_listed_after_running(mod, how):
    def scenario(m):
        f = m.Future()
        cb1, hits1 = make_callback()
        cb2, hits2 = make_callback()
        f.add_done_callback(cb1)
        f.add_done_callback(cb2)
        finish(f, how)
        kept = f._done_callbacks
        return (len(hits1), len(hits2), type(kept).__name__,
                [c is cb for c, cb in zip(kept, (cb1, cb2))], len(kept))

    assert agreed(scenario, mod) == (1, 1, "list", [True, True], 2)


@pytest.mark.parametrize("how", ["result", "exception", "cancel"])
def test_callback_lives_as_long_as_its_future(mod, how):
    def scenario(m):
        f = m.Future()
        cb, hits = make_callback()
        ref = weakref.ref(cb)
        f.add_done_callback(cb)
        del cb
        finish(f, how)
        gc.collect()
        alive_with_future = ref() is not None
        del f
        gc.collect()
        return len(hits), alive_with_future, ref() is None

    assert agreed(scenario, mod) == (1, True, True)
