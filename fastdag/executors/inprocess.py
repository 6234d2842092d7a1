"""Run state shared by the executors that run tasks inside the caller's process.

Results are plain Python objects in a list indexed like the Plan; a result
is dropped as soon as its last consumer has run and the caller does not want
it, so a long pipeline holds only what is still needed.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ..errors import TaskError, task_failure
from ..graph import DAG
from ..metrics import HOST, RunRecord, RunReport
from ..plan import Plan, build_plan
from ..runner import describe_failure, execute, nbytes
from .base import RunFuture, new_run_id


class InProcessRun:
    """One DAG being run by threads of this process."""

    def __init__(self, dag: DAG, single: bool, executor: str, settings: dict):
        self.plan: Plan = build_plan(dag)
        self.future = RunFuture(new_run_id(), single)
        self.values: list[Any] = [None] * len(self.plan)
        self.sizes = [0] * len(self.plan)
        self.busy_s = 0.0   # task time so far, to tell tiny tasks from slow ones
        self.ran = 0
        self.remaining = [len(d) for d in self.plan.deps]
        self.uses_left = self.plan.refcounts()
        self.records: list[tuple[str, tuple]] = []
        self.start = time.time()
        self.executor = executor
        self.settings = settings
        self.lock = threading.Lock()

    def run_one(self, i: int, ready_at: float) -> Any:
        """Run task ``i``; record it; raise TaskError if it failed."""
        plan = self.plan
        start = time.time()
        try:
            value, attempts = self.call(i)
        except Exception as exc:  # noqa: BLE001
            failure = describe_failure(i, exc, plan.tasks[i].retries + 1)
            raise task_failure(plan.name(i), exc, failure.traceback) from exc
        end = time.time()
        self.busy_s += end - start
        self.ran += 1
        sizes = self.sizes
        in_bytes = 0
        for d in plan.deps[i]:
            in_bytes += sizes[d]
        out_bytes = sizes[i] = nbytes(value)
        worker = f"{HOST}:{os.getpid()}:{threading.current_thread().name}"
        self.records.append((worker, (i, start, end, 0.0, 0.0, in_bytes, out_bytes,
                                      attempts, ready_at)))
        return value

    def call(self, i: int) -> tuple[Any, int]:
        """Run task ``i`` with its retries: (value, attempts). Subclasses guard the inputs."""
        return execute(self.plan, i, self.values)

    def mean_task_s(self) -> float | None:
        return self.busy_s / self.ran if self.ran else None

    def complete(self, i: int, value: Any) -> list[int]:
        """Keep ``value``, release inputs no longer needed; return newly ready tasks."""
        plan = self.plan
        self.values[i] = value
        self.future.tasks_done += 1
        ready = []
        for d in plan.deps[i]:
            self.uses_left[d] -= 1
            if not self.uses_left[d]:
                self.values[d] = None
        for c in plan.dependents[i]:
            self.remaining[c] -= 1
            if not self.remaining[c]:
                ready.append(c)
        return ready

    def finish(self) -> None:
        self.future.report = RunReport(
            run=RunRecord(run_id=self.future.run_id, workflow="", executor=self.executor,
                          settings=self.settings, start=self.start,
                          makespan=time.time() - self.start, tasks=len(self.plan)),
            _raw=self.records, _names=self.plan.names(), _functions=self.plan.functions(),
            _deps=self.plan.deps)
        self.future.finish([self.values[o] for o in self.plan.outputs])

    def fail(self, exc: TaskError) -> None:
        self.future.fail(exc)
