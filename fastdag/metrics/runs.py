"""Per-task and per-run metrics, as plain dataclasses and as Arrow tables.

    workers ── RAW_FIELDS records ──> executor ── events ──> RunRecorder (recorder.py)
                                                                  │ RunReport.of_run
    RunReport._raw ──.tasks──> one TaskRecord per task
                   ──.to_arrow()──> pyarrow Table (metrics.tables, through
                                    core.hooks: tables imports this)

Workers record one small tuple per task (``RAW_FIELDS``); turning them into
``TaskRecord`` objects or a pyarrow Table is deferred until someone reads
them or a sink is configured, so collecting metrics costs a tuple and a few
clock reads per task. ``tracking.track``, the hook every executor calls for
every run, fills in and hands on the reports built here.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import hooks
from ..core.records import RAW_WIDTH

if TYPE_CHECKING:
    import pyarrow as pa

HOST = socket.gethostname()


@dataclass
class TaskRecord:
    """One task's run: where, when, how long, how much data.

    Times are ``time.time()`` seconds; ``exec_s`` excludes the time spent
    fetching inputs and storing the output, ``queued_s`` is the wait between
    the task becoming ready and a worker starting it. ``index`` and ``deps``
    (indices of the tasks it consumed, in the same run) let a report rebuild
    the graph, and so the critical path, from persisted metrics alone.
    """

    run_id: str
    task_key: str
    function: str
    worker: str
    start: float
    end: float
    exec_s: float
    input_bytes: int
    output_bytes: int
    fetch_s: float
    store_s: float
    queued_s: float
    retries: int
    index: int = -1
    deps: tuple[int, ...] = ()


@dataclass
class RunRecord:
    """One run of a DAG as a whole. ``peak_memory``: bytes, summed RSS of the workers.

    ``state`` is "done", "failed" or "cancelled"; a run that did not finish
    is kept too (its tasks that ran, and ``error``: the first line of what
    stopped it), so a failure can be looked into from the metrics.
    """

    run_id: str
    workflow: str
    executor: str
    settings: dict[str, Any]
    start: float
    makespan: float
    tasks: int
    bytes_moved: int = 0
    peak_memory: int = 0
    state: str = "done"
    error: str = ""


class TaskNames(Sequence):
    """Task names (``Plan.name``: function-key) made when read.

    It holds the two lists it needs, not the plan, so a report or an event
    that keeps it does not keep the run's arguments alive; a table builds
    all names at once from the same two lists (``tables.py``).
    """

    def __init__(self, functions: list[str], keys: Sequence[Any]):
        self.functions, self.keys = functions, keys

    def __len__(self) -> int:
        return len(self.functions)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [f"{f}-{k}" for f, k in zip(self.functions[i], self.keys[i])]
        return f"{self.functions[i]}-{self.keys[i]}"


@dataclass
class RunReport:
    """What a run measured: the run record and its task records (built on demand).

    Built in one place, ``of_run``, from the run's events (``recorder.py``):
    ``_raw`` holds ``(worker, block)`` pairs, a block being the
    ``RAW_FIELDS`` of one or more tasks run there, flat (a tuple of one
    task, or an ``array('d')`` or list of a whole batch, which pickles,
    frees and turns into columns at C speed); ``_names``, ``_functions``
    and ``_deps`` describe the tasks by plan index. A report loaded from a
    sink has ``_tasks`` set directly instead. Other modules read these
    through the ``raw_records`` / ``task_*`` properties.
    """

    run: RunRecord
    _raw: list[tuple[str, Sequence[float]]] = field(default_factory=list, repr=False)
    _names: Sequence[str] = field(default_factory=list, repr=False)
    _functions: list[str] = field(default_factory=list, repr=False)
    _tasks: list[TaskRecord] | None = field(default=None, repr=False)
    _deps: list[tuple[int, ...]] = field(default_factory=list, repr=False)

    @classmethod
    def of_run(cls, submitted: Any, raw: list[tuple[str, Sequence[float]]],
               makespan: float, bytes_moved: int = 0, state: str = "done",
               error: str = "") -> "RunReport":
        """The report of the run that ``submitted`` (its ``events.RunSubmitted``) announced.

        The one place a report of a run is built (by ``recorder.RunRecorder``
        for every executor), so the run record and the task names come from
        the run's announcement the same way everywhere.
        """
        return cls(run=RunRecord(run_id=submitted.run_id, workflow=submitted.name,
                                 executor=submitted.executor,
                                 settings=dict(submitted.settings or {}),
                                 start=submitted.time, makespan=makespan,
                                 tasks=len(submitted.names), bytes_moved=bytes_moved,
                                 state=state, error=error),
                   _raw=raw, _names=submitted.names, _functions=submitted.functions,
                   _deps=submitted.deps)

    @classmethod
    def loaded(cls, run: RunRecord, tasks: list[TaskRecord]) -> "RunReport":
        """A report read back from a sink: its task records as they were stored."""
        return cls(run=run, _tasks=tasks)

    @property
    def raw_records(self) -> list[tuple[str, Sequence[float]]]:
        """The ``(worker, flat RAW_FIELDS)`` blocks workers reported (empty if loaded)."""
        return self._raw if self._tasks is None else []

    @property
    def task_functions(self) -> list[str]:
        """Function name of every task, by plan index."""
        return self._functions

    @property
    def task_names(self) -> Sequence[str]:
        """Name (``function-key``) of every task, by plan index."""
        return self._names

    @property
    def task_keys(self) -> Sequence[Any] | None:
        """The keys that make the names (``f"{function}-{key}"``), when known."""
        return self._names.keys if isinstance(self._names, TaskNames) else None

    @property
    def task_deps(self) -> list[tuple[int, ...]]:
        """Dependency indices of every task, by plan index (empty: not recorded)."""
        return self._deps

    @property
    def tasks(self) -> list[TaskRecord]:
        """One TaskRecord per task run, in the order workers reported them."""
        if self._tasks is None:
            deps = self._deps
            self._tasks = [_task_record(self.run.run_id, worker, block[k:k + RAW_WIDTH],
                                        self._names, self._functions, deps)
                           for worker, block in self._raw
                           for k in range(0, len(block), RAW_WIDTH)]
        return self._tasks

    @property
    def has_deps(self) -> bool:
        """Whether dependency edges were recorded (needed for the critical path)."""
        if self._tasks is None:
            return bool(self._deps)
        return any(t.deps for t in self._tasks)

    def to_arrow(self) -> pa.Table:
        """The task records as a pyarrow Table (schema: ``TASK_SCHEMA``)."""
        return hooks.tasks_table(self)  # metrics.tables, which imports this module

    def critical_path(self) -> list[TaskRecord]:
        """The chain of tasks that decided the makespan, first task first.

        Starting from the task that ended last, step to the input that
        arrived last (the one that held it back), until a task without
        inputs. Empty when dependencies were not recorded.
        """
        tasks = self.tasks
        if not tasks or not self.has_deps:
            return []
        by_index = {t.index: t for t in tasks}
        current: TaskRecord | None = max(tasks, key=lambda t: t.end)
        path = []
        while current is not None:
            path.append(current)
            inputs = [by_index[d] for d in current.deps if d in by_index]
            current = max(inputs, key=lambda t: t.end) if inputs else None
        return path[::-1]

    def summary(self) -> dict[str, Any]:
        """Headline numbers: makespan, tasks, workers, bytes, utilisation."""
        tasks = self.tasks
        workers = {t.worker for t in tasks}
        busy = sum(t.end - t.start for t in tasks)
        span = self.run.makespan
        return {
            "run_id": self.run.run_id,
            "workflow": self.run.workflow,
            "executor": self.run.executor,
            "state": self.run.state,
            "makespan_s": span,
            "tasks": len(tasks),
            "workers": len(workers),
            "busy_s": busy,
            "utilisation": busy / (len(workers) * span) if workers and span > 0 else 0.0,
            "input_bytes": sum(t.input_bytes for t in tasks),
            "output_bytes": sum(t.output_bytes for t in tasks),
            "bytes_moved": self.run.bytes_moved,
            "peak_memory": self.run.peak_memory,
            "retries": sum(t.retries for t in tasks),
        }


def _task_record(run_id: str, worker: str, raw: Sequence[float], names: Sequence[str],
                 functions: list[str], deps: list[tuple[int, ...]]) -> TaskRecord:
    i, start, end, fetch_s, store_s, in_b, out_b, attempts, ready = raw
    i, in_b, out_b, attempts = int(i), int(in_b), int(out_b), int(attempts)
    return TaskRecord(run_id=run_id, task_key=names[i], function=functions[i], worker=worker,
                      start=start, end=end, exec_s=max(0.0, end - start - fetch_s - store_s),
                      input_bytes=in_b, output_bytes=out_b, fetch_s=fetch_s, store_s=store_s,
                      queued_s=max(0.0, start - ready) if ready else 0.0,
                      retries=attempts - 1, index=i, deps=tuple(deps[i]) if deps else ())


def run_record_dict(run: RunRecord) -> dict[str, Any]:
    """A RunRecord as a JSON-ready dict (the format sinks persist)."""
    return dataclasses.asdict(run)


def run_record_from_dict(data: dict[str, Any]) -> RunRecord:
    """The inverse of ``run_record_dict``; unknown keys are ignored (newer writers)."""
    names = {f.name for f in dataclasses.fields(RunRecord)}
    return RunRecord(**{k: v for k, v in data.items() if k in names})
