"""Writes run reports to slow sinks (Parquet, Redis) on a background thread.

Building an Arrow table of thousands of task rows and writing a file takes
several milliseconds: about 15-25% of a 4,095-task tree reduction that runs
in 50 ms. Doing it on the executor's thread would make every run that slower,
so the run resolves first and one writer thread, shared by all runs,
persists its report in the order runs finished. Runs queued for the same
sink while the writer was busy are written together (``write_many``), so a
Parquet *file* is rewritten once for the batch, not once per run.

The writer prefers the gaps between runs (it waits up to ``IDLE_WAIT_MAX``
for one), because converting thousands of task records holds the GIL and
would otherwise stall the scheduler thread of the run in flight. While runs
keep coming it writes at most every ``BATCH_INTERVAL``: many small runs then
cost one file, not one each.
``flush()`` waits until everything queued so far is written, at once; the
metrics loaders call it, and so does interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
import time
import warnings
from collections import deque
from typing import Any

from .metrics import RunReport


# Longest wait for a moment with no run in flight before writing anyway, and
# how often to look.
IDLE_WAIT_MAX = 1.0
IDLE_POLL = 0.002
BATCH_INTERVAL = 0.25


class SinkWriter:
    """A FIFO of (sink, report) pairs and the daemon thread that drains it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: deque[tuple[Any, RunReport]] = deque()
        self.busy = False
        self.flushing = 0
        self.thread: threading.Thread | None = None

    def submit(self, sink: Any, report: RunReport) -> None:
        with self.cond:
            self.queue.append((sink, report))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="fastdag-metrics-writer",
                                               daemon=True)
                self.thread.start()
            self.cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued report is written; False if ``timeout`` ran out."""
        with self.cond:
            self.flushing += 1
            self.cond.notify_all()  # the writer may be gathering a batch: write now
            try:
                return self.cond.wait_for(lambda: not self.queue and not self.busy, timeout)
            finally:
                self.flushing -= 1

    def _loop(self) -> None:
        from .monitor import runs_in_flight
        last_write = 0.0
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                # Runs still coming: let their reports gather into one write.
                pause = last_write + BATCH_INTERVAL - time.monotonic()
                if pause > 0 and runs_in_flight():
                    self.cond.wait_for(lambda: self.flushing, pause)
            # Building a table holds the GIL for milliseconds; while a run is
            # in flight that delays its scheduler thread, so wait (a bounded
            # time) for a gap between runs, unless someone is waiting on us.
            deadline = time.monotonic() + IDLE_WAIT_MAX
            while not self.flushing and runs_in_flight() and time.monotonic() < deadline:
                time.sleep(IDLE_POLL)
            last_write = time.monotonic()
            with self.cond:
                batch = list(self.queue)
                self.queue.clear()
                self.busy = True
            try:
                for sink, reports in _group_by_sink(batch):
                    _write(sink, reports)
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()


def _group_by_sink(batch: list[tuple[Any, RunReport]]) -> list[tuple[Any, list[RunReport]]]:
    groups: dict[Any, tuple[Any, list[RunReport]]] = {}
    for sink, report in batch:
        key = getattr(sink, "key", None) or id(sink)
        groups.setdefault(key, (sink, []))[1].append(report)
    return list(groups.values())


def _write(sink: Any, reports: list[RunReport]) -> None:
    try:
        if hasattr(sink, "write_many"):
            sink.write_many(reports)
        else:
            for r in reports:
                sink.write(r)
    except Exception as exc:  # noqa: BLE001 - a failed write must not stop later ones
        ids = ", ".join(r.run.run_id for r in reports)
        warnings.warn(f"fastdag: could not write the metrics of run(s) {ids} to {sink!r}: "
                      f"{exc}", RuntimeWarning, stacklevel=1)


WRITER = SinkWriter()


def flush(timeout: float | None = None) -> bool:
    """Wait until the metrics of every finished run are written to their sinks."""
    return WRITER.flush(timeout)


atexit.register(flush, 30.0)
