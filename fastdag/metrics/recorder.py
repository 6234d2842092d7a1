"""RunRecorder: every executor's own subscriber, turning each run's events into its report.

Data flow::

    executor ──emit──> EventBus ──first──> RunRecorder (batched: TaskBatch as it comes)
                                             RunSubmitted        opens a _Recording
                                             TaskBatch           keeps the flat records
                                             TaskFinished        keeps one record (in-process
                                                                 runs that announce each task)
                                             DataMoved           adds to the bytes moved
                                             RunFinished         RunReport.of_run -> finished
                                                                 (failed and cancelled runs too)
    metrics.track's tracker ──take(run_id)──> the report: future.report, fd.last_run(), sinks
    monitor's progress line ──progress(run_id)──> (tasks done, tasks in the run)

The records are kept as the workers sent them (``(worker, block)``, a block
being the ``RAW_FIELDS`` of one or more tasks), so a batch of 4,096 tasks
costs one list append here, not an object per task. Events arrive under the
bus's lock, one at a time; ``take`` and ``progress`` read from other threads
and only pop or read dict entries.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import events as ev
from ..core.records import RAW_WIDTH
from .runs import RunReport

# Reports of finished runs nobody took (a run not tracked): the oldest go first.
KEEP_UNTAKEN = 64


@dataclass
class _Recording:
    """One run in flight: its announcement and what its tasks reported so far."""

    submitted: ev.RunSubmitted
    records: list[tuple[str, Sequence[float]]] = field(default_factory=list)
    done: int = 0
    bytes_moved: int = 0


class RunRecorder:
    """Builds a ``RunReport`` per run of one executor from that executor's events."""

    def __init__(self) -> None:
        self._open: dict[str, _Recording] = {}
        self._finished: collections.OrderedDict[str, RunReport] = collections.OrderedDict()
        self._final: collections.OrderedDict[str, tuple[int, int]] = collections.OrderedDict()

    def __call__(self, event: Any) -> None:
        kind = type(event)
        if kind is ev.RunSubmitted:
            self._open[event.run_id] = _Recording(event)
            return
        rec = self._open.get(event.run_id)
        if rec is None:
            return
        if kind is ev.TaskBatch:
            rec.records.append((event.worker, event.records))
            rec.done += len(event.records) // RAW_WIDTH
        elif kind is ev.TaskFinished:
            rec.records.append((event.worker, (event.task, *event[4:])))
            rec.done += 1
        elif kind is ev.DataMoved:
            rec.bytes_moved += event.nbytes
        elif kind is ev.RunFinished:
            del self._open[event.run_id]
            _keep(self._final, event.run_id, (rec.done, len(rec.submitted.names)))
            _keep(self._finished, event.run_id, RunReport.of_run(
                rec.submitted, rec.records, event.makespan, rec.bytes_moved,
                event.state, event.error))

    def take(self, run_id: str) -> RunReport | None:
        """The report of a run that ended (done, failed or cancelled), once; None otherwise."""
        return self._finished.pop(run_id, None)

    def progress(self, run_id: str) -> tuple[int, int] | None:
        """(tasks done, tasks in the run) of a run in flight or just ended; None if unknown."""
        rec = self._open.get(run_id)
        return self._final.get(run_id) if rec is None else (rec.done, len(rec.submitted.names))


def _keep(kept: collections.OrderedDict, run_id: str, value: Any) -> None:
    """Keep ``value`` for ``run_id``, dropping the oldest beyond KEEP_UNTAKEN."""
    kept[run_id] = value
    while len(kept) > KEEP_UNTAKEN:
        kept.popitem(last=False)
