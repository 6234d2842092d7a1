"""Per-task and per-run metrics, as plain dataclasses.

Workers record one small tuple per task (``RAW_FIELDS``); turning them into
``TaskRecord`` objects is deferred until someone reads them, so collecting
metrics costs a tuple and a few clock reads per task.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

# Order of the raw tuple a worker records for each task.
RAW_FIELDS = ("index", "start", "end", "fetch_s", "store_s", "input_bytes",
              "output_bytes", "attempts", "ready")

HOST = socket.gethostname()


@dataclass
class TaskRecord:
    """One task's run: where, when, how long, how much data."""

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


@dataclass
class RunRecord:
    """One run of a DAG as a whole."""

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
    """What a run measured: the run record and its task records (built on demand)."""

    run: RunRecord
    _raw: list[tuple[str, tuple]] = field(default_factory=list, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)
    _functions: list[str] = field(default_factory=list, repr=False)
    _tasks: list[TaskRecord] | None = field(default=None, repr=False)

    @property
    def tasks(self) -> list[TaskRecord]:
        if self._tasks is None:
            self._tasks = [_task_record(self.run.run_id, worker, raw, self._names, self._functions)
                           for worker, raw in self._raw]
        return self._tasks


def _task_record(run_id: str, worker: str, raw: tuple, names: list[str],
                 functions: list[str]) -> TaskRecord:
    i, start, end, fetch_s, store_s, in_b, out_b, attempts, ready = raw
    return TaskRecord(run_id=run_id, task_key=names[i], function=functions[i], worker=worker,
                      start=start, end=end, exec_s=max(0.0, end - start - fetch_s - store_s),
                      input_bytes=in_b, output_bytes=out_b, fetch_s=fetch_s, store_s=store_s,
                      queued_s=max(0.0, start - ready) if ready else 0.0,
                      retries=attempts - 1)


_last: RunReport | None = None


def last_run() -> RunReport | None:
    """The report of the most recent run that finished in this process."""
    return _last


def track(future: Any, executor: Any, options: dict[str, Any]) -> None:
    """Called by every executor for every run: remember its report when done."""
    name = options.get("name") or ""

    def done(fut: Any) -> None:
        global _last
        report = getattr(fut, "report", None)
        if report is not None:
            report.run.workflow = name
            _last = report

    future.add_done_callback(done)
