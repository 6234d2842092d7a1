"""Watches runs while they execute: peak memory of the workers, and progress.

One daemon thread serves every run in flight, waking a few times a second
only while some run is being watched, so a run costs two memory samples
(start and end) plus whatever the sampling thread does meanwhile: nothing
per task. Peak memory is the largest sum of the resident set sizes of the
executor's worker processes seen at those samples; a spike shorter than the
sampling interval can be missed, which is the price of staying cheap.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .progress import PROGRESS_DELAY, REDRAW_INTERVAL, ProgressLine, RunProgress, wants_progress

SAMPLE_INTERVAL = 0.05

_processes: dict[int, Any] = {}  # pid -> psutil.Process, where there is no /proc
_PROC = os.path.isdir("/proc/self")
_PAGE = os.sysconf("SC_PAGE_SIZE") if _PROC else 0


def rss_of(pids: list[int]) -> int:
    """Summed resident set size, in bytes, of the processes still alive in ``pids``.

    Read from ``/proc/<pid>/statm`` on Linux: psutil (imported only where
    there is no /proc) takes 20 ms to import, on a fresh process's first
    ``compute()``, against the GIL of that run's first tasks.
    """
    if not _PROC:
        return sum(_psutil_rss(pid) for pid in pids)
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):  # gone
            continue
    return total


def _psutil_rss(pid: int) -> int:
    """The resident set size of ``pid`` from psutil (no /proc here); 0 if it is gone."""
    import psutil
    proc = _processes.get(pid)
    try:
        if proc is None:
            proc = _processes[pid] = psutil.Process(pid)
        return proc.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        _processes.pop(pid, None)
        return 0


class Watch:
    """One run being watched."""

    def __init__(self, future: Any, pids: Callable[[], list[int]], name: str, show: bool,
                 recorder: Any = None):
        self.future = future
        self.run_id = getattr(future, "run_id", "")
        self.recorder = recorder  # the executor's RunRecorder: progress from the run's events
        self.pids = pids
        self.name = name
        self.show = show
        self.start = time.time()
        self.peak = 0
        self.shown = False

    def sample(self) -> None:
        try:
            pids = list(self.pids())
        except Exception:  # noqa: BLE001 - an executor shutting down: nothing to sample
            return
        self.peak = max(self.peak, rss_of(pids))

    def progress(self) -> RunProgress:
        """Tasks done so far, as the run's events told the recorder (else the future's count)."""
        counts = None if self.recorder is None else self.recorder.progress(self.run_id)
        if counts is None:
            future = self.future
            counts = getattr(future, "tasks_done", 0), getattr(future, "tasks_total", 0)
        return RunProgress(self.name, counts[0], counts[1], time.time() - self.start)

    def stop(self) -> int:
        """Stop watching; return the peak memory in bytes."""
        self.sample()
        _MONITOR.remove(self)
        self.future = None  # the run's result must not outlive the caller's interest
        return self.peak


class Monitor:
    """The sampling thread and the set of runs it watches."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.watches: set[Watch] = set()
        self.thread: threading.Thread | None = None
        self.line = ProgressLine()
        self.last_draw = 0.0

    def add(self, w: Watch) -> None:
        with self.cond:
            self.watches.add(w)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="fastdag-monitor",
                                               daemon=True)
                self.thread.start()
            self.cond.notify()

    def remove(self, w: Watch) -> None:
        with self.cond:
            self.watches.discard(w)
            if w.shown:
                w.shown = False
                self.line.finish(w.progress())

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.watches:
                    self.cond.wait()
                watches = list(self.watches)
            for w in watches:
                w.sample()
            self._draw(watches)
            time.sleep(SAMPLE_INTERVAL)

    def _draw(self, watches: list[Watch]) -> None:
        now = time.time()
        if now - self.last_draw < REDRAW_INTERVAL:
            return
        with self.cond:
            due = [w for w in watches if w.show and w in self.watches
                   and now - w.start >= PROGRESS_DELAY]
            if not due:
                return
            for w in due:
                w.shown = True
            self.line.draw([w.progress() for w in due])
            self.last_draw = now


_MONITOR = Monitor()


def runs_in_flight() -> int:
    """How many tracked runs have started and not finished."""
    return len(_MONITOR.watches)


def watch(future: Any, executor: Any, name: str, progress: bool | None,
          recorder: Any = None) -> Watch:
    """Start watching a run: memory always, progress if wanted (see ``wants_progress``).

    ``recorder``: the executor's ``RunRecorder``, the subscriber that counts
    the run's finished tasks for the progress line.
    """
    pids = getattr(executor, "worker_pids", None) or (lambda: [])
    w = Watch(future, pids, name or getattr(executor, "name", ""), wants_progress(progress),
              recorder)
    if not future.done():  # a run done already (inline) is sampled once, by stop()
        w.sample()
        _MONITOR.add(w)
    return w
