"""The event stream: what every executor tells its subscribers about its runs.

Data flow::

    executor thread (scheduler, pool thread, Redis listener, engine waiter)
        |  emit(event)              one lock per executor: events of a run
        v                           reach every subscriber in emission order
    EventBus --> RunRecorder        always first (metrics/recorder.py): the run's
        |                           report and progress, for metrics.track
        +--> batched subscribers    TaskBatch as it comes (the dashboard), on
        |                           the emitting thread: quick, never block
        +--> queue --> bus thread --> plain subscribers: one event per task
                       (fastdag-events)   (TaskBatch expanded there), after
                                          the fact, off the run's path

Events are small named tuples with ``run_id`` and ``time`` (``time.time()``
seconds) first. Per run the order is: ``RunSubmitted``, then any of
``TasksReady``, ``TaskBatch`` / ``TaskStarted`` + ``TaskFinished``,
``TaskRetried``, ``DataMoved``, ``TaskFailed``, and last ``RunFinished``.
``WorkerStarted`` and ``WorkerDied`` belong to no run (``run_id`` "").
Every subscriber gets the events in that order.

Workers of ``LocalExecutor``, ``RedisExecutor`` and the engine executors
report what they did in metrics records (``records.RAW_FIELDS``, flat);
in-process and inline runs too, when nobody but the recorder listens task by
task. Those arrive as one ``TaskBatch`` event: a subscriber made with
``batched=True`` (and the run recorder) gets it as it is, and reads its
tasks as columns (``TaskBatch.table()``), without a Python object per task;
any other subscriber gets it expanded into ``TaskStarted``, ``TaskRetried``
and ``TaskFinished`` per task.

When: the recorder and batched subscribers are called by ``emit``, so they
have seen the whole run when its future resolves. Plain subscribers are
called by the bus's own thread, which the emitting thread only hands the
event to, so a slow subscriber never holds up a scheduler that serves
other runs. That thread looks at its queue every ``COURIER_POLL_S``
(50 ms); whoever waits for the run (``compute()``, ``future.result()``
or ``exception()``) hands out what is left itself, so the plain
subscribers have had all of the run, ``RunFinished`` included, when the
wait returns. Leaving
the ``with ex.subscribe(...)`` block (``unsubscribe()``), ``bus.flush()``
and the executor's ``shutdown()`` wait likewise. Plain delivery still
costs a Python call per event (about 16,000 on a 4,096-leaf tree: 30 to
50% of a 7 ms inline run, less on longer runs, where the bus's thread
overlaps the workers); a subscriber that wants every task cheaply takes
``batched=True`` and reads ``TaskBatch.table()``.

Cost: an executor asks ``bus.active`` (a bool) before building an event, and
in-process executors announce each task only when ``bus.watched`` (someone
besides the recorder listens); otherwise they send records in batches.
"""

from __future__ import annotations

import atexit
import collections
import functools
import itertools
import threading
import time
import weakref
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from .core.errors import CancelledError
from .core.records import (ATTEMPTS, END, FETCH_S, INDEX, INPUT_BYTES, OUTPUT_BYTES, RAW_WIDTH,
                           READY, START, STORE_S)
from .metrics.runs import TaskNames


# Tasks of a TaskBatch turned into events at a time (two events each).
EXPAND_BLOCK = 256


class RunSubmitted(NamedTuple):
    """A run started: its tasks' names, functions and dependency indices."""
    run_id: str
    time: float
    executor: str
    name: str
    names: Sequence[str]
    functions: list[str]
    deps: list[tuple[int, ...]]
    settings: dict[str, Any] | None = None  # the executor's, as the run's report records them


class TasksReady(NamedTuple):
    """Tasks whose inputs are done, handed to ``worker`` ("" = any worker)."""
    run_id: str
    time: float
    tasks: Sequence[int]
    worker: str


class TaskStarted(NamedTuple):
    run_id: str
    time: float
    task: int
    worker: str


class TaskFinished(NamedTuple):
    """A task ran on ``worker`` from ``start`` to ``end`` (``time`` == ``end``)."""
    run_id: str
    time: float
    task: int
    worker: str
    start: float
    end: float
    fetch_s: float
    store_s: float
    input_bytes: int
    output_bytes: int
    attempts: int
    ready: float


class TaskFailed(NamedTuple):
    """A task failed for good: the run fails with this error."""
    run_id: str
    time: float
    task: int
    worker: str
    error: str
    traceback: str


class TaskRetried(NamedTuple):
    """A task is run again: it raised and has retries left, or its worker died."""
    run_id: str
    time: float
    task: int
    worker: str
    attempt: int
    reason: str


class DataMoved(NamedTuple):
    """A result left its worker: ``via`` "shm" (shared memory), "redis" or "spill"."""
    run_id: str
    time: float
    task: int
    worker: str
    nbytes: int
    via: str


class WorkerStarted(NamedTuple):
    run_id: str
    time: float
    worker: str


class WorkerDied(NamedTuple):
    """A worker ended; ``exit_code`` -1: unknown (a Redis worker whose heartbeat stopped)."""
    run_id: str
    time: float
    worker: str
    exit_code: int


class RunFinished(NamedTuple):
    """The run ended: ``state`` is "done", "failed" or "cancelled"."""
    run_id: str
    time: float
    state: str
    makespan: float
    error: str


class TaskBatch(NamedTuple):
    """Metrics records of tasks a worker ran: ``records`` is flat ``RAW_FIELDS``."""
    run_id: str
    time: float
    worker: str
    records: Sequence[float]

    def expand(self) -> Iterator[Any]:
        """The same tasks as TaskStarted / TaskRetried / TaskFinished events.

        Without retries (the common case) the events are made by C loops
        (numpy columns, ``zip`` and ``map``), no Python statement per task,
        ``EXPAND_BLOCK`` tasks at a time as the iterator is consumed (the
        bus's thread hands them out in pieces, see ``EventBus._hand_out``).
        """
        if not len(self.records):
            return iter(())
        table = self.table()
        if (table[:, ATTEMPTS] > 1).any():
            return self._expand_each()
        blocks = (table[k:k + EXPAND_BLOCK] for k in range(0, len(table), EXPAND_BLOCK))
        return itertools.chain.from_iterable(map(self._expand_block, blocks))

    def _expand_block(self, table: Any) -> Iterator[Any]:
        """TaskStarted, TaskFinished of each row of ``table`` (tasks that ran once)."""
        task, in_b, out_b, attempts = \
            table[:, [INDEX, INPUT_BYTES, OUTPUT_BYTES, ATTEMPTS]].astype("int64").T.tolist()
        start, end, fetch_s, store_s, ready = \
            table[:, [START, END, FETCH_S, STORE_S, READY]].T.tolist()
        run, worker = itertools.repeat(self.run_id), itertools.repeat(self.worker)
        # tuple.__new__(TaskStarted, fields) called by map itself: no Python frame
        # (NamedTuple's own __new__) and no partial per event
        started = map(tuple.__new__, itertools.repeat(TaskStarted), zip(run, start, task, worker))
        finished = map(tuple.__new__, itertools.repeat(TaskFinished),
                       zip(run, end, task, worker, start, end, fetch_s, store_s, in_b, out_b,
                           attempts, ready))
        return itertools.chain.from_iterable(zip(started, finished))

    def table(self) -> Any:
        """The records as a read-only numpy array of one row per task, ``RAW_FIELDS`` columns.

        The cheap way to read every task of a batch: ``t[:, END] - t[:, START]``
        (positions from ``core.records``) is one C loop, where ``expand()``
        makes two Python objects per task. A view, not a copy, when the
        records are an ``array('d')`` (what in-process and inline runs send).
        """
        import numpy as np
        raw = self.records
        flat = np.frombuffer(raw, dtype=np.float64) if isinstance(raw, array) \
            else np.asarray(raw, dtype=np.float64)
        table = flat.reshape(-1, RAW_WIDTH)
        table.flags.writeable = False  # other subscribers read the same records
        return table

    def _expand_each(self) -> Iterator[Any]:
        raw = self.records
        for k in range(0, len(raw), RAW_WIDTH):
            record = raw[k:k + RAW_WIDTH]
            yield TaskStarted(self.run_id, record[START], int(record[INDEX]), self.worker)
            yield from _ended(self.run_id, self.worker, record)

    def task_count(self) -> int:
        """How many tasks the batch holds."""
        return len(self.records) // RAW_WIDTH


_make_moved = functools.partial(tuple.__new__, DataMoved)


def _ended(run_id: str, worker: str, record: Sequence[float]) -> Iterator[Any]:
    """TaskRetried for each extra attempt, then TaskFinished, of one RAW_FIELDS record."""
    i, start, end, fetch_s, store_s, in_b, out_b, attempts, ready = record
    i, attempts = int(i), int(attempts)
    for attempt in range(2, attempts + 1):
        yield TaskRetried(run_id, start, i, worker, attempt, "raised")
    yield TaskFinished(run_id, end, i, worker, start, end, fetch_s, store_s,
                       int(in_b), int(out_b), attempts, ready)


Callback = Callable[[Any], None]

# Seconds the bus's thread waits for more events before it ends.
COURIER_IDLE_S = 1.0
# Seconds between two looks of the bus's thread at its queue (a run's end: at once).
COURIER_POLL_S = 0.05
# Events the bus's thread hands to each plain subscriber at a time, and the pause
# after each piece in which a thread waiting for the GIL (a run's) takes it back.
COURIER_CHUNK = 256
COURIER_PAUSE_S = 0.0001
# Seconds the interpreter's exit waits for a bus's thread to deliver what it holds.
COURIER_EXIT_S = 5.0


class Subscription:
    """What ``subscribe`` returns: ``unsubscribe()`` (or leave a ``with`` block)."""

    __slots__ = ("_bus", "_entry")

    def __init__(self, bus: EventBus, entry: tuple[Callback, bool]):
        self._bus, self._entry = bus, entry

    def unsubscribe(self) -> None:
        """No events from now on; returns once the events emitted before have been delivered."""
        self._bus._remove(self._entry)
        self._bus.flush()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.unsubscribe()


class EventBus:
    """Subscribers of one executor, and the lock that keeps their events in order.

    ``recorder``: the executor's own batched subscriber (``recorder.RunRecorder``,
    which builds run reports and progress); it comes first and is always there,
    so ``active`` is true whenever an executor has one. ``watched`` says whether
    anyone else listens: in-process executors then announce each task as it
    starts and ends instead of in batches.

    The recorder and batched subscribers are called by ``emit`` itself, so
    they have seen the whole run when its future resolves. Plain subscribers
    are called by the bus's own thread (``fastdag-events``, started when
    there is something to deliver, gone after a second with nothing): the
    emitting thread only queues the event, and ``TaskBatch`` events are
    expanded per task there, after the fact, so a run never waits for them.
    They get every event emitted while they were subscribed, in emission
    order, usually a moment after the run's future resolved; ``flush()``,
    ``Subscription.unsubscribe()`` and the executor's ``shutdown()`` wait
    until they have.
    """

    def __init__(self, recorder: Callback | None = None) -> None:
        self._lock = threading.RLock()
        self._subscribers: tuple[tuple[Callback, bool], ...] = ()
        self._plain: tuple[tuple[Callback, bool], ...] = ()   # the non-batched ones
        self._queue: collections.deque = collections.deque()  # (plain subscribers, event)
        self._courier: threading.Thread | None = None  # the thread that empties _queue
        self._handing = threading.Lock()  # held by whoever hands out queued events: one at a time
        self._hander: threading.Thread | None = None  # the thread holding it
        self._waiting = 0  # flush() calls waiting: the courier stops pausing between chunks
        self._dropped: list[tuple[Callback, bool]] = []  # entries removed for raising
        self.recorder = recorder
        self.active = recorder is not None  # read by executors before they build an event
        self.watched = False

    def subscribe(self, callback: Callback, batched: bool = False) -> Subscription:
        """Call ``callback(event)`` for every event from now on.

        ``batched``: take ``TaskBatch`` events as they come, on the
        executor's own thread (read them with ``TaskBatch.table()``), instead
        of one event per task on the bus's thread.
        """
        if not callable(callback):
            raise TypeError(f"subscribe() needs a callable, not {type(callback).__name__}")
        entry = (callback, batched)
        with self._lock:
            self._subscribers += (entry,)
            self._changed()
        return Subscription(self, entry)

    def _remove(self, entry: tuple[Callback, bool]) -> None:
        with self._lock:
            if self.recorder is not None and entry[0] is self.recorder:
                self.recorder = None
            self._subscribers = tuple(s for s in self._subscribers if s is not entry)
            self._changed()

    def _changed(self) -> None:
        self._plain = tuple(s for s in self._subscribers if not s[1])
        self.watched = bool(self._subscribers)
        self.active = self.watched or self.recorder is not None

    @property
    def plain(self) -> bool:
        """Whether a plain (non-batched) subscriber listens: its events come on the bus's thread."""
        return bool(self._plain)

    def flush(self, timeout: float | None = None) -> bool:
        """Hand plain subscribers every event emitted so far; False on timeout.

        The calling thread hands out what is still queued itself (in order,
        one hander at a time), rather than wake the bus's thread and wait for
        the OS to run it: on a busy machine that switch alone costs
        milliseconds. Returns at once inside a delivery (a subscriber that
        unsubscribes or computes): its own events come after it returns.
        """
        if self._hander is threading.current_thread():
            return True
        if not self._queue and not self._handing.locked():  # none queued, none being handed
            return True
        with self._lock:
            self._waiting += 1
        try:
            if not self._handing.acquire(timeout=-1 if timeout is None else timeout):
                return False
            try:
                self._hander = threading.current_thread()
                self._hand_out_queued(pause=False)
            finally:
                self._hander = None
                self._handing.release()
        finally:
            with self._lock:
                self._waiting -= 1
        return True

    def emit(self, event: Any) -> None:
        """Deliver ``event`` to every subscriber; a failing subscriber is dropped."""
        self._emit(event, None)

    def emit_many(self, events: list[Any]) -> None:
        """Deliver several events (none a ``TaskBatch``) in order."""
        self._emit(None, events)

    def _emit(self, event: Any, each: list[Any] | None) -> None:
        """One event, or the list ``each``: to the recorder and the batched subscribers
        now, under the lock (emission order), queued for the plain ones."""
        with self._lock:
            if self.recorder is not None:
                self._deliver(self.recorder, event, each)
            for callback, batched in self._subscribers:
                if batched:
                    self._deliver(callback, event, each)
            if self._plain:
                self._post(event if each is None else each)

    def _post(self, event: Any) -> None:
        """Queue ``event`` (or a list of them) for the plain subscribers; called under the lock.

        Nothing wakes the bus's thread: events wait for its next look (within
        ``COURIER_POLL_S``) or for a ``flush()`` by whoever waits for the run.
        Waking it takes the GIL from the thread that emits, and on a busy
        machine a forced switch to a thread the OS has yet to schedule costs
        that thread milliseconds.
        """
        self._queue.append((self._plain, event))
        if self._courier is None:
            self._courier = threading.Thread(target=self._serve, name="fastdag-events",
                                             daemon=True)
            self._courier.start()
            _delivering.add(self)

    def _serve(self) -> None:
        """The bus's thread: hand out queued events until idle for COURIER_IDLE_S."""
        items = self._queue
        idle_since = time.monotonic()
        while True:
            time.sleep(COURIER_POLL_S)
            if not items:
                if time.monotonic() - idle_since < COURIER_IDLE_S:
                    continue
                with self._lock:  # emitters queue under the lock: nothing slips in
                    if not items:
                        self._courier = None
                        return
            while items:
                with self._handing:  # a flush() may take over between items
                    self._hander = threading.current_thread()
                    self._hand_out_queued(pause=True, items=1)
                    self._hander = None
            idle_since = time.monotonic()

    def _hand_out_queued(self, pause: bool, items: int = -1) -> None:
        """Hand out up to ``items`` queued events (all when -1); called holding ``_handing``."""
        queue = self._queue
        while queue and items != 0:
            items -= 1
            self._hand_out(*queue.popleft(), pause=pause)

    def _hand_out(self, plain: tuple[tuple[Callback, bool], ...], event: Any,
                  pause: bool = True) -> None:
        """One queued event (or list) to the plain subscribers it was emitted for.

        Many events (a TaskBatch expanded, a list) go out ``COURIER_CHUNK`` at
        a time, each subscriber's by a C loop, with a short sleep between
        chunks: a thread that waits for the GIL (the caller's, finishing its
        run or starting the next) takes it back there, so this thread mostly
        uses time nobody else needs, instead of holding the GIL up to the
        interpreter's switch interval (5 ms) at a time. (A ``sleep(0)`` is
        not enough: this thread, already running, takes the GIL again before
        the waiting one wakes.) No pause when a ``flush()`` waits for this.
        """
        if type(event) is list:
            events = iter(event)
        elif type(event) is TaskBatch:
            events = event.expand()
        else:
            for entry in self._live(plain):
                self._deliver(entry[0], event, None)
            return
        while True:
            chunk = list(itertools.islice(events, COURIER_CHUNK))
            if not chunk:
                return
            for entry in self._live(plain):
                self._deliver(entry[0], None, chunk)
            if len(chunk) < COURIER_CHUNK:
                return
            if pause and not self._waiting:
                time.sleep(COURIER_PAUSE_S)

    def _live(self, plain: tuple[tuple[Callback, bool], ...]) -> Any:
        """The subscribers of ``plain`` not dropped for raising since."""
        if not self._dropped:
            return plain
        return [entry for entry in plain if not any(entry is d for d in self._dropped)]

    def _deliver(self, callback: Callback, event: Any, each: Any) -> None:
        try:
            if each is None:
                callback(event)
            else:  # the callbacks called by a C loop: nothing per task in Python here
                collections.deque(map(callback, each), maxlen=0)
        except Exception as exc:  # noqa: BLE001 - never let a viewer stop a run
            if callback is self.recorder:
                self._remove((callback, True))
            for entry in [s for s in self._subscribers if s[0] is callback]:
                self._dropped.append(entry)
                self._remove(entry)
            _warn_dropped(callback, exc)


# Buses whose thread may still be delivering: at exit, they finish first (a
# daemon thread cut off while it prints can abort the interpreter).
_delivering: weakref.WeakSet[EventBus] = weakref.WeakSet()


@atexit.register
def _deliver_before_exit() -> None:
    for bus in list(_delivering):
        bus.flush(timeout=COURIER_EXIT_S)


def _warn_dropped(callback: Callback, exc: Exception) -> None:
    import warnings
    warnings.warn(f"fastdag: event subscriber {callback!r} raised {exc!r} and was removed",
                  RuntimeWarning, stacklevel=3)


# -- what executors call: one line each at their hook points ---------------

def run_submitted(bus: EventBus, run_id: str, executor: str, plan: Any, name: str,
                  settings: dict[str, Any] | None = None) -> None:
    if bus.active:
        functions = plan.functions()
        names = plan.labels if plan.labels is not None else TaskNames(functions, plan.keys)
        bus.emit(RunSubmitted(run_id, time.time(), executor, name or "", names, functions,
                              plan.deps, settings))


def run_finished(bus: EventBus, run_id: str, start: float, error: BaseException | None) -> None:
    if not bus.active:
        return
    state = "done" if error is None else \
        "cancelled" if isinstance(error, CancelledError) else "failed"
    now = time.time()
    bus.emit(RunFinished(run_id, now, state, now - start,
                         "" if error is None else _first_line(error)))


def task_failed(bus: EventBus, run_id: str, task: int, worker: str,
                error: BaseException) -> None:
    if bus.active:
        bus.emit(TaskFailed(run_id, time.time(), task, worker, _first_line(error),
                            getattr(error, "remote_traceback", None) or _traceback_of(error)))


def task_ended(bus: EventBus, run_id: str, worker: str, record: Sequence[float]) -> None:
    """A task that ran in this process (its RAW_FIELDS record): retries, then finished."""
    for event in _ended(run_id, worker, record):
        bus.emit(event)


def tasks_ready(bus: EventBus, run_id: str, tasks: Sequence[int], worker: str) -> None:
    if bus.active:
        bus.emit(TasksReady(run_id, time.time(), tuple(tasks), worker))


def task_retried(bus: EventBus, run_id: str, task: int, worker: str, attempt: int,
                 reason: str) -> None:
    if bus.active:
        bus.emit(TaskRetried(run_id, time.time(), task, worker, attempt, reason))


def worker_changed(bus: EventBus, worker: str, exit_code: int | None) -> None:
    """A worker started (``exit_code`` None) or died."""
    if bus.active:
        bus.emit(WorkerStarted("", time.time(), worker) if exit_code is None
                 else WorkerDied("", time.time(), worker, exit_code))


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _traceback_of(error: BaseException) -> str:
    text = getattr(error, "traceback", None)
    if isinstance(text, str) and text:
        return text
    import traceback
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def record_rows(bus: EventBus, run_id: str, rows: Sequence[tuple[str, Sequence[float]]]) -> None:
    """Per-task records ``(worker, RAW_FIELDS)`` as one ``TaskBatch`` per worker."""
    if not bus.active or not rows:
        return
    by_worker: dict[str, list[float]] = {}
    for worker, fields in rows:
        by_worker.setdefault(worker, []).extend(fields)
    now = time.time()
    for worker, flat in by_worker.items():
        bus.emit(TaskBatch(run_id, now, worker, flat))


class RecordFeed:
    """Turns workers' metrics records into ``TaskBatch`` events, each task once.

    A worker sends the records of a long batch twice: as they accumulate, in
    progress messages (``progress(...)``), and all together in its report
    (``report(...)``); this remembers, per worker, how many numbers of the
    current report were already sent.
    """

    def __init__(self, bus: EventBus):
        self.bus = bus
        self._sent: dict[Any, int] = {}

    def progress(self, run_id: str, worker: Any, name: str, tail: Sequence[float]) -> None:
        self._sent[worker] = self._sent.get(worker, 0) + len(tail)
        if self.bus.active and tail:
            self.bus.emit(TaskBatch(run_id, time.time(), name, tail))

    def report(self, run_id: str, worker: Any, name: str, records: Sequence[float]) -> None:
        skip = self._sent.pop(worker, 0)
        if self.bus.active and len(records) > skip:
            self.bus.emit(TaskBatch(run_id, time.time(), name, records[skip:] if skip else records))

    def forget(self, worker: Any) -> None:
        """A report of a run that is over: nothing to emit, start counting afresh."""
        self._sent.pop(worker, None)

    def stored(self, run_id: str, name: str, refs: dict[int, Any]) -> None:
        """Results a worker put in shared memory (or spilled) for others to read."""
        if self.bus.active and refs:
            now = time.time()
            self.bus.emit_many([DataMoved(run_id, now, i, name, ref.nbytes,
                                          "spill" if ref.key.startswith("/") else "shm")
                                for i, ref in refs.items()])  # spilled: a path

    def bundled(self, run_id: str, name: str, bundles: Sequence[Any]) -> None:
        """Small results a worker sent in bundles (``store/bundle.py``), one event each."""
        if self.bus.active:
            now = itertools.repeat(time.time())
            run, worker, via = (itertools.repeat(x) for x in (run_id, name, "shm"))
            for b in bundles:  # events made in C: a wide fan-in's bundle holds 100,000 results
                self.bus.emit_many(list(map(_make_moved, zip(run, now, b.tasks, worker,
                                                             b.sizes(), via))))
