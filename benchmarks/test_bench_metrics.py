"""What metrics cost: a 4,096-leaf tree reduction (4,095 tiny tasks) on LocalExecutor.

* ``untracked``: ``fastdag.metrics.tracking.track`` replaced by a no-op, the
  baseline: what a run costs without the metrics layer (the executors'
  per-task clock reads remain, they are not optional).
* ``off``: ``metrics=False``, the default: no sink, but the run is tracked
  (``fd.last_run()``, peak memory, progress), which every run pays.
* ``parquet``: a Parquet directory sink in tmp; ``compute()`` returns as soon
  as the result is ready, the file is written by the background writer.
* ``parquet-flushed``: the same, but each round also waits until the file is
  written (``sinkwriter.flush()``): the whole cost of persisting a run.

Run: ``pytest benchmarks/test_bench_metrics.py --benchmark-only``.
The overhead is the ratio of the medians to ``off``.
"""

from __future__ import annotations

import pytest

import fastdag as fd
from fastdag.metrics import tracking
from fastdag.metrics.sinkwriter import flush

LEAVES = 4096


@fd.task
def add(x, y):
    return x + y


def tree(leaves: int = LEAVES) -> fd.Node:
    level = list(range(leaves))
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.fixture(scope="module")
def local():
    ex = fd.LocalExecutor(workers=2)
    ex.compute(tree(64))  # start the workers outside the measurement
    yield ex
    ex.shutdown()


@pytest.mark.parametrize("mode", ["untracked", "off", "parquet", "parquet-flushed"])
def test_tree_reduction_metrics(benchmark, local, tmp_path, mode, monkeypatch):
    benchmark.group = "metrics_overhead"
    sink = False if mode in ("untracked", "off") else tmp_path / "metrics"
    if mode == "untracked":
        monkeypatch.setattr(tracking, "track", lambda future, executor, options: None)

    def run() -> int:
        value = local.compute(tree(), metrics=sink)
        if mode == "parquet-flushed":
            flush()
        return value

    result = benchmark.pedantic(run, rounds=40, warmup_rounds=3, iterations=1)
    flush()
    assert result == LEAVES * (LEAVES - 1) // 2
    if sink:
        assert len(list((tmp_path / "metrics").glob("*.parquet"))) == 43
