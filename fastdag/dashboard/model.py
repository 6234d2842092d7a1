"""What the dashboard knows about runs, built from events, served as JSON.

Data flow::

    executor thread                       dashboard server thread
    ---------------                       -----------------------
    EventBus --emit--> RunStore.receive   RunStore.ingest() (on each API call and
                       (deque.append:      each tick of the live channel): events
                        nothing else)      -> RunView columns -> JSON

The executor's thread only appends the event to a deque, so a subscribed
dashboard costs the scheduler a call and an append per message; the work of
turning events into columns is done on the server thread, and only when a
page asks for it (``trim`` drops the events of old runs nobody looked at).

A ``RunView`` keeps tasks as columns (one row per task run, in the order
workers reported them) because the page draws them on a canvas and 10,000
rows of numbers parse far faster as ten arrays than as 10,000 objects.
Past runs loaded from a metrics store become a ``RunView`` through the same
events (``events_of_report``), so live and stored runs look the same.
"""

from __future__ import annotations

import base64
import collections
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .. import events as ev
from ..core.records import RAW_FIELDS, RAW_WIDTH
from ..metrics.runs import RunReport

# Columns of ``RunView.columns``, one entry per task run: RAW_FIELDS (numbers
# as the workers recorded them, floats) plus the worker's index in ``workers``.
RAW_COLUMN = {"index": "task"}
COLUMNS = ("task", "worker", *(RAW_COLUMN.get(f, f) for f in RAW_FIELDS[1:]))
MAX_RUNS = 20  # finished runs beyond this many are forgotten, oldest first
MEMORY_SAMPLES = 200_000  # (time, worker, rss) samples kept, newest last
AGGREGATE_OVER = 50_000  # tasks: past this the page shows a run by level and function


class RunView:
    """One run as the page sees it: record, graph, task rows, events."""

    def __init__(self, submitted: ev.RunSubmitted, aggregate_over: int = AGGREGATE_OVER):
        self.id = submitted.run_id
        self.name = submitted.name
        self.executor = submitted.executor
        self.start = submitted.time
        self.end: float | None = None
        self.state = "running"
        self.error = ""
        self._names = submitted.names  # made into a list when a page first asks
        self.functions = submitted.functions
        self.deps = submitted.deps  # tuples of ints: the garbage collector skips them
        self.workers: list[str] = []
        self._worker_ids: dict[str, int] = {}
        self.columns: dict[str, array] = {c: array("d") for c in COLUMNS}
        self.ndone = 0  # tasks reported done (each task is reported once)
        self.events: list[dict[str, Any]] = []
        self.failures: dict[int, dict[str, str]] = {}
        self.bytes_moved = 0
        self._levels: Any = None
        self._last: dict[str, dict[str, Any]] = {}  # the latest event entry of each type
        self.aggregate = len(submitted.functions) > aggregate_over  # the page asks for a summary

    def names(self) -> list[str]:
        if not isinstance(self._names, list):
            self._names = self._names[:]
        return self._names

    def levels(self) -> Any:
        """Each task's level (numpy array), computed once."""
        if self._levels is None:
            from .aggregate import levels
            self._levels = levels(self.deps)
        return self._levels

    def aggregated(self) -> dict[str, Any]:
        """``GET /api/runs/<id>?aggregate=1``: the run by (level, function) and time bins."""
        from .aggregate import aggregate
        last = self.end if self.end is not None else max(
            [self.start, *(e["time"] for e in self.events[-1:])])
        if self.end is None and len(self.columns["end"]):
            last = max(last, max(self.columns["end"]))
        return {"run": self.summary(), "workers": list(self.workers),
                "failures": {str(k): v for k, v in self.failures.items()},
                **aggregate(self, last)}

    def worker_id(self, name: str) -> int:
        wid = self._worker_ids.get(name)
        if wid is None:
            wid = self._worker_ids[name] = len(self.workers)
            self.workers.append(name)
        return wid

    def add_rows(self, worker: str, raw: Sequence[float]) -> tuple[int, int]:
        """Task rows from flat RAW_FIELDS; returns the row range they took.

        Column by column, by slicing (C speed): a batch of 4,000 tasks costs
        a few list operations, not 4,000 Python iterations.
        """
        first = len(self.columns["task"])
        flat = raw if isinstance(raw, array) and raw.typecode == "d" else array("d", raw)
        count = len(flat) // RAW_WIDTH
        columns = self.columns
        for k, name in enumerate(RAW_FIELDS):
            columns[RAW_COLUMN.get(name, name)].extend(flat[k::RAW_WIDTH])
        columns["worker"].extend(array("d", [self.worker_id(worker)]) * count)
        self.ndone += count
        return first, first + count

    def apply(self, event: Any) -> None:
        """Fold one event into the view (the event log keeps it too)."""
        kind = type(event).__name__
        if isinstance(event, ev.TaskBatch):
            first, last = self.add_rows(event.worker, event.records)
            self._append({"type": kind, "time": event.time, "worker": event.worker,
                          "rows": [first, last]})
            return
        if isinstance(event, ev.TaskFinished):
            self._add_finished(event)
            return
        if isinstance(event, ev.TaskStarted):
            return  # the task's row, added when it ends, holds its start
        last = self._last.get(kind)
        if isinstance(event, ev.TasksReady) and last and last["worker"] == event.worker == "":
            last["tasks"].extend(event.tasks)  # in-process runs: one entry, not one per task
            return
        record = {"type": kind, **_jsonable(event._asdict())}
        record.pop("run_id", None)
        if isinstance(event, ev.RunSubmitted):
            for key in ("names", "functions", "deps"):
                record.pop(key)
        elif isinstance(event, ev.TaskFailed):
            self.failures[event.task] = {"error": event.error, "traceback": event.traceback,
                                         "worker": event.worker, "time": event.time}
        elif isinstance(event, ev.DataMoved):
            self.bytes_moved += event.nbytes
        elif isinstance(event, ev.RunFinished):
            self.end, self.state, self.error = event.time, event.state, event.error
        self._append(record)

    @property
    def version(self) -> int:
        """Grows with every event and every task row: the live channel compares it."""
        return len(self.events) + len(self.columns["task"])

    def _add_finished(self, event: ev.TaskFinished) -> None:
        """One task's row; consecutive tasks of one worker share one TaskBatch entry."""
        columns = self.columns
        row = len(columns["task"])
        for name, value in zip(COLUMNS, (event.task, self.worker_id(event.worker), event.start,
                                         event.end, event.fetch_s, event.store_s,
                                         event.input_bytes, event.output_bytes,
                                         event.attempts, event.ready)):
            columns[name].append(value)
        self.ndone += 1
        last = self._last.get("TaskBatch")
        if last and last["worker"] == event.worker and last["rows"][1] == row:
            last["rows"][1] = row + 1
            last["time"] = event.time
        else:
            self._append({"type": "TaskBatch", "time": event.time, "worker": event.worker,
                          "rows": [row, row + 1]})

    def _append(self, record: dict[str, Any]) -> None:
        self.events.append(record)
        self._last[record["type"]] = record

    def summary(self) -> dict[str, Any]:
        """The run record: what ``GET /api/runs`` lists."""
        return {"id": self.id, "name": self.name, "executor": self.executor,
                "start": self.start, "end": self.end,
                "makespan": (self.end - self.start) if self.end is not None else None,
                "tasks": len(self.functions), "done": self.ndone, "state": self.state,
                "error": self.error, "workers": len(self.workers),
                "bytes_moved": self.bytes_moved, "version": self.version,
                "aggregate": self.aggregate}

    def detail(self, rows_from: int = 0, events_from: int = 0,
               packed: bool = False) -> dict[str, Any]:
        """``GET /api/runs/<id>``: everything, or what came after the given offsets.

        ``packed``: each task column as base64 of little-endian float64s, which
        the page decodes into a Float64Array: five times quicker to encode
        than 50,000 floats in decimal, and smaller.
        """
        encode = _packed if packed else _column
        out: dict[str, Any] = {
            "run": self.summary(), "workers": list(self.workers),
            "tasks": {"offset": rows_from,
                      **{c: encode(c, self.columns[c][rows_from:]) for c in COLUMNS}},
            "events": {"offset": events_from, "items": self.events[events_from:]},
            "failures": {str(k): v for k, v in self.failures.items()},
        }
        if rows_from == 0 and events_from == 0:
            out["graph"] = {"names": self.names(), "functions": self.functions,
                            "deps": self.deps}
        return out


INTEGER_COLUMNS = frozenset({"task", "worker", "input_bytes", "output_bytes", "attempts"})


def _column(name: str, values: array) -> list[float] | list[int]:
    return list(map(int, values)) if name in INTEGER_COLUMNS else values.tolist()


def _packed(name: str, values: array) -> str:
    if sys.byteorder != "little":
        values = array("d", values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in fields.items()}


class RunStore:
    """Runs by id: fed by an executor's events, or by reports from a metrics store."""

    def __init__(self, aggregate_over: int = AGGREGATE_OVER,
                 memory_source: Callable[[], dict[str, int]] | None = None) -> None:
        self.aggregate_over = aggregate_over
        # Resident memory per worker name, sampled while a run is going.
        self.memory_source = memory_source
        self.memory: collections.deque = collections.deque(maxlen=MEMORY_SAMPLES)
        self._pending: collections.deque = collections.deque()
        self.receive = self._pending.append  # the subscriber: an append, nothing more
        self._lock = threading.Lock()
        self.runs: dict[str, RunView] = {}
        self.workers: dict[str, str] = {}  # worker -> "up" / "died (code)"

    def ingest(self) -> None:
        """Fold the events received so far into the run views (server thread)."""
        with self._lock:
            pending = self._pending
            while pending:
                self._apply(pending.popleft())

    def sample_memory(self) -> None:
        """Record each worker's resident memory now, if a run is going (server thread)."""
        if self.memory_source is None:
            return
        going = bool(self._pending) or any(v.state == "running" for v in self.runs.values())
        if going:
            now = time.time()
            for worker, rss in self.memory_source().items():
                self.memory.append((now, worker, rss))

    def _memory_of(self, view: RunView) -> list[tuple[float, str, int]]:
        end = view.end if view.end is not None else float("inf")
        return [m for m in self.memory if view.start <= m[0] <= end]

    def trim(self) -> None:
        """Drop, unread, the events of runs too old to be kept (no page asked for them).

        Folding costs the process CPU time (a millisecond for 8,000 tasks), so
        events wait in the queue until a page asks; this bounds the queue when
        no page does, at the price of a scan of the queued events.
        """
        with self._lock:
            submitted = [e.run_id for e in self._pending if isinstance(e, ev.RunSubmitted)]
            if len(submitted) <= MAX_RUNS:
                return
            old = set(submitted[:-MAX_RUNS])
            kept = [e for e in self._pending if e.run_id not in old]
            self._pending.clear()
            self._pending.extend(kept)

    def _apply(self, event: Any) -> None:
        if isinstance(event, ev.RunSubmitted):
            self.runs[event.run_id] = RunView(event, self.aggregate_over)
            self.runs[event.run_id].apply(event)
            self._forget_old()
        elif isinstance(event, ev.WorkerStarted):
            self.workers[event.worker] = "up"
        elif isinstance(event, ev.WorkerDied):
            self.workers[event.worker] = f"died (exit code {event.exit_code})"
        else:
            view = self.runs.get(event.run_id)
            if view is not None:
                view.apply(event)

    def _forget_old(self) -> None:
        finished = [r for r in self.runs.values() if r.state != "running"]
        for view in finished[:max(0, len(self.runs) - MAX_RUNS)]:
            del self.runs[view.id]

    def add_report(self, report: RunReport) -> None:
        """A finished run from a metrics store, through the same events as a live one."""
        for event in events_of_report(report):
            self._pending.append(event)
        self.ingest()

    def list(self) -> list[dict[str, Any]]:
        self.ingest()
        with self._lock:
            return [view.summary() for view in self.runs.values()]

    def detail(self, run_id: str, rows_from: int = 0, events_from: int = 0,
               packed: bool = False) -> dict[str, Any] | None:
        self.ingest()
        with self._lock:
            view = self.runs.get(run_id)
            if view is None:
                return None
            return {**view.detail(rows_from, events_from, packed),
                    "memory": self._memory_of(view)}

    def aggregated(self, run_id: str) -> dict[str, Any] | None:
        self.ingest()
        with self._lock:
            view = self.runs.get(run_id)
            return None if view is None else {**view.aggregated(),
                                              "memory": self._memory_of(view)}

    def versions(self) -> dict[str, int]:
        """Per run, how many events it has: the live channel sends what changed."""
        self.ingest()
        with self._lock:
            return {rid: view.version for rid, view in self.runs.items()}


def events_of_report(report: RunReport) -> Iterator[Any]:
    """The events a stored run would have sent: submitted, one batch per worker, finished."""
    run = report.run
    tasks = report.tasks
    size = max([run.tasks, *(t.index + 1 for t in tasks)]) if tasks else run.tasks
    names = [f"task-{i}" for i in range(size)]
    functions = ["?"] * size
    deps: list[tuple[int, ...]] = [()] * size
    by_worker: dict[str, list[float]] = {}
    for t in tasks:
        if t.index < 0:
            continue
        names[t.index], functions[t.index], deps[t.index] = t.task_key, t.function, t.deps
        by_worker.setdefault(t.worker, []).extend((
            t.index, t.start, t.end, t.fetch_s, t.store_s, t.input_bytes, t.output_bytes,
            t.retries + 1, t.start - t.queued_s))
    yield ev.RunSubmitted(run.run_id, run.start, run.executor, run.workflow, names,
                          functions, deps)
    for worker, flat in by_worker.items():
        yield ev.TaskBatch(run.run_id, run.start + run.makespan, worker, flat)
    yield ev.RunFinished(run.run_id, run.start + run.makespan, run.state, run.makespan, run.error)
