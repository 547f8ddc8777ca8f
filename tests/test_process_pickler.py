"""Which pickler a process pool's calls and results go through, and how a
module-level function is found again.

multiprocessing pickles with ForkingPickler, whose dispatch table adds its
own reducers (sockets, connections, partials, bound methods, and whatever
multiprocessing.reduction.register and libraries add) to copyreg's.  The
pool pickles plain calls -- a function and ints, strs, bytes, ... -- with
pickle.dumps, which gives the same bytes for them (src/shm.c, "which
pickler"); these tests hold that shortcut to never change what arrives:
whatever needs a ForkingPickler reducer still gets it, in calls and in
results, and a ForkingPickler changed at run time turns the shortcut off.

A module-level function goes as a pickle of its own that both sides keep
(src/shm.h, "split calls"); it must still be looked up by name, as pickle
does, whenever that name could give something else: the module attribute
rebound in the parent or in the worker, a dotted qualname, the audit event
find_class raises.
"""
import multiprocessing
import multiprocessing.reduction
import multiprocessing.resource_sharer
import socket

import pytest

import process_tasks as tasks
from futures_helpers import TIMEOUT, agreed, agreed_once

ForkingPickler = multiprocessing.reduction.ForkingPickler


def run(m, fn, *args, options=None, **kwargs):
    """fn(*args, **kwargs) in a fresh one-worker pool of `m` (made with
    `options`): its result, or the class and text of its error."""
    with m.ProcessPoolExecutor(1, **(options or {})) as ex:
        try:
            return ex.submit(fn, *args, **kwargs).result(timeout=TIMEOUT)
        except Exception as e:
            return type(e).__name__, str(e)


@pytest.fixture
def resource_sharer():
    """Sockets and connections reach a worker through multiprocessing's
    resource sharer, a thread that serves them: stopped after the test."""
    try:
        yield
    finally:
        multiprocessing.resource_sharer.stop(TIMEOUT)


def test_plain_values_arrive_as_they_were_sent(mod):
    args = (0, -1, 2 ** 70, 1.5, float("inf"), "é", b"\x00", None, True,
            (1, "a"), [2.0, [3, (4,)]], {"k": [b"v"], 1: None}, int, len)
    kwargs = {"key": {"nested": (1, 2)}, "other": [None] * 300}
    outcome = agreed_once(lambda m: run(m, tasks.plain_values, *args, **kwargs), mod)
    assert outcome[0][0] == ("int", 0)
    assert outcome[1][1] == ("other", "list", [None] * 300)


def test_a_socket_argument_uses_its_reducer(mod, resource_sharer):
    def scenario(m):
        here, there = socket.socketpair()
        with here, there:
            sent = run(m, tasks.send_on_socket, there, b"through the socket")
            return sent, here.recv(100)
    assert agreed(scenario, mod) == (18, b"through the socket")


def test_a_connection_argument_uses_its_reducer(mod, resource_sharer):
    def scenario(m):
        reader, writer = multiprocessing.Pipe(duplex=False)
        with reader, writer:
            sent = run(m, tasks.send_on_connection, writer, ["through", "the pipe"])
            return sent, reader.poll(TIMEOUT) and reader.recv()
    assert agreed(scenario, mod) == (True, ["through", "the pipe"])


@pytest.fixture
def builtin_reducer():
    """A reducer registered for builtin functions (len, sorted, ...), which
    the plain shortcut would otherwise take, for the test's duration."""
    kind = type(len)
    assert kind not in ForkingPickler._extra_reducers
    multiprocessing.reduction.register(kind, tasks.reduce_to_tagged)
    try:
        yield
    finally:
        del ForkingPickler._extra_reducers[kind]


def test_a_registered_reducer_applies_to_a_call(mod, builtin_reducer):
    # len arrives as partial(tagged, "len"), called with the argument.
    assert agreed(lambda m: run(m, len, "abc"), mod) == ("reduced", "len", "abc")


def test_a_registered_reducer_applies_to_an_argument(mod, builtin_reducer):
    def scenario(m):
        (one, reduced), kw = run(m, tasks.echo, 1, sorted)
        return one, reduced("y"), kw
    assert agreed(scenario, mod) == (1, ("reduced", "sorted", "y"), [])


def test_without_a_registered_reducer_a_builtin_goes_by_name(mod):
    assert agreed(lambda m: run(m, len, "abc"), mod) == 3


def test_a_reducer_registered_in_the_worker_applies_to_its_result(mod):
    def scenario(m):
        reduced = run(m, tasks.return_builtin, None,
                      options={"initializer": tasks.register_builtin_reducer})
        return reduced("x")
    assert agreed_once(scenario, mod) == ("reduced", "len", "x")


def test_a_reducer_override_added_to_forking_pickler_applies(mod):
    # The pool's shortcut is checked against ForkingPickler as loaded: a
    # reducer_override added since (or __init__ replaced) turns it off.
    def reducer_override(self, obj):
        if obj is tasks.square:
            return tasks.reduce_to_tagged(obj)
        return NotImplemented

    def scenario(m):
        ForkingPickler.reducer_override = reducer_override
        try:
            return run(m, tasks.square, 7)
        finally:
            del ForkingPickler.reducer_override
    assert agreed(scenario, mod) == ("reduced", "square", 7)
    assert agreed(lambda m: run(m, tasks.square, 7), mod) == 49


def test_unpicklable_plain_looking_calls_fail_as_in_the_stdlib(mod):
    # A lambda is a function, pickled by name: the plain shortcut fails as
    # ForkingPickler does, on that future only.
    outcome = agreed(lambda m: run(m, lambda x: x, 1)[0], mod)
    assert outcome in ("PicklingError", "AttributeError")


# ---- split calls -----------------------------------------------------------

def test_a_function_rebound_in_the_parent_fails_as_pickle_says(mod, monkeypatch):
    # pickle refuses a function whose module attribute is now another
    # object ("it's not the same object as ..."): after a first call has
    # kept its pickle, too.
    original = tasks.named_target

    def scenario(m):
        with m.ProcessPoolExecutor(1) as ex:
            first = ex.submit(original, 1).result(timeout=TIMEOUT)
            monkeypatch.setattr(tasks, "named_target", tasks.other_target)
            try:
                error = ex.submit(original, 2).exception(timeout=TIMEOUT)
            finally:
                monkeypatch.undo()
            again = ex.submit(original, 3).result(timeout=TIMEOUT)
            return first, type(error).__name__, again
    assert agreed(scenario, mod) == (("named_target", 1), "PicklingError",
                                     ("named_target", 3))


def test_a_function_rebound_in_the_worker_is_looked_up_again(mod):
    # The worker finds the function by name at each call, as pickle does:
    # once a task rebinds the name there, the next call gets the new one.
    def scenario(m):
        with m.ProcessPoolExecutor(1) as ex:
            before = ex.submit(tasks.named_target, 1).result(timeout=TIMEOUT)
            ex.submit(tasks.rebind_named_target).result(timeout=TIMEOUT)
            after = ex.submit(tasks.named_target, 2).result(timeout=TIMEOUT)
            return before, after
    assert agreed_once(scenario, mod) == (("named_target", 1), ("other_target", 2))


def test_a_function_with_a_dotted_qualname_arrives(mod):
    def scenario(m):
        with m.ProcessPoolExecutor(1) as ex:
            return list(ex.map(tasks.Holder.triple, range(5)))
    assert agreed_once(scenario, mod) == [0, 3, 6, 9, 12]


def test_each_call_raises_the_find_class_audit_event(cf):
    # A worker that keeps the function it found still tells audit hooks
    # about every lookup, as unpickling it each time would.
    with cf.ProcessPoolExecutor(1, initializer=tasks.count_find_class) as ex:
        list(ex.map(tasks.square, range(20)))
        events = ex.submit(tasks.find_class_events, "process_tasks", "square")
        assert events.result(timeout=TIMEOUT) == 20


# ---- tiny tasks in bulk ------------------------------------------------------

def test_a_map_of_tiny_tasks_gives_the_stdlibs_results_and_error(mod):
    # Thousands of calls queued per worker, their frames written and read
    # in bulk: the results, in order, and the error at its item.
    items = list(range(3000))
    items[2500] = -7

    def scenario(m):
        got = []
        with m.ProcessPoolExecutor(2) as ex:
            try:
                for value in ex.map(tasks.tenfold_positive, items):
                    got.append(value)
            except ValueError as e:
                return len(got), got == [10 * x for x in range(2500)], str(e)
    assert agreed_once(scenario, mod) == (2500, True, "negative: -7")


def test_tiny_submits_all_complete_as_in_the_stdlib(mod):
    def scenario(m):
        with m.ProcessPoolExecutor(2) as ex:
            fs = [ex.submit(tasks.add, i, i) for i in range(5000)]
            done = sorted(f.result() for f in m.as_completed(fs, timeout=TIMEOUT))
            return done == [2 * i for i in range(5000)], ex.submit(len, "abc").result()
    assert agreed_once(scenario, mod) == (True, 3)


def test_ctrl_c_while_a_kept_function_is_looked_up_reaches_submits_caller(cf):
    # The checks before a kept function pickle is used look it up by name,
    # which may run Python code (here a module __getattr__); a Ctrl-C there
    # is the caller's, as one while pickling, and the pool goes on.
    import lookup_tasks
    with cf.ProcessPoolExecutor(1) as ex:
        assert ex.submit(lookup_tasks.target, 1).result(timeout=TIMEOUT) == ("target", 1)
        lookup_tasks.interrupt_next()
        with pytest.raises(KeyboardInterrupt):
            ex.submit(lookup_tasks.target, 2)
        assert ex.submit(lookup_tasks.target, 3).result(timeout=TIMEOUT) == ("target", 3)


# ---- chunks ------------------------------------------------------------------

def test_chunks_of_plain_calls_give_the_stdlibs_results_and_error(mod):
    # map(chunksize=...) sends _process_chunk(fn, chunk) (fn an argument,
    # not in a partial): what arrives and what is raised are the stdlib's.
    items = list(range(1000))
    items[777] = -3

    def scenario(m):
        with m.ProcessPoolExecutor(2) as ex:
            first = list(ex.map(tasks.add, range(100), range(100), chunksize=7))
            got = []
            try:
                for value in ex.map(tasks.tenfold_positive, items, chunksize=16):
                    got.append(value)
            except ValueError as e:
                return first == [2 * i for i in range(100)], len(got), str(e)
    assert agreed_once(scenario, mod) == (True, 768, "negative: -3")


def test_a_worker_dying_in_a_chunk_is_named_so(cf):
    from cfutures.process import WorkerDied
    with cf.ProcessPoolExecutor(1, isolate_crashes=True) as ex:
        results = ex.map(tasks.crash_on, range(10), [5] * 10, ["exit"] * 10, chunksize=4)
        with pytest.raises(WorkerDied) as caught:
            list(results)
        assert str(caught.value).endswith("while running a chunk of map()")
