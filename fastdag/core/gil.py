"""Measuring whether a function holds the GIL while it runs, and remembering it per function.

::

    task running (a pool thread here, or a worker process's main thread)
        │                           GilSampler thread: sleeps ``interval``, wakes;
        │                           a wake-up late by more than the CPU run queue
        │                           explains was waiting for the GIL: that cycle
        │                           counts as "GIL held" (``held`` grows)
        ▼
    held seconds during the task  ──>  GilProfile: per function, wall and held seconds
                                                   (placement reads the fraction)

Why a sampler: a thread that wants the GIL waits until the holder drops it,
which pure-Python code does only every ``sys.getswitchinterval()`` (5 ms),
while numpy, pandas and Pillow drop it for their whole C loops. So a thread
that sleeps 2 ms and wakes promptly saw the GIL free; one that wakes ~5 ms
late saw it held. Lateness caused by a busy CPU (other processes on the
machine) is not GIL: the kernel's count of time the sampler spent waiting on
the run queue (``/proc/thread-self/schedstat``) is subtracted.

In a worker process only one task runs at a time, so the held time during a
task is that task's. On a pool of threads it is the process's: tasks that
overlap share the blame (placement then errs toward processes, the old
behaviour).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where the client's profile uses it: workers never do
    import numpy as np

INTERVAL = 0.002      # sampler sleep
LATE = 0.001          # GIL wait beyond this (after the run queue) counts as held
MIN_SAMPLED_S = 0.02  # a function's fraction is trusted after this much sampled run time
MIN_TASK_S = 0.004    # tasks shorter than two sampler cycles are not sampled one by one
MIN_WINDOW_S = 0.05   # ... but their summed runs are, once this long (see ``window_s``)
ENOUGH_SAMPLED_S = 1.0  # a function sampled this long is sampled again one run in ``RESAMPLE_EVERY``
RESAMPLE_EVERY = 8
QUIET_SLACK_S = 20e-6  # wall time beyond twice the CPU time and this: the run waited


class GilSampler:
    """A daemon thread that adds up the time the GIL was held while anyone is ``inside()``."""

    def __init__(self, interval: float = INTERVAL):
        self.interval = interval
        self.held = 0.0  # seconds judged "GIL held", only ever grows
        self._active = threading.Event()
        self._users = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def enter(self) -> None:
        with self._lock:
            self._users += 1
            self._active.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="fastdag-gil-sampler",
                                                daemon=True)
                self._thread.start()

    def exit(self) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                self._active.clear()

    def _loop(self) -> None:
        queue_wait = _run_queue_clock()
        clock, sleep, interval = time.perf_counter, time.sleep, self.interval
        while True:
            self._active.wait()
            before = clock()
            queued = queue_wait()
            sleep(interval)
            late = clock() - before - interval
            if late > LATE and late - (queue_wait() - queued) > LATE:
                self.held += interval + late


def _run_queue_clock() -> Callable[[], float]:
    """Seconds this thread has waited for a CPU (Linux schedstat), or a clock of zeros."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return lambda: 0.0

    def read() -> float:
        try:
            return int(os.pread(fd, 128, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0
    return read


@dataclass
class FunctionStats:
    """What runs of one function showed: run count, wall seconds, GIL-held seconds of sampled runs."""

    runs: int = 0
    wall_s: float = 0.0
    sampled_s: float = 0.0   # wall time of the runs long enough to sample
    held_s: float = 0.0      # GIL-held seconds within those runs
    quiet_runs: int = 0      # runs that did not wait (see ``typical_s``)
    quiet_s: float = 0.0     # their wall time
    window_s: float = 0.0    # summed wall time of runs too short to sample one by one
    window_held_s: float = 0.0  # GIL-held seconds seen during them, summed unclamped

    @property
    def mean_s(self) -> float:
        return self.wall_s / self.runs if self.runs else 0.0

    @property
    def typical_s(self) -> float:
        """Run time when the function does not wait for the GIL: the mean of the quiet runs.

        On a pool, a tiny pure-Python task that loses the GIL to another
        thread waits out a whole switch interval (5 ms) for a microsecond of
        work; those runs (thread CPU time far below wall time) would make it
        look thousands of times slower than it runs alone. A function that
        waits for something else (I/O, sleep) is rarely quiet: its mean is
        kept.
        """
        if self.quiet_runs * 2 >= self.runs and self.quiet_runs:
            return self.quiet_s / self.quiet_runs
        return self.mean_s

    @property
    def held_fraction(self) -> float | None:
        """Share of its run time the function held the GIL; None until measured enough.

        A function whose runs are typically too short to sample one by one
        is judged by the sum of those runs (``window_s``), not by the few
        long enough to sample, which were preempted, not representative.
        One short run sees a whole sampler cycle of GIL held or none of it,
        wherever the cycle ended; summed over many runs, the cycles land in
        them in proportion to the time they took, so the sum measures the
        share (a 2 ms pandas groupby chunk, which would otherwise count as
        holding the GIL throughout and send its graph to the processes).
        """
        if self.mean_s < MIN_TASK_S:
            if self.window_s < MIN_WINDOW_S:
                return None
            return min(1.0, self.window_held_s / self.window_s)
        if self.sampled_s < MIN_SAMPLED_S:
            return None
        return min(1.0, self.held_s / self.sampled_s)


def function_key(func: Callable) -> Hashable:
    """One key per behaviour: a Python function's code (all lambdas of one line share it)."""
    code = getattr(func, "__code__", None)
    if code is not None:
        return code
    try:
        hash(func)
        return func
    except TypeError:
        return type(func)


class GilProfile:
    """Per function (see ``function_key``): the ``FunctionStats`` of every run measured."""

    def __init__(self) -> None:
        self._stats: dict[Hashable, FunctionStats] = {}
        self._lock = threading.Lock()
        self._runs = 0  # runs asked about by ``wants_samples``

    def get(self, func: Callable) -> FunctionStats | None:
        return self._stats.get(function_key(func))

    def record(self, func: Callable, wall_s: float, held_s: float | None,
               cpu_s: float | None = None) -> None:
        """One run: its wall time, the GIL-held part if sampled, its thread CPU time if measured.

        A run without a CPU time (a worker process's, one thread at work)
        counts as quiet; one whose wall time is well above its CPU time waited.
        """
        with self._lock:
            stats = self._entry(func)
            stats.runs += 1
            stats.wall_s += wall_s
            if cpu_s is None or wall_s <= 2 * cpu_s + QUIET_SLACK_S:
                stats.quiet_runs += 1
                stats.quiet_s += wall_s
            if held_s is None:
                return
            if wall_s >= MIN_TASK_S:
                stats.sampled_s += wall_s
                stats.held_s += min(held_s, wall_s)
            else:
                stats.window_s += wall_s
                stats.window_held_s += held_s

    def record_window(self, func: Callable, wall_s: float, held_s: float) -> None:
        """Summed runs too short to sample one by one (a worker's batch of them): their
        wall and GIL-held seconds, toward ``held_fraction`` only (their run times are
        learned from run records)."""
        with self._lock:
            stats = self._entry(func)
            stats.window_s += wall_s
            stats.window_held_s += held_s

    def record_durations(self, func: Callable, durations: Any) -> None:
        """Runs too short to sample (a numpy array of wall seconds), as one update.

        Runs far longer than the typical one (twenty times the median) were
        preempted by another process, not slow: they count in the mean, not
        in ``typical_s``.
        """
        if not len(durations):
            return
        cutoff = 20 * _median(durations) + QUIET_SLACK_S
        quiet = durations[durations <= cutoff]
        with self._lock:
            stats = self._entry(func)
            stats.runs += len(durations)
            stats.wall_s += float(durations.sum())
            stats.quiet_runs += len(quiet)
            stats.quiet_s += float(quiet.sum())

    def record_tasks(self, tasks: list, durations: np.ndarray) -> None:
        """``durations[i]`` as a run of ``tasks[i].func``, one ``record_durations`` per function."""
        if tasks and tasks.count(tasks[0]) == len(tasks):  # one function: no grouping (a C scan)
            self.record_durations(tasks[0].func, durations)
            return
        import numpy as np
        ids = np.fromiter(map(id, tasks), dtype=np.int64, count=len(tasks))
        _keys, first, group = np.unique(ids, return_index=True, return_inverse=True)
        if len(first) == 1:
            self.record_durations(tasks[0].func, durations)
            return
        for k, i in enumerate(first):
            self.record_durations(tasks[i].func, durations[group == k])

    def wants_samples(self, tasks: list) -> bool:
        """Whether a run of ``tasks`` (objects with a ``func``) on threads should keep the
        sampler on: while one of their functions has less than ``ENOUGH_SAMPLED_S`` of
        sampled time, then one run in ``RESAMPLE_EVERY``, to follow a change.

        The sampler is not free on threads: it wakes every 2 ms and takes the
        GIL from the tasks, ~2 ms of CPU in a 30 ms pandas run (6%).
        """
        with self._lock:
            self._runs += 1
            if self._runs % RESAMPLE_EVERY == 0:
                return True
        for task in set(tasks):  # Tasks hash by identity
            stats = self.get(task.func)
            if stats is None or stats.sampled_s + stats.window_s < ENOUGH_SAMPLED_S:
                return True
        return False

    def mean_typical_s(self, tasks: list) -> float | None:
        """The mean ``typical_s`` of ``tasks`` (objects with a ``func``, repeats counted);
        None if a function among them was never measured."""
        total = 0.0
        for task, count in collections.Counter(tasks).items():  # Tasks hash by identity
            stats = self.get(task.func)
            if stats is None or not stats.runs:
                return None
            total += count * stats.typical_s
        return total / len(tasks) if tasks else None

    def _entry(self, func: Callable) -> FunctionStats:
        key = function_key(func)
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = FunctionStats()
        return stats

    def summary(self) -> dict[str, dict[str, Any]]:
        """Readable per-function figures, for the README and debugging."""
        return {getattr(k, "co_qualname", getattr(k, "__name__", repr(k))):
                {"runs": s.runs, "mean_s": s.mean_s, "typical_s": s.typical_s,
                 "held_fraction": s.held_fraction}
                for k, s in list(self._stats.items())}


def _median(values: np.ndarray) -> float:
    """The median of a non-empty array: ``np.median`` without the import of numpy.ma
    (tens of ms, on the first compute of a process) that its first call makes."""
    import numpy as np
    n = len(values)
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, [k - 1, k])
    return float(part[k - 1] + part[k]) / 2
