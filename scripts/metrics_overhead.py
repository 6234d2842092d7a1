"""Metrics overhead, measured A/B: rotating blocks of runs in three modes.

    python scripts/metrics_overhead.py [--blocks 10] [--runs 8] [--leaves 4096]

Modes: ``untracked`` (``fastdag.metrics.tracking.track`` replaced by a no-op: the
executors without the metrics layer), ``off`` (the default: tracked, no
sink) and ``parquet`` (a Parquet directory sink).

``benchmarks/test_bench_metrics.py`` times each mode in one long block of
rounds, so on a machine shared with other jobs a change of load between the
blocks shows up as overhead (or as a speed-up). Here short blocks of
back-to-back runs rotate through the modes; a block with the sink ends
with ``flush()``, so all the writing its runs caused is inside its time,
even though each run returns before its file is written. An overhead is
the median over rounds of the ratio of two modes' blocks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fastdag as fd
from fastdag.metrics import tracking
from fastdag.metrics.sinkwriter import flush


@fd.task
def add(x, y):
    return x + y


def tree(leaves: int) -> fd.Node:
    level = list(range(leaves))
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def block(ex: fd.LocalExecutor, leaves: int, runs: int, sink: object) -> float:
    """Seconds per run for ``runs`` back-to-back runs (graph building included)."""
    start = time.perf_counter()
    for _ in range(runs):
        ex.compute(tree(leaves), metrics=sink)
    flush()
    return (time.perf_counter() - start) / runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10, help="rounds of the three modes")
    parser.add_argument("--runs", type=int, default=8, help="runs per block")
    parser.add_argument("--leaves", type=int, default=4096)
    args = parser.parse_args(argv)
    real_track = tracking.track
    times: dict[str, list[float]] = {"untracked": [], "off": [], "parquet": []}
    with tempfile.TemporaryDirectory() as tmp, fd.LocalExecutor(workers=2) as ex:
        sinks = {"untracked": False, "off": False, "parquet": Path(tmp) / "metrics"}

        def run(mode: str, runs: int) -> float:
            tracking.track = (lambda *a: None) if mode == "untracked" else real_track
            try:
                return block(ex, args.leaves, runs, sinks[mode])
            finally:
                tracking.track = real_track

        for mode in times:  # warm up: workers, imports, caches
            run(mode, 3)
        modes = list(times)
        for k in range(args.blocks):
            for mode in modes[k % 3:] + modes[:k % 3]:
                times[mode].append(run(mode, args.runs))
    print(f"tree reduction, {args.leaves - 1} tasks, LocalExecutor(workers=2): "
          f"{args.blocks} rounds of 3 blocks of {args.runs} runs")
    for mode, ts in times.items():
        print(f"  {mode:10s} median {statistics.median(ts) * 1e3:7.2f} ms/run, "
              f"best block {min(ts) * 1e3:7.2f} ms/run")
    for a, b in (("off", "untracked"), ("parquet", "off"), ("parquet", "untracked")):
        ratios = [x / y for x, y in zip(times[a], times[b])]
        print(f"  {a} / {b}: median ratio {statistics.median(ratios):.3f}, "
              f"best-block ratio {min(times[a]) / min(times[b]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
