"""Peak memory of a run, sampled from a background thread.

Two measures, because each misses something:

* system: MemTotal - MemAvailable from /proc/meminfo. It counts /dev/shm
  segments (which belong to no process) and counts a shared page once, but
  it also sees anything else running on the machine, so it is taken
  relative to a baseline just before the run.
* RSS: the sum of resident set sizes over the driver and all its child
  processes (fastdag and Dask workers), via psutil, as issue 5 asks. Pages
  shared between processes (a mapped shared-memory segment) count once per
  process here, and shared memory nobody maps counts not at all.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import psutil

MIB = 1 << 20


def used_bytes() -> int:
    """MemTotal - MemAvailable, in bytes."""
    values: dict[str, int] = {}
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            key, _, rest = line.partition(b":")
            if key in (b"MemTotal", b"MemAvailable"):
                values[key.decode()] = int(rest.split()[0]) * 1024
                if len(values) == 2:
                    break
    return values["MemTotal"] - values["MemAvailable"]


def rss_bytes(root: psutil.Process) -> int:
    """Resident bytes of ``root`` and all its descendants (those that vanish are skipped)."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakMemory:
    """``with PeakMemory() as peak: run()``; then ``peak.system`` and ``peak.rss`` (bytes over baseline).

    /proc/meminfo is read every ``interval`` seconds (cheap); the process
    tree's RSS every ``rss_every`` samples, since walking it costs more.
    """

    def __init__(self, interval: float = 0.005, rss_every: int = 4, settle: float = 0.5):
        self.interval = interval
        self.rss_every = rss_every
        self.settle = settle
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.base_system = self.base_rss = 0
        self.max_system = self.max_rss = 0

    def _sample(self, with_rss: bool) -> None:
        self.max_system = max(self.max_system, used_bytes())
        if with_rss:
            self.max_rss = max(self.max_rss, rss_bytes(self._proc))

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._sample(n % self.rss_every == 0)
            n += 1
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        # Memory of an earlier run may still be on its way back (a scheduler thread
        # unlinking segments, a worker freeing its arrays): take the lowest reading
        # over a short quiet period as the baseline, not one instant.
        deadline = time.monotonic() + self.settle
        self.base_system, self.base_rss = used_bytes(), rss_bytes(self._proc)
        while time.monotonic() < deadline:
            time.sleep(0.02)
            self.base_system = min(self.base_system, used_bytes())
            self.base_rss = min(self.base_rss, rss_bytes(self._proc))
        self.max_system, self.max_rss = self.base_system, self.base_rss
        self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(True)

    @property
    def system(self) -> int:
        """Peak of MemTotal - MemAvailable over the baseline, bytes."""
        return max(0, self.max_system - self.base_system)

    @property
    def rss(self) -> int:
        """Peak summed RSS of driver + workers over the baseline, bytes."""
        return max(0, self.max_rss - self.base_rss)

    def as_info(self, prefix: str = "") -> dict[str, float]:
        """For ``benchmark.extra_info``: peaks and baselines in MiB."""
        return {f"{prefix}peak_system_mib": round(self.system / MIB, 1),
                f"{prefix}peak_rss_sum_mib": round(self.rss / MIB, 1),
                f"{prefix}baseline_rss_sum_mib": round(self.base_rss / MIB, 1)}
