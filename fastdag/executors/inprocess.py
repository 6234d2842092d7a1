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

from .. import events as ev
from ..core.errors import TaskError, task_failure
from ..core.graph import DAG
from ..metrics.runs import HOST, RunReport
from ..core.plan import Plan, build_plan
from ..core.runner import TASK_EXCEPTIONS, describe_failure, execute, nbytes
from ..engine.executor import RunFuture, new_run_id


class InProcessRun:
    """One DAG being run by threads of this process."""

    def __init__(self, dag: DAG | Plan, single: bool, executor: str, settings: dict,
                 events: ev.EventBus | None = None, name: str = ""):
        self.plan: Plan = dag if isinstance(dag, Plan) else build_plan(dag)
        self.future = RunFuture(new_run_id(), single)
        self.future.tasks_total = len(self.plan)
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
        # Subscribers present at the start see the whole run; None: nobody listens.
        self.bus = events if events is not None and events.active else None
        if self.bus is not None:
            ev.run_submitted(self.bus, self.future.run_id, executor, self.plan, name)

    def run_one(self, i: int, ready_at: float) -> Any:
        """Run task ``i``; record it; raise TaskError if it failed."""
        plan = self.plan
        start = time.time()
        bus = self.bus
        if bus is not None:
            bus.emit(ev.TaskStarted(self.future.run_id, start, i, _worker_name()))
        try:
            value, attempts = self.call(i)
        except TASK_EXCEPTIONS as exc:  # noqa: BLE001
            failure = describe_failure(i, exc, plan.tasks[i].retries + 1)
            error = task_failure(plan.name(i), exc, failure.traceback)
            if bus is not None:
                ev.task_failed(bus, self.future.run_id, i, _worker_name(), error)
            raise error from exc
        end = time.time()
        self.busy_s += end - start
        self.ran += 1
        sizes = self.sizes
        in_bytes = 0
        for d in plan.deps[i]:
            in_bytes += sizes[d]
        out_bytes = sizes[i] = nbytes(value)
        worker = _worker_name()
        record = (i, start, end, 0.0, 0.0, in_bytes, out_bytes, attempts, ready_at)
        self.records.append((worker, record))
        if bus is not None:
            ev.task_ended(bus, self.future.run_id, worker, record)
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
        if ready and self.bus is not None:
            self.bus.emit(ev.TasksReady(self.future.run_id, time.time(), ready, ""))
        return ready

    def finish(self) -> None:
        self.future.report = RunReport.of_run(self.future.run_id, self.executor, self.settings,
                                              self.start, self.plan, self.records)
        if self.bus is not None:
            ev.run_finished(self.bus, self.future.run_id, self.start, None)
        self.future.finish([self.values[o] for o in self.plan.outputs])

    def fail(self, exc: BaseException) -> None:
        if self.bus is not None and not self.future.done():
            ev.run_finished(self.bus, self.future.run_id, self.start, exc)
        self.future.fail(exc)


def _worker_name() -> str:
    return f"{HOST}:{os.getpid()}:{threading.current_thread().name}"


def run_inline(run: InProcessRun) -> None:
    """Run every task of ``run`` in this thread, in plan order; resolve its future.

    The SyncExecutor's whole job, and how a ThreadExecutor runs a graph
    computed from inside one of its own tasks: waiting for the pool there
    could wait for the very thread that is waiting.
    """
    for i in range(len(run.plan)):
        try:
            value = run.run_one(i, time.time())
        except TaskError as exc:
            run.fail(exc)
            return
        run.complete(i, value)
    run.finish()
