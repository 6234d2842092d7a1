"""What a ``LocalExecutor`` worker process tells its scheduler, as named tuples.

    worker (engine/worker.py)               scheduler (executors/local.py)
      Worker.batch / _flush  -- Report ------->  _handle: counts, refs, records
      Worker._run (every 0.1 s) -- Progress -->  _handle: live count and records
      Worker.batch (a task failed) -- Failed ->  _handle: the run fails
      Worker.give_away -- Returned ---------->  _returned: to an idle worker

Each is pickled whole over the worker's pipe. The first field names the
kind, so the scheduler dispatches on ``msg[0]`` as it does for the plain
control tuples (``("up",)`` once booted, ``("gil", run, samples, windows)``), and
reads every other field by name.

What the scheduler ships the other way is a plain tuple (see
``engine/worker.py``), except the plan, stored once per run in shared memory
as a ``ShippedPlan``.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Report(NamedTuple):
    """Tasks a batch completed since its last report; ``final``: the batch is over."""

    kind: str                # "report"
    run: int
    completed: Any           # array("i") of task indices
    boundary: list[int]      # completed tasks with a consumer that did not run here
    consumed: list[int]      # stored results read from the store, one entry per read
    stored: dict[int, Any]   # task -> StoredRef of results stored by this batch
    bundles: list[Any]       # store.bundle.Bundle of small results stored together
    claimed: list[int]       # tasks queued here: the scheduler hands them to nobody else
    records: Any             # array("d"), records.RAW_FIELDS of each task, flat
    final: bool


class Progress(NamedTuple):
    """Sent while a long batch runs: ``done`` tasks since the last report."""

    kind: str                # "progress"
    run: int
    done: int
    records: Any             # the RAW_FIELDS records not sent before, flat


class Failed(NamedTuple):
    """A task of the batch failed (or its plan would not load): the run fails."""

    kind: str                # "error"
    run: int
    failure: bytes           # a pickled runner.SentFailure: always loads
    stored: dict[int, Any]   # what the batch stored before: the scheduler frees it



class Returned(NamedTuple):
    """Tasks of the running batch, not started, handed back for an idle worker."""

    kind: str                # "returned"
    run: int
    tasks: list[int]


class ShippedPlan(NamedTuple):
    """A run's plan as its workers load it: large text arguments lifted out
    (``core/captured.py``), and the tasks whose arguments hold some."""

    plan: Any                # core.plan.Plan
    lifted: frozenset        # task indices to ``captured.land`` before they run
