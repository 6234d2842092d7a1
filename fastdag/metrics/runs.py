"""Per-task and per-run metrics, as plain dataclasses and as Arrow tables.

    worker RAW blocks ──> RunReport._raw ──.tasks──> one TaskRecord per task
                                         ──.to_arrow()──> pyarrow Table (metrics.tables,
                                                          through core.hooks: tables imports this)

Workers record one small tuple per task (``RAW_FIELDS``); turning them into
``TaskRecord`` objects or a pyarrow Table is deferred until someone reads
them or a sink is configured, so collecting metrics costs a tuple and a few
clock reads per task. ``tracking.track``, the hook every executor calls for
every run, fills in and hands on the reports built here.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import hooks
from ..core.records import RAW_FIELDS, RAW_WIDTH

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
    """One run of a DAG as a whole. ``peak_memory``: bytes, summed RSS of the workers."""

    run_id: str
    workflow: str
    executor: str
    settings: dict[str, Any]
    start: float
    makespan: float
    tasks: int
    bytes_moved: int = 0
    peak_memory: int = 0


@dataclass
class RunReport:
    """What a run measured: the run record and its task records (built on demand).

    Executors fill ``_raw`` (``(worker, block)`` pairs, a block being the
    ``RAW_FIELDS`` of one or more tasks run there, flat: a tuple of one task
    or an ``array('d')`` of a whole batch, which pickles, frees and turns
    into columns at C speed), ``_names`` and
    ``_functions`` (per task index) and, when they pass it, ``_deps`` (the
    plan's dependency indices). A report loaded from a sink has ``_tasks``
    set directly instead.
    """

    run: RunRecord
    _raw: list[tuple[str, Sequence[float]]] = field(default_factory=list, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)
    _functions: list[str] = field(default_factory=list, repr=False)
    _tasks: list[TaskRecord] | None = field(default=None, repr=False)
    _deps: list[tuple[int, ...]] = field(default_factory=list, repr=False)

    @classmethod
    def of_run(cls, run_id: str, executor: str, settings: dict[str, Any], start: float,
               plan: Any, raw: list[tuple[str, Sequence[float]]],
               bytes_moved: int = 0) -> "RunReport":
        """The report of a run of ``plan`` (a ``plan.Plan``) that ends now.

        The one place every executor builds its report, so the run record
        and the task names come from the plan the same way everywhere.
        """
        return cls(run=RunRecord(run_id=run_id, workflow="", executor=executor,
                                 settings=settings, start=start,
                                 makespan=time.time() - start, tasks=len(plan),
                                 bytes_moved=bytes_moved),
                   _raw=raw, _names=plan.names(), _functions=plan.functions(),
                   _deps=plan.deps)

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
