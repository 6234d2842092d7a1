"""Run state shared by the executors that run tasks inside the caller's process.

Results are plain Python objects in a list indexed like the Plan; a result
is dropped as soon as its last consumer has run and the caller does not want
it, so a long pipeline holds only what is still needed.

::

    caller / pool threads ── run_one(i) ── task ──> values[i] ── complete(i) ──> ready consumers
            │ records (RAW_FIELDS) or live per-task events
            v
    executor's EventBus ──> RunRecorder (the report), other subscribers
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from .. import events as ev
from ..core.errors import CancelledError, TaskError, task_failure
from ..core.graph import DAG
from ..metrics.runs import HOST
from ..core.plan import Plan, build_plan
from ..core.runner import INTERNAL_FILES, TASK_EXCEPTIONS, describe_failure, execute, nbytes
from ..engine.executor import RunFuture, new_run_id
from . import interrupts

INTERNAL_FILES.add(__file__)  # a task's traceback starts at the user's function, as in a worker

# Seconds between two TaskBatch events of a run nobody watches task by task.
FLUSH_EVERY = 0.1


class InProcessRun:
    """One DAG being run by threads of this process.

    What it tells the executor's event bus: ``RunSubmitted`` at once; then,
    when someone besides the run recorder listens (``bus.watched`` at the
    start), each task live (``TaskStarted``, ``TaskRetried``,
    ``TaskFinished``, ``TasksReady`` for its consumers); otherwise its
    records in ``TaskBatch`` events, at most ``FLUSH_EVERY`` seconds apart,
    which cost the recorder a list append per task. ``TaskFailed`` and
    ``RunFinished`` end it either way.
    """

    def __init__(self, dag: DAG | Plan, single: bool, executor: str, settings: dict,
                 events: ev.EventBus | None = None, name: str = ""):
        self.plan: Plan = dag if isinstance(dag, Plan) else build_plan(dag)
        self.future = RunFuture(new_run_id(), single, events=events)
        self.future.tasks_total = len(self.plan)
        self.values: list[Any] = [None] * len(self.plan)
        self.sizes = [0] * len(self.plan)
        self.busy_s = 0.0   # task time so far, to tell tiny tasks from slow ones
        self.ran = 0
        self.remaining, self.uses_left = self.counts()
        self.records: dict[str, list[float]] = {}  # per thread: flat records not yet sent
        self.start = time.time()
        self.flushed_at = self.start
        self.lock = threading.Lock()
        self.bus = events if events is not None else ev.EventBus()
        self.live = self.bus.watched  # subscribers present at the start see every task
        ev.run_submitted(self.bus, self.future.run_id, executor, self.plan, name, settings)

    def counts(self) -> tuple[list[int], list[int]]:
        """Per task: its inputs not computed yet, and the readers of its value still to
        come (consumers, plus the caller if it wants it)."""
        return [len(d) for d in self.plan.deps], self.plan.refcounts()

    def run_one(self, i: int, ready_at: float) -> Any:
        """Run task ``i``; record it; raise TaskError if it failed."""
        plan = self.plan
        start = time.time()
        if self.live:
            self.bus.emit(ev.TaskStarted(self.future.run_id, start, i, _worker_name()))
        try:
            value, attempts = self.call(i)
        except TASK_EXCEPTIONS as exc:  # noqa: BLE001
            if interrupts.from_user(exc):
                raise  # Ctrl-C: the caller's, not the task's (run_inline)
            failure = describe_failure(i, exc, plan.tasks[i].retries + 1)
            error = task_failure(plan.name(i), exc, failure.traceback)
            self.flush()
            ev.task_failed(self.bus, self.future.run_id, i, _worker_name(), error)
            raise error from exc
        end = time.time()
        self.busy_s += end - start
        self.ran += 1
        sizes = self.sizes
        in_bytes = 0
        for d in plan.deps[i]:
            in_bytes += sizes[d]
        out_bytes = sizes[i] = nbytes(value)
        record = (i, start, end, 0.0, 0.0, in_bytes, out_bytes, attempts, ready_at)
        if self.live:
            ev.task_ended(self.bus, self.future.run_id, _worker_name(), record)
            return value
        worker = _worker_name()
        flat = self.records.get(worker)
        if flat is None:  # only this thread adds to its own list
            flat = self.records[worker] = []
        flat.extend(record)  # already the TaskBatch format: nothing to regroup at a flush
        if end - self.flushed_at > FLUSH_EVERY:
            self.flush(worker)
        return value

    def flush(self, worker: str | None = None) -> None:
        """Send the records not yet sent, as one TaskBatch per thread that ran them.

        ``worker``: only that thread's (called by it: no other thread adds to
        its list); None: every thread's, once no other thread runs tasks of
        this run (it finished or failed).
        """
        self.flushed_at = now = time.time()
        for name in [worker] if worker is not None else list(self.records):
            flat = self.records.pop(name, None)
            if flat:
                self.bus.emit(ev.TaskBatch(self.future.run_id, now, name, flat))

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
        if ready and self.live:
            self.bus.emit(ev.TasksReady(self.future.run_id, time.time(), ready, ""))
        return ready

    def finish(self) -> None:
        """The run is done: its last records, RunFinished (the recorder's report), the outputs."""
        self.flush()
        ev.run_finished(self.bus, self.future.run_id, self.start, None)
        self.future.finish([self.values[o] for o in self.plan.outputs])

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.flush()
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
    with interrupts.watched():  # Ctrl-C in the main thread stops the run, see interrupts.py
        for i in range(len(run.plan)):
            try:
                value = run.run_one(i, time.time())
            except TaskError as exc:
                run.fail(exc)
                return
            except KeyboardInterrupt:
                run.fail(CancelledError("interrupted (Ctrl-C)"))
                raise
            run.complete(i, value)
    run.finish()
