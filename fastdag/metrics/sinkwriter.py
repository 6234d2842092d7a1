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
metrics loaders call it, and so does interpreter exit. ``wait_for(owner)``
waits only for the runs of one executor: its ``shutdown()`` calls it, so the
metrics are on disk when a ``with`` block ends. Both waits are bounded, and
a wait that runs out is logged.

A write that fails (disk full, permission, Redis down) is never silent: the
first failure of each sink warns with the sink and the reason, and every
failure is kept until ``flush_metrics()`` (``fd.flush_metrics``) raises
them as one ``MetricsWriteError``.

    compute() ─ submit(sink, report, owner) ─> queue ─> writer thread ─> sink
                         ticket n ─────────────────────> written >= n ? done
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import warnings
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..core.errors import FastdagError
from .runs import RunReport

log = logging.getLogger("fastdag")


# Longest wait for a moment with no run in flight before writing anyway, and
# how often to look.
IDLE_WAIT_MAX = 1.0
IDLE_POLL = 0.002
BATCH_INTERVAL = 0.25
# How long an executor's shutdown() and interpreter exit wait for metrics writes.
SHUTDOWN_WAIT = 30.0


@dataclass(frozen=True)
class WriteFailure:
    """Runs whose metrics could not be written, the sink, and why."""

    sink: str        # repr of the sink (passwords redacted)
    run_ids: tuple[str, ...]
    reason: str      # "ExceptionType: message"


class MetricsWriteError(FastdagError):
    """Some runs' metrics could not be written; ``failures`` lists them."""

    def __init__(self, failures: list[WriteFailure]):
        lines = [f"{f.sink}: run(s) {', '.join(f.run_ids)}: {f.reason}" for f in failures]
        super().__init__("metrics could not be written:\n  " + "\n  ".join(lines))
        self.failures = failures


class SinkWriter:
    """A FIFO of (sink, report) pairs and the daemon thread that drains it.

    Every report gets a ticket number in submission order; ``written`` is
    the last ticket whose write was attempted (the queue is drained in
    order), so "are this executor's runs written?" is one comparison.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: deque[tuple[Any, RunReport]] = deque()
        self.flushing = 0
        self.thread: threading.Thread | None = None
        self.tickets = 0     # reports submitted so far
        self.written = 0     # reports whose write was attempted (succeeded or failed)
        self.last_ticket: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.failures: list[WriteFailure] = []
        self.warned: set[Any] = set()   # sinks whose first failure has been warned about

    def submit(self, sink: Any, report: RunReport, owner: Any = None) -> None:
        """Queue ``report`` for ``sink``; ``owner`` (an executor) can wait for it."""
        with self.cond:
            self.queue.append((sink, report))
            self.tickets += 1
            if owner is not None:
                self.last_ticket[owner] = self.tickets
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="fastdag-metrics-writer",
                                               daemon=True)
                self.thread.start()
            self.cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued report is written; False if ``timeout`` ran out."""
        with self.cond:
            return self._wait_until(self.tickets, timeout)

    def wait_for(self, owner: Any, timeout: float) -> bool:
        """Wait until the reports of ``owner``'s runs are written; log a timeout."""
        with self.cond:
            ticket = self.last_ticket.get(owner, 0)
            if self._wait_until(ticket, timeout):
                return True
            pending = ticket - self.written
        log.warning("fastdag: gave up waiting after %g s for the metrics of %s to be "
                    "written; %d report(s) not written yet", timeout, type(owner).__name__,
                    pending)
        return False

    def take_failures(self) -> list[WriteFailure]:
        """The failures since the last call, each reported once."""
        with self.cond:
            failures, self.failures = self.failures, []
            return failures

    def _wait_until(self, ticket: int, timeout: float | None) -> bool:
        """With ``cond`` held: wait until report ``ticket`` has been written."""
        if self.written >= ticket:
            return True
        self.flushing += 1
        self.cond.notify_all()  # the writer may be gathering a batch: write now
        try:
            return self.cond.wait_for(lambda: self.written >= ticket, timeout)
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
                last = self.tickets
            failures = []
            try:
                for sink, reports in _group_by_sink(batch):
                    failure = _write(sink, reports)
                    if failure is not None:
                        failures.append((sink, failure))
            finally:
                with self.cond:
                    self.written = last
                    self._record(failures)
                    self.cond.notify_all()

    def _record(self, failures: list[tuple[Any, WriteFailure]]) -> None:
        """With ``cond`` held: keep the failures; warn about a sink's first one."""
        for sink, failure in failures:
            self.failures.append(failure)
            key = _sink_key(sink)
            if key in self.warned:
                continue
            self.warned.add(key)
            warnings.warn(f"fastdag: could not write the metrics of run(s) "
                          f"{', '.join(failure.run_ids)} to {failure.sink}: {failure.reason} "
                          "(later failures of this sink are not warned about; "
                          "fd.flush_metrics() raises them all)", RuntimeWarning, stacklevel=1)


def _group_by_sink(batch: list[tuple[Any, RunReport]]) -> list[tuple[Any, list[RunReport]]]:
    groups: dict[Any, tuple[Any, list[RunReport]]] = {}
    for sink, report in batch:
        groups.setdefault(_sink_key(sink), (sink, []))[1].append(report)
    return list(groups.values())


def _sink_key(sink: Any) -> Any:
    """Sinks with equal keys write to the same place (batched, warned about once)."""
    return getattr(sink, "key", None) or id(sink)


def _write(sink: Any, reports: list[RunReport]) -> WriteFailure | None:
    """Write ``reports`` to ``sink``; the failure, if it failed."""
    try:
        if hasattr(sink, "write_many"):
            sink.write_many(reports)
        else:
            for r in reports:
                sink.write(r)
    except Exception as exc:  # noqa: BLE001 - a failed write must not stop later ones
        reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        return WriteFailure(repr(sink), tuple(r.run.run_id for r in reports), reason)
    return None


WRITER = SinkWriter()


def flush(timeout: float | None = None) -> bool:
    """Wait until the metrics of every finished run are written to their sinks.

    True when they were (successfully or not) within ``timeout``. The metrics
    loaders call this; ``flush_metrics`` also reports the failures.
    """
    return WRITER.flush(timeout)


def flush_metrics(timeout: float | None = SHUTDOWN_WAIT) -> None:
    """Wait for every pending metrics write; raise if any write failed or time ran out.

    ``MetricsWriteError.failures`` lists the runs, the sink and the reason of
    every failed write since the last call (each failure is raised once).
    ``TimeoutError`` when writes are still pending after ``timeout`` seconds.
    """
    done = WRITER.flush(timeout)
    failures = WRITER.take_failures()
    if failures:
        raise MetricsWriteError(failures)
    if not done:
        raise TimeoutError(f"metrics writes still pending after {timeout} s")


def wait_for(owner: Any) -> bool:
    """Wait (``SHUTDOWN_WAIT`` at most) until the metrics of ``owner``'s runs are written."""
    return WRITER.wait_for(owner, SHUTDOWN_WAIT)


def settle(why: str) -> bool:
    """``flush`` for the metrics readers and interpreter exit: bounded, logged if cut short."""
    timeout = SHUTDOWN_WAIT
    if WRITER.flush(timeout):
        return True
    log.warning("fastdag: %s: gave up after %g s waiting for metrics writes; "
                "%d report(s) not written yet", why, timeout, WRITER.tickets - WRITER.written)
    return False


atexit.register(settle, "interpreter exit")
