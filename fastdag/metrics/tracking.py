"""``track``: the hook every executor calls for every run, and ``last_run()``.

    executor.submit ──track(future, executor, options)──> sink chosen (sinks.resolve_sink)
                                                          memory watch + progress (monitor)
    run ends ──future.finish/fail──> report named, peak memory set ──> last_run()
                                                                 └──> sink: written now, or by
                                                                      the writer thread (sinkwriter)

The top of the metrics layer: it imports the records (``runs``), the sinks
and their writer; nothing in the layer imports it.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from .runs import RunReport

_last: RunReport | None = None


def last_run() -> RunReport | None:
    """The report of the most recent run that ended in this process (``run.state``:
    "done", "failed" or "cancelled")."""
    return _last


def track(future: Any, executor: Any, options: dict[str, Any]) -> None:
    """Called by every executor for every run, right after it started.

    ``options`` are those given to ``compute()``/``submit()``: ``metrics``
    (a path, a Redis URL or a sink; default ``executor.metrics``), ``name``
    (the workflow name) and ``progress`` (None: on a terminal, for runs
    longer than a second; False: never; True: always).

    The report is handled *before* the future resolves (by wrapping the
    future's ``finish``), so when ``compute()`` returns, ``last_run()`` is
    this run and the report has been handed to its sink (files and Redis
    are then written by a background thread: the executor's ``shutdown()``
    and ``fd.flush_metrics()`` wait for them). A done-callback covers a run that resolved while the wrapper
    was being installed, and a failed or cancelled run.
    """
    from . import monitor
    from .sinks import resolve_sink

    spec = options.get("metrics")
    if spec is None:
        spec = getattr(executor, "metrics", None)
    recorder = getattr(executor, "run_recorder", None)
    tracker = _RunTracker(resolve_sink(spec), executor, options.get("name") or "",
                          monitor.watch(future, executor, options.get("name") or "",
                                        options.get("progress"), recorder), recorder)
    future.finish = _first(tracker, future, future.finish)
    future.fail = _first(tracker, future, future.fail)
    future.add_done_callback(tracker.handle)


def _first(tracker: "_RunTracker", future: Any, resolve: Callable[[Any], None]
           ) -> Callable[[Any], None]:
    """``resolve`` (the future's finish or fail) after the run's report is handled,
    so ``last_run()`` is this run when the caller wakes, whether it ended well or not."""
    def first(outcome: Any) -> None:
        # Runs on the executor's scheduler thread: nothing here may stop it.
        try:
            tracker.handle(future)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"fastdag: metrics of run {future.run_id} lost: {exc!r}",
                          RuntimeWarning, stacklevel=2)
        resolve(outcome)
    return first


class _RunTracker:
    """What ``track`` needs to finish one run's metrics, exactly once.

    It holds no reference to the future (it is handed the future when
    called), and removes the ``finish`` wrapper once the future is done, so
    no reference cycle keeps a finished run's result alive until the
    garbage collector runs.
    """

    __slots__ = ("sink", "owner", "name", "watch", "recorder", "lock", "handled")

    def __init__(self, sink: Any, owner: Any, name: str, watch: Any, recorder: Any):
        self.sink = sink
        self.recorder = recorder  # the executor's RunRecorder: it built the report
        self.owner = weakref.ref(owner)   # the executor, whose shutdown() waits for the write
        self.name = name
        self.watch = watch
        self.lock = threading.Lock()
        self.handled = False

    def handle(self, future: Any) -> None:
        if future.done():
            future.__dict__.pop("finish", None)  # drop the wrappers: no cycle left
            future.__dict__.pop("fail", None)
        with self.lock:
            if self.handled:
                return
            self.handled = True
        peak = self.watch.stop()
        report = None if self.recorder is None else self.recorder.take(future.run_id)
        if report is not None and not future.never_started:  # submit() raised: no run to keep
            future.report = report
            _complete(report, self.name, peak, self.sink, self.owner())


def _complete(report: RunReport, name: str, peak: int, sink: Any, owner: Any) -> None:
    global _last
    report.run.workflow = name
    report.run.peak_memory = max(report.run.peak_memory, peak)
    _last = report
    if sink is None:
        return
    if getattr(sink, "background", False):
        from .sinkwriter import WRITER
        WRITER.submit(sink, report, owner)
        return
    try:
        sink.write(report)
    except Exception as exc:  # noqa: BLE001 - metrics must never fail the run itself
        warnings.warn(f"fastdag: could not write the metrics of run {report.run.run_id} "
                      f"to {sink!r}: {exc}", RuntimeWarning, stacklevel=2)
