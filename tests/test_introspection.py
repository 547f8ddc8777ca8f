"""Introspection: cfutures.__version__ is the package's version, and
inspect.signature() and help() describe every public callable as they do
for concurrent.futures.

Signatures are compared on what users call (classes, bound methods, module
functions), parameter by parameter: the stdlib's parameters, in its order,
with its kinds and defaults; cfutures may only add the documented extensions
(map's buffersize before 3.14, max_tasks_per_child before 3.11, and the
keyword-only options of "Beyond concurrent.futures").
"""
import concurrent.futures
import importlib.metadata
import inspect
import pydoc

import pytest

import cfutures

REF = concurrent.futures
# Parameters cfutures adds to a callable of the stdlib (by the last part of
# the callable's name).
EXTENSIONS = {
    "map": {"buffersize", "ordered"},
    "ProcessPoolExecutor": {"max_tasks_per_child", "task_timeout", "isolate_crashes",
                            "cancel_running", "max_memory_per_child", "pickler"},
    "ThreadPoolExecutor": {"copy_context"},
}


def test_version_is_the_package_metadata_version():
    assert isinstance(cfutures.__version__, str)
    try:
        installed = importlib.metadata.version("cfutures")
    except importlib.metadata.PackageNotFoundError:
        # `make sanitize` runs the tree from build/sanitize, not installed;
        # `make test` installs it (editable) and checks this.
        pytest.skip("cfutures is not installed here, so it has no metadata")
    assert cfutures.__version__ == installed
    assert "__version__" in dir(cfutures)


def callables(m, future, thread_pool, process_pool):
    """(name, object) for every public callable of module `m`."""
    out = [("Future", m.Future), ("Executor", m.Executor), ("wait", m.wait),
           ("as_completed", m.as_completed),
           ("ThreadPoolExecutor", m.ThreadPoolExecutor),
           ("ProcessPoolExecutor", m.ProcessPoolExecutor)]
    for name in ("cancel", "cancelled", "running", "done", "result", "exception",
                 "add_done_callback", "set_running_or_notify_cancel", "set_result",
                 "set_exception"):
        out.append(("Future." + name, getattr(future, name)))
    for label, ex in (("ThreadPoolExecutor", thread_pool), ("ProcessPoolExecutor", process_pool)):
        for name in ("submit", "map", "shutdown", "__enter__", "__exit__"):
            out.append(("%s.%s" % (label, name), getattr(ex, name)))
    return out


@pytest.fixture(scope="module")
def both():
    made = {}
    for m in (REF, cfutures):
        made[m] = (m.Future(), m.ThreadPoolExecutor(1), m.ProcessPoolExecutor(1))
    yield {m: callables(m, *objs) for m, objs in made.items()}
    for _, tp, pp in made.values():
        tp.shutdown()
        pp.shutdown()


def params(obj):
    return [(p.name, p.kind, p.default) for p in inspect.signature(obj).parameters.values()]


def test_every_signature_matches(both):
    differences = []
    for (name, ref), (_, ours) in zip(both[REF], both[cfutures]):
        ref_params, our_params = params(ref), params(ours)
        extra = {p[0] for p in our_params} - {p[0] for p in ref_params}
        allowed = EXTENSIONS.get(name.split(".")[-1], set())
        kept = [p for p in our_params if p[0] not in extra]
        if kept != ref_params or not extra <= allowed:
            differences.append((name, inspect.signature(ref), inspect.signature(ours)))
        for p in our_params:
            if p[0] in extra:
                assert p[2] is not inspect.Parameter.empty, (name, p)   # optional
                assert p[1] is inspect.Parameter.KEYWORD_ONLY, (name, p)
    assert differences == []


def test_keyword_arguments_are_taken_as_the_stdlib_takes_them():
    for m in (REF, cfutures):
        f = m.Future()
        f.add_done_callback(fn=lambda _: None)
        f.set_result(result=5)
        assert f.result(timeout=1) == 5 and f.exception(timeout=1) is None
        g = m.Future()
        g.set_exception(exception=ValueError("x"))
        with m.ThreadPoolExecutor(1) as ex:
            assert list(ex.map(fn=abs)) == []


@pytest.mark.parametrize("get, words", [
    (lambda m: m.ThreadPoolExecutor,
     ["max_workers", "thread_name_prefix", "initializer", "initargs", "copy_context"]),
    (lambda m: m.ProcessPoolExecutor,
     ["max_workers", "mp_context", "initializer", "initargs", "max_tasks_per_child"]),
    (lambda m: m.wait, ["fs", "timeout", "return_when", "FIRST_COMPLETED",
                        "FIRST_EXCEPTION", "ALL_COMPLETED"]),
    (lambda m: m.as_completed, ["fs", "timeout", "TimeoutError"]),
    (lambda m: m.Executor.map, ["fn", "timeout", "chunksize", "TimeoutError", "buffersize",
                                "ordered"]),
    (lambda m: m.ProcessPoolExecutor.map, ["chunksize", "buffersize", "ordered"]),
    (lambda m: m.Executor.shutdown, ["wait", "cancel_futures"]),
    (lambda m: m.Future.result, ["timeout", "CancelledError", "TimeoutError"]),
    (lambda m: m.Future.add_done_callback, ["fn"]),
])
def test_help_documents_every_parameter(get, words):
    for m in (REF, cfutures):
        text = pydoc.render_doc(get(m), renderer=pydoc.plaintext)
        missing = [w for w in words if w not in text]
        if m is REF:
            # not what the running stdlib lacks (max_tasks_per_child < 3.11)
            lacks = (set(inspect.signature(get(cfutures)).parameters)
                     - set(inspect.signature(get(m)).parameters))
            missing = [w for w in missing if w not in lacks]
        assert missing == [], (m.__name__, missing)
    # and the buffersize extension is documented
    assert "buffersize" in pydoc.render_doc(cfutures.Executor.map, renderer=pydoc.plaintext)
