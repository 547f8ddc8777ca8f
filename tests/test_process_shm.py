"""Big calls and results through shared memory (src/shm.c).

What arrives is what the stdlib's pool delivers -- compared value by value,
under every start method -- and nothing is left behind: no descriptor, no
mapping, no file in /dev/shm, whether the transfer ends normally, the
worker crashes holding it, its task is cancelled while running, or the pool
breaks with big frames in flight.  The NumPy tests skip, saying so, where
NumPy is not installed (it is in the test extra).
"""
import array
import multiprocessing.resource_tracker
import os
import pickle
import random

import pytest

import cfutures
import process_tasks as tasks
import shm_tasks
from futures_helpers import TIMEOUT, agreed_once, wait_until
from shm_tasks import shared_held, summary

METHODS = tasks.METHODS
MB = 1000 * 1000


@pytest.fixture(scope="module", autouse=True)
def resource_tracker():
    """The first spawn or forkserver pool of a process starts
    multiprocessing's resource tracker, whose pipe stays open for good: it
    runs before any baseline of descriptors is taken here, whichever test
    of the file runs first in this process."""
    multiprocessing.resource_tracker.ensure_running()


def noise(n):
    """n bytes without a pattern, the same in both halves of a test."""
    return random.Random(n).randbytes(n)


def needs_numpy():
    return pytest.importorskip(
        "numpy", reason="NumPy is not installed: pip install 'cfutures[test]' "
                        "to run the shared-memory tests with arrays")


def both_ways(m, method, values):
    """What a worker receives of each value, and what comes back of it."""
    with m.ProcessPoolExecutor(1, mp_context=tasks.context(method)) as ex:
        there = [ex.submit(shm_tasks.describe, v) for v in values]
        back = [ex.submit(shm_tasks.identity, v) for v in values]
        return ([f.result(timeout=TIMEOUT) for f in there],
                [summary(f.result(timeout=TIMEOUT)) for f in back])


@pytest.mark.parametrize("method", METHODS)
def test_big_bytes_arrive_as_the_stdlib_delivers(mod, method):
    values = [b"s" * 100, noise(3 * MB), bytearray(noise(2 * MB)),
              [noise(MB), bytearray(5 * MB)]]
    there, back = agreed_once(lambda m: both_ways(m, method, values), mod)
    assert there == back == [summary(v) for v in values]


@pytest.mark.parametrize("method", METHODS)
def test_arrays_arrive_as_the_stdlib_delivers(mod, method):
    np = needs_numpy()
    big = np.arange(1_000_000, dtype="int64")
    values = [big, np.arange(10), big[::2], big[:0],
              np.asfortranarray(np.ones((600, 500), dtype="float32")),
              np.zeros(2_000_000, dtype=bool),
              np.zeros(20_000, dtype=[("a", "i4"), ("b", "f8")]),
              [np.full(100_000 // 8, i, dtype="float64") for i in range(50)],
              {"array": big, "bytes": noise(2 * MB)}]
    there, back = agreed_once(lambda m: both_ways(m, method, values[:-1]), mod)
    assert there[0] == summary(big) and there[0][3]     # arrived writable
    assert back == there
    with cfutures.ProcessPoolExecutor(1, mp_context=tasks.context(method)) as ex:
        d = ex.submit(shm_tasks.identity, values[-1]).result(timeout=TIMEOUT)
        assert (d["array"] == big).all() and d["bytes"] == values[-1]["bytes"]


def test_a_read_only_array_arrives_read_only(cf):
    # Pickle protocol 5 (the stdlib's default from 3.14) keeps an array's
    # read-only flag; the stdlib before 3.14 pickles with protocol 4, whose
    # copy is writable.  README: Known differences.
    np = needs_numpy()
    a = np.arange(100_000)
    a.flags.writeable = False
    with cf.ProcessPoolExecutor(1) as ex:
        assert ex.submit(shm_tasks.describe, a).result(timeout=TIMEOUT)[3] is False


def test_picklebuffers_go_as_protocol_5_delivers_them(cf):
    # The stdlib (protocol 4 before 3.14) cannot send a PickleBuffer at all.
    # cfutures delivers one over bytes or a bytearray as protocol 5 does in
    # band, and one over another buffer as the PickleBuffer it sent, over
    # shared memory (README: Known differences); both can be sent again.
    data = array.array("d", range(100_000))
    with cf.ProcessPoolExecutor(1) as ex:
        got = ex.submit(shm_tasks.identity, pickle.PickleBuffer(bytearray(300_000)))
        assert type(got.result(timeout=TIMEOUT)) is bytearray
        got = ex.submit(shm_tasks.identity, pickle.PickleBuffer(b"r" * 300_000))
        assert type(got.result(timeout=TIMEOUT)) is bytes
        got = ex.submit(shm_tasks.identity, pickle.PickleBuffer(data)).result(timeout=TIMEOUT)
        assert type(got) is pickle.PickleBuffer
        assert bytes(got.raw()) == data.tobytes()
        again = ex.submit(shm_tasks.identity, got).result(timeout=TIMEOUT)
        assert bytes(again.raw()) == data.tobytes()


def test_each_side_owns_what_it_received(cf):
    np = needs_numpy()
    a = np.arange(1_000_000)
    with cf.ProcessPoolExecutor(1) as ex:
        changed = ex.submit(shm_tasks.write_into, a).result(timeout=TIMEOUT)
        assert a[0] == 0 and changed[0] == -1 and changed.flags.writeable
        changed[1] = -2                         # the parent's own, too
        assert (changed[2:] == a[2:]).all()


def test_a_result_outlives_its_pool_and_its_memory_goes_with_it(cf):
    np = needs_numpy()
    with cf.ProcessPoolExecutor(1) as ex:
        ex.submit(shm_tasks.identity, 1).result(timeout=TIMEOUT)
        before = shared_held()
        result = ex.submit(shm_tasks.make_array, 3_000_000).result(timeout=TIMEOUT)
        assert shared_held()[2] == before[2] + 1    # one mapping, no descriptor
        assert shared_held()[1] == before[1]
    assert int(result.sum()) == 3_000_000 * 2_999_999 // 2
    view = result[10:20]
    del result
    assert shared_held()[2] == before[2] + 1        # the slice keeps it
    assert list(view) == list(range(10, 20))
    del view
    assert shared_held()[2] == before[2]


def dev_shm():
    return {name for name in os.listdir("/dev/shm") if not name.startswith("sem.")}


# A process keeps at most this many segments it sent, and as many it
# received, mapped for reuse (src/shm.c, SHM_CACHE_SLOTS); a process pool's
# end lets them go.
CACHE_SLOTS = 4


def within_the_caches(held):
    _, memfds, maps = held
    return memfds <= CACHE_SLOTS and maps <= 2 * CACHE_SLOTS


@pytest.mark.parametrize("method", METHODS)
def test_nothing_left_behind_by_many_transfers(cf, method):
    np = needs_numpy()
    files, before = dev_shm(), shared_held()
    with cf.ProcessPoolExecutor(2, mp_context=tasks.context(method)) as ex:
        list(ex.map(shm_tasks.identity, range(4)))
        values = [np.arange(200_000 + i) for i in range(12)] + [noise(2 * MB)] * 4
        held = []
        for _ in range(2):
            for value, back in zip(values, ex.map(shm_tasks.identity, values)):
                assert summary(back) == summary(value)
            del back
            held.append((shared_held(), ex.submit(shm_tasks.held).result(timeout=TIMEOUT)))
        # parent and worker: bounded by the caches, after twice the traffic too
        assert all(within_the_caches(h) for pair in held for h in pair), held
    assert shared_held() == before
    assert dev_shm() == files


def test_a_burst_of_big_calls_is_bounded(cf):
    np = needs_numpy()
    before = shared_held()
    with cf.ProcessPoolExecutor(2) as ex:
        fs = [ex.submit(shm_tasks.identity, np.full(300_000, i)) for i in range(30)]
        assert all(f.result(timeout=TIMEOUT)[0] == i for i, f in enumerate(fs))
        del fs
        assert within_the_caches(shared_held())
    assert shared_held() == before


def test_an_idle_pool_lets_its_shared_memory_go(cf):
    # Both sides keep the segments of big frames mapped for reuse
    # (src/shm.c); once unused for a second, both let them go, while tiny
    # tasks still come and go: an idle pool holds no shared memory, as the
    # stdlib's holds no buffer.
    with cf.ProcessPoolExecutor(1) as ex:
        worker_baseline = ex.submit(shm_tasks.held).result(timeout=TIMEOUT)
        baseline = shared_held()                            # the pool's own included
        data = noise(3 * MB)
        assert ex.submit(shm_tasks.identity, data).result(timeout=TIMEOUT) == data
        assert shared_held()[1:] > baseline[1:]             # kept for reuse
        assert ex.submit(shm_tasks.held).result(timeout=TIMEOUT) > worker_baseline
        wait_until(lambda: ex.submit(shm_tasks.held).result(timeout=TIMEOUT) == worker_baseline,
                   what="the worker to let its shared memory go")
        settles_clean(baseline)
        # and shared memory works again after that
        assert ex.submit(shm_tasks.identity, data).result(timeout=TIMEOUT) == data


def test_what_is_held_outlives_the_idle_trim(cf):
    # A result the parent keeps, an argument the worker keeps: their
    # segments are not the caches' to let go while objects view them.
    np = needs_numpy()
    with cf.ProcessPoolExecutor(1) as ex:
        worker_baseline = ex.submit(shm_tasks.held).result(timeout=TIMEOUT)
        baseline = shared_held()                            # the pool's own included
        argument = np.arange(1_000_000)
        ex.submit(shm_tasks.keep, argument).result(timeout=TIMEOUT)
        result = ex.submit(shm_tasks.make_array, 3_000_000).result(timeout=TIMEOUT)
        # The sides let go of what they sent, a second unused: the worker's
        # segment of the result, the parent's of the argument.
        wait_until(lambda: shared_held()[1] == baseline[1],
                   what="the parent to let go of the segment it sent")
        wait_until(lambda: ex.submit(shm_tasks.held).result(timeout=TIMEOUT)[1] ==
                   worker_baseline[1], what="the worker to let go of the segment it sent")
        assert shared_held()[2] == baseline[2] + 1          # the result's mapping
        assert int(result.sum()) == 3_000_000 * 2_999_999 // 2
        assert ex.submit(shm_tasks.kept_summary).result(timeout=TIMEOUT) == [summary(argument)]
        del result
        wait_until(lambda: ex.submit(shm_tasks.held).result(timeout=TIMEOUT) == worker_baseline,
                   what="the worker to let the argument's mapping go")
        settles_clean(baseline)


def settles_clean(baseline):
    wait_until(lambda: shared_held() == baseline, what="descriptors and mappings back to %r "
               "(now %r)" % (baseline, shared_held()))


@pytest.mark.parametrize("method", METHODS)
def test_worker_dying_with_big_frames_in_flight_leaves_nothing(cf, method):
    np = needs_numpy()
    big = np.ones(2_000_000)
    baseline = shared_held()
    ex = cf.ProcessPoolExecutor(1, mp_context=tasks.context(method))
    ex.submit(shm_tasks.identity, 0).result(timeout=TIMEOUT)
    fs = [ex.submit(shm_tasks.exit_holding, big)] + \
         [ex.submit(shm_tasks.identity, big) for _ in range(5)]
    for f in fs:
        assert isinstance(f.exception(timeout=TIMEOUT), cfutures.process.BrokenProcessPool)
    ex.shutdown(wait=True)
    settles_clean(baseline)


@pytest.mark.parametrize("method", METHODS)
def test_isolated_crash_mid_transfer_leaves_nothing_and_goes_on(cf, method):
    np = needs_numpy()
    big = np.ones(2_000_000)
    baseline = shared_held()
    with cf.ProcessPoolExecutor(1, mp_context=tasks.context(method),
                                isolate_crashes=True) as ex:
        died = ex.submit(shm_tasks.exit_holding, big)
        assert isinstance(died.exception(timeout=TIMEOUT), cfutures.process.WorkerDied)
        assert (ex.submit(shm_tasks.identity, big).result(timeout=TIMEOUT) == big).all()
    settles_clean(baseline)


def running_holding(ex, arg, tmp_path):
    """The future of a task that holds `arg` and runs until it is stopped,
    once it runs."""
    path = str(tmp_path / "running")
    f = ex.submit(shm_tasks.sleep_holding, arg, path)
    wait_until(lambda: os.path.exists(path), what="the task to start")
    return f


def test_cancelled_running_task_leaves_nothing(cf, tmp_path):
    big = needs_numpy().ones(2_000_000)
    baseline = shared_held()
    with cf.ProcessPoolExecutor(1, cancel_running=True) as ex:
        f = running_holding(ex, big, tmp_path)
        assert f.cancel() and f.cancelled()
        assert (ex.submit(shm_tasks.identity, big).result(timeout=TIMEOUT) == big).all()
    settles_clean(baseline)


def test_queued_big_tasks_cancelled_leave_nothing(cf, tmp_path):
    big = needs_numpy().ones(2_000_000)
    baseline = shared_held()
    ex = cf.ProcessPoolExecutor(1, cancel_running=True)
    blocker = running_holding(ex, 0, tmp_path)
    queued = [ex.submit(shm_tasks.identity, big) for _ in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    assert blocker.cancel()
    ex.shutdown(wait=True)
    settles_clean(baseline)
