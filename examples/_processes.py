"""Shared by the examples that have a ProcessPoolExecutor part.

run_all.py (and tests/test_examples.py) run every example once with
`--impl stdlib` and once with `--impl cfutures` and require identical output.
concurrent.futures has ProcessPoolExecutor, cfutures does not have one yet,
so "run the process part if the selected module has it" would print more
under the stdlib than under cfutures.  Instead the process part runs only
when *both* modules provide ProcessPoolExecutor -- i.e. when cfutures has
it, since the stdlib always does.  Today it is skipped under both modules
(with the same "skipped" line); once cfutures gets its ProcessPoolExecutor
the examples run in full, under both, with no change.

The examples themselves still write `futures.ProcessPoolExecutor(...)`, as
the lesson writes `ProcessPoolExecutor(...)`: this helper only decides
whether that code runs.
"""
import importlib

SKIPPED = "skipped (cfutures has no ProcessPoolExecutor yet)"


def processes_available(futures):
    """True if `futures` and cfutures both provide ProcessPoolExecutor."""
    cfutures = importlib.import_module("cfutures")
    return (hasattr(cfutures, "ProcessPoolExecutor")
            and hasattr(futures, "ProcessPoolExecutor"))
