"""cfutures.distributed — ClusterExecutor: the executor API on a Dask cluster.

cfutures does not run a cluster of its own: a ClusterExecutor hands its
tasks to Dask's `distributed` (an optional dependency: pip install
'cfutures[dask]') and completes native cfutures futures from Dask's answers,
so everything that takes a concurrent.futures.Future works on them.

How a task travels.  submit() makes the future and queues the call; one
thread per executor, the bridge, does everything else, so every change of a
future's state happens in one place:
    - it sends queued calls to the scheduler in batches (one `Client.map`),
      at most `max_workers` in Dask at a time when that is given;
    - a worker announces that it starts a call (a Dask event on the
      executor's topic): the future becomes RUNNING, as a process pool's
      future does when a worker takes its call;
    - a task ended: its outcome, fetched on the client's event loop (the
      fetches of tasks that end together go in one request), completes
      its future;
    - cancel() of a future that has not started removes its call, or
      cancels its Dask task.
A call runs on the worker inside `_run_call`, which never raises: an
exception comes back as the stdlib's _ExceptionWithTraceback, so it arrives
with the remote traceback as its __cause__, as from a process pool.  On a
worker where the executor's initializer failed (one that joined the
cluster later: Dask only logs that and gives it tasks all the same) the
call does not run: the initializer's error comes back, and breaks the
executor, as a process pool whose initializer fails.

Phases of an executor (one function per transition):
    RUNNING --shutdown()--------------------------> SHUTTING_DOWN
    RUNNING --its initializer failed, or Dask-----> BROKEN
              dropped its tasks (scheduler lost)
    SHUTTING_DOWN, BROKEN --no task left----------> (the bridge tears down
                        what the executor opened, and ends)
"""
import collections
import enum
import itertools
import os
import queue
import threading
import time
import uuid
import weakref

from concurrent.futures.process import (BrokenProcessPool, _ExceptionWithTraceback,
                                        _RemoteTraceback)

from ._base import LOGGER, Executor, Future

INSTALL_HINT = ("cfutures.distributed.ClusterExecutor needs Dask's distributed package, "
                "which is not installed: pip install 'cfutures[dask]'")

# The stdlib's words for a broken process pool: on the futures it fails, and
# from submit() afterwards (concurrent/futures/process.py).
BROKEN_FUTURE = ("A process in the process pool was terminated abruptly while the future "
                 "was running or pending.")
BROKEN_POOL = "A child process terminated abruptly, the process pool is not usable anymore"

# Ctrl-C in a `with` block: calls that run get this long to finish (as the
# process pool's grace) before their futures are given up.
_INTERRUPT_GRACE = 0.5


def _check_arguments(max_workers, initializer):
    """The stdlib's checks of a pool's arguments, in its order, with its
    words (before anything is started)."""
    if max_workers is not None and max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")
    if initializer is not None and not callable(initializer):
        raise TypeError("initializer must be a callable")


def _import_dask():
    """cfutures._dask, or the ImportError that says what to install."""
    try:
        from . import _dask
    except ImportError as error:
        if error.name not in ("dask", "distributed"):
            raise
        raise ImportError(INSTALL_HINT, name="distributed") from error
    return _dask


# ---- on the worker ------------------------------------------------------------

class _Call(object):
    """One submit()'s call as it travels to a worker: (fn, args, kwargs)
    pickled here, so that the scheduler, which unpickles what it is sent,
    needs only cfutures, not the program's modules, and Dask does not look
    into the arguments (it would search tuples, lists and dicts for its own
    futures); with the key of its Dask task and the topic on which the
    worker announces that it starts it."""

    __slots__ = ("payload", "key", "topic", "initializer")

    def __init__(self, payload, key, topic, initializer):
        self.payload = payload
        self.key = key
        self.topic = topic
        self.initializer = initializer      # its worker plugin's name, or None

    def __reduce__(self):
        return _Call, (self.payload, self.key, self.topic, self.initializer)


# The outcome of a call on a worker where the executor's initializer failed.
_INITIALIZER_FAILED = "initializer failed"


def _run_call(call):
    """Run `call` on a Dask worker: its outcome pickled, (True, the result)
    or (False, the exception it raised, with its traceback for the other
    side), or (_INITIALIZER_FAILED, the initializer's exception) without
    running it.  Pickled here, so that a result that cannot be pickled
    fails its future as in a process pool, with the worker's traceback."""
    import pickle
    from distributed import get_worker
    from cfutures._dask import dumps, initializer_error
    worker = get_worker()
    worker.log_event(call.topic, call.key)
    error = call.initializer and initializer_error(worker, call.initializer)
    if error is not None:
        return dumps((_INITIALIZER_FAILED, _ExceptionWithTraceback(error, error.__traceback__)))
    try:
        fn, args, kwargs = pickle.loads(call.payload)
        return dumps((True, fn(*args, **kwargs)))
    except BaseException as exc:    # noqa: B902 - as a process pool's worker
        error = exc
    try:
        return dumps((False, _ExceptionWithTraceback(error, error.__traceback__)))
    except BaseException as exc:    # noqa: B902 - the exception cannot be pickled
        return dumps((False, _ExceptionWithTraceback(exc, exc.__traceback__)))


# ---- in this process ------------------------------------------------------------

class _Phase(enum.Enum):
    RUNNING = "running"
    SHUTTING_DOWN = "shutting down"
    BROKEN = "broken"


class _Task(object):
    """A submitted call and what became of it so far: waiting here
    (dask_future None), sent to Dask (its call, the pickled arguments,
    no longer kept here), started on a worker."""

    __slots__ = ("future", "call", "key", "dask_future", "started")

    def __init__(self, future, call):
        self.future = future
        self.call = call
        self.key = call.key
        self.dask_future = None
        self.started = False


_STARTED, _FINISHED, _CANCELLED, _WAKE, _ABANDON, _SHUT_DOWN = range(6)


class _Bridge(object):
    """An executor's link to the cluster: the Dask client, the tasks, and
    the thread that moves them (see the module's docstring).  It never
    refers to its executor, which may be dropped without shutdown()."""

    def __init__(self, dask, client, owned, in_flight_limit, initializer, initargs):
        self.dask = dask
        self.client = client
        self.owned = owned                  # what to close at the end: [client, cluster]
        self.limit = in_flight_limit        # None: every call goes to Dask at once
        self.plugin = None
        if initializer is not None:
            self.plugin = dask.RunInitializer("cfutures-initializer-" + uuid.uuid4().hex,
                                              initializer, initargs)
        self.topic = "cfutures-" + uuid.uuid4().hex
        self.lock = threading.Lock()
        self.phase = _Phase.RUNNING
        self.broken_by = None               # the initializer's exception
        self.tasks = {}                     # future -> _Task, every task not ended
        self.waiting = collections.deque()  # _Tasks not sent yet (some maybe ended)
        self.sent = {}                      # Dask key -> _Task in Dask
        self.events = queue.SimpleQueue()
        self.abandon_at = None              # after Ctrl-C: when running calls are given up
        self.keys = itertools.count()
        # Not a daemon, even when made in one: at exit its calls finish.
        self.thread = threading.Thread(target=self.run, name="ClusterExecutor-bridge",
                                       daemon=False)
        with _LIVE_LOCK:            # (made after the exit hook ran: ends when idle)
            _LIVE.add(self)
        self.thread.start()

    # -- what other threads call --------------------------------------------

    def submit(self, fn, args, kwargs):
        future = Future()
        try:
            payload = self.dask.dumps((fn, args, kwargs))
        except Exception as exc:        # noqa: B902 - as the stdlib: on the future
            payload, error = None, exc
            error.__cause__ = _traceback_of(exc)
        key = "%s-%s-%d" % (_callable_name(fn), self.topic, next(self.keys))
        task = _Task(future, _Call(payload, key, self.topic,
                                   self.plugin and self.plugin.name))
        with self.lock:
            if self.phase is _Phase.BROKEN:
                raise BrokenProcessPool(BROKEN_POOL) from self.broken_by
            if self.phase is not _Phase.RUNNING:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _exiting:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            if payload is None:
                future.set_exception(error)
                return future
            self.tasks[future] = task
            self.waiting.append(task)
        future.add_done_callback(self.future_done)
        self.events.put((_WAKE, None))
        return future

    def future_done(self, future):
        """A done-callback of every future: a cancel() must reach Dask."""
        if future.cancelled():
            self.events.put((_CANCELLED, future))

    def shut_down_later(self):
        """shut_down(False) by the bridge itself: for the executor's
        finalizer, which may run in any thread, the bridge's too, while it
        holds its lock (a collection): it takes no lock.  (No submit can
        come: the executor is gone.)"""
        self.events.put((_SHUT_DOWN, None))

    def shut_down(self, cancel_futures):
        """RUNNING -> SHUTTING_DOWN (a broken executor stays BROKEN)."""
        with self.lock:
            if self.phase is _Phase.RUNNING:
                self.phase = _Phase.SHUTTING_DOWN
            unfinished = [t.future for t in self.tasks.values()] if cancel_futures else []
        for future in unfinished:
            future.cancel()                 # a started one refuses, as in a pool
        self.events.put((_WAKE, None))

    def interrupt(self, grace):
        """Ctrl-C: shut down cancelling what has not started; what runs
        gets `grace` seconds, then its futures are given up."""
        self.abandon_at = time.monotonic() + grace
        self.shut_down(cancel_futures=True)

    # -- Dask's threads -----------------------------------------------------------

    def dask_started(self, event):
        """A worker starts a call (the client's event loop runs this)."""
        self.events.put((_STARTED, event[1]))

    def dask_ended(self, key, status, value):
        """A task ended (the client's event loop runs this)."""
        self.events.put((_FINISHED, (key, status, value)))

    # -- the bridge thread --------------------------------------------------------

    def run(self):
        try:
            self.set_up()
            while not self.done():
                self.handle(self.next_events())
                self.send_waiting()
        except BaseException as exc:    # noqa: B902 - no future may be left pending
            LOGGER.critical("ClusterExecutor's bridge to Dask failed", exc_info=True)
            self.break_by(exc)
        finally:
            self.tear_down()

    def set_up(self):
        self.client.subscribe_topic(self.topic, self.dask_started)
        if self.plugin is None:
            return
        try:
            self.client.register_plugin(self.plugin)
        except Exception as exc:        # noqa: B902 - the initializer's own error
            # (the plugin stays registered until tear_down() takes it out:
            # Dask keeps it even where its setup failed)
            LOGGER.critical("Exception in initializer:", exc_info=True)
            self.break_by(exc)

    def break_by(self, exc):
        """RUNNING (or SHUTTING_DOWN) -> BROKEN: the initializer failed, Dask
        dropped a task (its scheduler is gone), or the bridge itself failed;
        every task fails, submit() raises from now on."""
        with self.lock:
            self.phase = _Phase.BROKEN
            self.broken_by = exc
        self.fail_all(exc)

    def fail_all(self, cause):
        with self.lock:
            tasks = list(self.tasks.values())
            self.tasks.clear()
            self.waiting.clear()
            self.sent.clear()
        for task in tasks:
            self.conclude(task, False, _broken_future(cause))

    def done(self):
        """Shut down, broken or at interpreter exit, with no task left."""
        with self.lock:
            return (self.phase is not _Phase.RUNNING or _exiting) and not self.tasks

    def next_events(self):
        """What happened since the last round, and (_ABANDON, None) once the
        grace after Ctrl-C is over."""
        events = []
        timeout = None if self.abandon_at is None else max(0.0, self.abandon_at - time.monotonic())
        try:
            events.append(self.events.get(timeout=timeout))
            while True:
                events.append(self.events.get_nowait())
        except queue.Empty:
            pass
        if self.abandon_at is not None and time.monotonic() >= self.abandon_at:
            self.abandon_at = None
            events.append((_ABANDON, None))
        return events

    def handle(self, events):
        finished, cancelled = [], []
        for kind, what in events:
            if kind == _STARTED:
                self.start(what)
            elif kind == _FINISHED:
                finished.append(what)
            elif kind == _CANCELLED:
                cancelled.append(what)
            elif kind == _ABANDON:
                self.abandon_running()
            elif kind == _SHUT_DOWN:
                self.shut_down(cancel_futures=False)
        if cancelled:
            self.cancel(cancelled)
        for key, status, value in finished:
            self.finish(key, status, value)

    def start(self, key):
        """A worker started the call of `key`: its future is RUNNING (a
        call that Dask runs again, its worker lost, is already)."""
        task = self.sent.get(key)
        if task is None or task.started:
            return
        task.started = True
        if not task.future.set_running_or_notify_cancel():
            # cancelled before the start was known: stop waiting for it
            self.end(task)
            self.client.cancel([task.dask_future])

    def cancel(self, futures):
        """Futures cancelled before they started: a waiting call is just
        dropped, a task in Dask is cancelled there."""
        in_dask = []
        for future in futures:
            task = self.tasks.get(future)
            if task is None or task.started:
                continue
            future.set_running_or_notify_cancel()   # CANCELLED_AND_NOTIFIED
            if task.dask_future is not None:
                in_dask.append(task.dask_future)
            self.end(task)
        if in_dask:
            self.client.cancel(in_dask)

    def finish(self, key, status, value):
        """The task of `key` ended: its future gets the call's outcome, or
        what Dask says went wrong (see _dask_error); an initializer that
        failed on its worker, or a task Dask dropped, breaks the executor."""
        task = self.sent.get(key)
        if task is None:
            return                      # cancelled, or given up after Ctrl-C
        self.end(task)
        broken_by = None
        if status == "finished":
            ok, value = _loads(value)
            if ok == _INITIALIZER_FAILED:
                LOGGER.critical("Exception in initializer:", exc_info=value)
                broken_by = value
        elif status == "cancelled":
            # Dropped by Dask, not by a cancel() from here (those left
            # `sent` before): the scheduler is gone, or the cluster was
            # restarted.  As a pool that lost a worker: broken, at once.
            broken_by = value
        else:
            ok, value = False, _dask_error(value)
        if broken_by is None:
            self.conclude(task, ok, value)
        else:
            self.conclude(task, False, _broken_future(broken_by))
            self.break_by(broken_by)

    def conclude(self, task, ok, value):
        """Complete the future of an ended task (RUNNING first, if its start
        was not heard of); one cancelled meanwhile is only notified."""
        if task.started or task.future.set_running_or_notify_cancel():
            _settle(task.future, ok, value)

    def abandon_running(self):
        """The grace after Ctrl-C is over: the calls still running are
        cancelled in Dask (which lets a running function finish on its
        worker) and their futures fail, as a pool's whose workers were
        stopped."""
        running = [t for t in self.sent.values() if t.started]
        for task in running:
            self.end(task)
            self.conclude(task, False, BrokenProcessPool(BROKEN_FUTURE))
        if running:
            self.client.cancel([t.dask_future for t in running])

    def end(self, task):
        with self.lock:
            self.tasks.pop(task.future, None)
        if task.dask_future is not None:
            self.sent.pop(task.key, None)

    def send_waiting(self):
        """Send the waiting calls Dask may take now, in one batch."""
        batch = []
        with self.lock:
            room = len(self.waiting) if self.limit is None else self.limit - len(self.sent)
            while self.waiting and len(batch) < room:
                task = self.waiting.popleft()
                if task.future in self.tasks:     # not cancelled meanwhile
                    batch.append(task)
        if not batch:
            return
        dask_futures = self.client.map(_run_call, [t.call for t in batch],
                                       key=[t.key for t in batch], pure=False)
        for task, dask_future in zip(batch, dask_futures):
            task.dask_future = dask_future
            task.call = None
            self.sent[task.key] = task
            self.dask.watch(self.client, dask_future, self.dask_ended)

    def tear_down(self):
        """Take out what this executor left on the cluster (not when the
        client has lost its scheduler: each call would wait out the
        client's reconnect timeout), then close what it opened; never
        raises."""
        undos = [closable.close for closable in self.owned]
        if self.client.status == "running":
            undos[:0] = [lambda: self.client.unsubscribe_topic(self.topic),
                         lambda: self.client.run_on_scheduler(_forget_topic, topic=self.topic),
                         lambda: self.plugin and self.client.unregister_worker_plugin(
                             self.plugin.name)]
        for undo in undos:
            try:
                undo()
            except Exception:           # noqa: B902 - the cluster may be gone
                LOGGER.debug("ClusterExecutor: closing", exc_info=True)
        with _LIVE_LOCK:
            _LIVE.discard(self)


def _traceback_of(exc):
    """The __cause__ the stdlib gives an error of pickling a call: its
    traceback, as a remote one's (ProcessPoolExecutor's feeder error)."""
    import traceback
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return _RemoteTraceback('\n"""\n%s"""' % text)


def _loads(payload):
    """(ok, value) from what _run_call returned; (False, the error) for an
    outcome that cannot be unpickled here."""
    import pickle
    try:
        return pickle.loads(payload)
    except Exception as exc:            # noqa: B902 - as the stdlib: on the future
        return False, exc


def _broken_future(cause):
    """The error of a future its broken executor fails, caused by `cause`."""
    error = BrokenProcessPool(BROKEN_FUTURE)
    error.__cause__ = cause
    return error


def _dask_error(exc):
    """What the future of a task that failed on Dask's side gets: the
    stdlib's broken-pool error, caused by Dask's, for a task whose workers
    died (KilledWorker); Dask's own error for anything else (a call or
    result it could not unpickle)."""
    if type(exc).__name__ == "KilledWorker":
        return _broken_future(exc)
    return exc


def _settle(future, ok, value):
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except Exception:                   # noqa: B902 - cancelled or set meanwhile
        pass


def _callable_name(fn):
    fn = getattr(fn, "func", fn)
    return getattr(fn, "__name__", None) or type(fn).__name__


# Bridges whose executors have not ended: at interpreter exit each is shut
# down (its calls still finish, as a pool's do), before Dask's own exit
# handlers close its clients.
_LIVE = set()
_LIVE_LOCK = threading.Lock()
_exiting = False


def _at_exit():
    """The interpreter is exiting: submit() refuses, as the stdlib's, and
    each bridge ends once its calls have (threading joins it).  Takes no
    bridge's lock (see shut_down_later)."""
    global _exiting
    with _LIVE_LOCK:
        _exiting = True
        bridges = list(_LIVE)
    for bridge in bridges:
        bridge.events.put((_WAKE, None))


def _forget_topic(dask_scheduler, topic):
    """On the scheduler: drop the log of an ended executor's start events
    (Dask keeps a topic's last 1,000 events for good).  Its event broker is
    Dask's internal; where it is not, the log stays."""
    topics = getattr(getattr(dask_scheduler, "_broker", None), "_topics", None)
    if topics is not None:
        topics.pop(topic, None)


threading._register_atexit(_at_exit)


class ClusterExecutor(Executor):
    """An executor whose calls run on a Dask cluster.

    Its futures are cfutures Futures; map() has timeout, chunksize (calls
    sent as one task), buffersize and ordered=False; shutdown() and the
    context manager work as a process pool's.  Calls, their arguments and
    results travel as Dask sends them (pickle, cloudpickle for what pickle
    cannot send by reference: lambdas, functions of __main__), and an
    exception raised on a worker arrives with the worker's traceback as its
    __cause__.

    Args:
        address: The scheduler's address ('tcp://host:8786'), or None to
            start a cluster on this machine for this executor: max_workers
            worker processes (default: the number of CPUs) of one thread
            each, on the loopback interface, closed with the executor.
        client: A distributed.Client to use instead (not with address);
            the executor leaves it open.
        max_workers: The most calls of this executor that run at a time.
            On its own local cluster, the number of workers; on a cluster
            given by address or client, the most calls it has in Dask at a
            time, the rest waiting here (None: no limit, Dask queues them).
            Each then waits for a round trip to the cluster before the next
            is sent: a limit costs throughput on short calls.
        initializer, initargs: initializer(*initargs) runs once in each
            Dask worker, before the worker's first task (a worker plugin;
            also in workers that join later).  If it raises, the executor
            is broken, as a process pool whose initializer fails; in a
            worker that joins later, once a call of the executor's lands
            there (the call does not run).

    What Dask cannot do as a process pool does:
        - A future becomes RUNNING when its worker announces the start,
          a moment after the call began; until then cancel() succeeds.
        - A call that a worker runs cannot be stopped: Ctrl-C in a `with`
          block gives running calls 0.5 s, then fails their futures with
          BrokenProcessPool and cancels their Dask tasks, which still run
          to their end on the worker.
        - A worker that dies does not break the executor: Dask runs its
          calls again elsewhere; a call whose workers die three times (Dask's
          allowed-failures) fails with BrokenProcessPool, its __cause__
          Dask's KilledWorker.
        - The initializer runs in the workers of the cluster, which other
          clients may share; it is not undone at shutdown.  Its failure
          breaks the executor when it is registered (in the workers then
          present); in a worker that joins later, Dask logs it, and the
          worker takes calls all the same.
    """

    def __init__(self, address=None, *, client=None, max_workers=None, initializer=None,
                 initargs=()):
        _check_arguments(max_workers, initializer)
        if address is not None and client is not None:
            raise TypeError("ClusterExecutor() takes an address or a client, not both")
        dask = _import_dask()
        owned = []
        try:
            if client is None:
                target = address
                if address is None:
                    target = dask.start_local_cluster(max_workers or os.cpu_count() or 1)
                    owned.append(target)
                client = dask.connect(target)
                owned.insert(0, client)
        except BaseException:       # noqa: B902 - close what was opened, then raise
            for closable in owned:
                closable.close()
            raise
        self._max_workers = max_workers
        # On its own cluster, its size is the limit: Dask queues the calls.
        limit = None if address is None and owned else max_workers
        self._bridge = _Bridge(dask, client, owned, limit, initializer, initargs)
        # Dropped without shutdown(): its calls still finish, then it closes.
        weakref.finalize(self, self._bridge.shut_down_later)

    @property
    def client(self):
        """The distributed.Client this executor sends its calls with."""
        return self._bridge.client

    def submit(self, fn, /, *args, **kwargs):
        """Submits a callable to be executed with the given arguments on the
        cluster; returns a Future for its outcome."""
        return self._bridge.submit(fn, args, kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None, ordered=True):
        """Returns an iterator equivalent to map(fn, iter), the calls run on
        the cluster `chunksize` at a time (each chunk one Dask task).

        As Executor.map; with ordered=False the chunks come in the order
        they finish, and buffersize counts chunks."""
        from .process import _map_in_chunks
        return _map_in_chunks(self, fn, iterables, timeout, chunksize, buffersize, ordered)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Clean-up the resources associated with the Executor.

        With wait, returns once every call has ended and what the executor
        opened (its client, its local cluster) is closed.  cancel_futures
        cancels the calls that have not started (waiting here or queued
        in Dask)."""
        self._bridge.shut_down(cancel_futures)
        if wait:
            self._join()

    def _exit_interrupted(self):
        self._bridge.interrupt(_INTERRUPT_GRACE)
        self._join()

    def _join(self):
        thread = self._bridge.thread
        if thread is threading.current_thread():
            raise RuntimeError("cannot join current thread")
        thread.join()


# ---- python -m cfutures --process-pool=dask://... ------------------------------

def process_pool_class(url):
    """The ProcessPoolExecutor a program run with `python -m cfutures
    --process-pool=URL` gets: a ClusterExecutor that takes the process
    pool's arguments.  URL is dask://HOST:PORT (a scheduler; tcp:// unless
    it names another protocol) or dask://local (a cluster on this machine,
    one worker process per CPU).  All the program's pools share one client
    (and that local cluster), made when the first pool is, closed at exit."""
    place = url[len("dask://"):] if url.startswith("dask://") else ""
    if not place:
        raise ValueError("expected dask://HOST:PORT or dask://local, not %r" % (url,))
    address = None if place == "local" else place if "://" in place else "tcp://" + place
    shared = _SharedClient(address)

    class ProcessPoolExecutor(ClusterExecutor):
        """concurrent.futures.ProcessPoolExecutor, its calls run on the Dask
        cluster at %s (python -m cfutures --process-pool).

        mp_context does not apply (Dask starts its workers); the initializer
        runs in each Dask worker; max_tasks_per_child cannot be honoured
        (Dask's workers are not replaced) and warns.""" % url

        def __init__(self, max_workers=None, mp_context=None, initializer=None,
                     initargs=(), *, max_tasks_per_child=None):
            _check_arguments(max_workers, initializer)     # before the client is made
            if max_tasks_per_child is not None:
                if not isinstance(max_tasks_per_child, int):
                    raise TypeError("max_tasks_per_child must be an integer")
                elif max_tasks_per_child <= 0:
                    raise ValueError("max_tasks_per_child must be >= 1")
                import warnings
                warnings.warn("max_tasks_per_child is not honoured on a Dask cluster: "
                              "its workers are not replaced", RuntimeWarning, stacklevel=2)
            super().__init__(client=shared.get(), max_workers=max_workers,
                             initializer=initializer, initargs=initargs)
            if max_workers is None:         # as the stdlib's attribute says
                self._max_workers = os.cpu_count() or 1

        def terminate_workers(self):
            """Shuts down, cancelling the calls not started (Dask's workers
            are not this pool's to stop)."""
            self.shutdown(wait=False, cancel_futures=True)

        kill_workers = terminate_workers

    ProcessPoolExecutor.__module__ = "concurrent.futures.process"
    ProcessPoolExecutor.__qualname__ = "ProcessPoolExecutor"
    return ProcessPoolExecutor


class _SharedClient(object):
    """One client for all the pools of a program run by the launcher: to
    the scheduler at `address`, or to a local cluster started for it."""

    def __init__(self, address):
        self.address = address
        self.lock = threading.Lock()
        self.client = None
        self.owned = []

    def get(self):
        with self.lock:
            if self.client is None:
                dask = _import_dask()
                target = self.address
                if target is None:
                    target = dask.start_local_cluster(os.cpu_count() or 1)
                    self.owned.append(target)
                self.client = dask.connect(target)
                self.owned.insert(0, self.client)
                import atexit
                atexit.register(self.close)     # after the pools' threads end
            return self.client

    def close(self):
        for closable in self.owned:
            try:
                closable.close()
            except Exception:           # noqa: B902 - the cluster may be gone
                LOGGER.debug("closing the launcher's Dask client", exc_info=True)
