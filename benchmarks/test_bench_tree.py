"""Tree reduction of 4,096 leaves (4,095 add tasks), graph building included.

fastdag's three executors against Dask's sync, threads and processes
schedulers in the same run. Run:

    pytest benchmarks/test_bench_tree.py --benchmark-only --benchmark-json=bench-tree.json
"""

from __future__ import annotations

import operator

import pytest

import fastdag as fd

LEAVES = 4096
EXPECTED = LEAVES * (LEAVES - 1) // 2


def add(x, y):
    return x + y


fd_add = fd.task(add)


def fastdag_tree(n: int) -> fd.Node:
    level = list(range(n))
    while len(level) > 1:
        level = [fd_add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def dask_tree(n: int):
    import dask
    d_add = dask.delayed(operator.add, pure=False)
    level = list(range(n))
    while len(level) > 1:
        level = [d_add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.benchmark(group="tree_reduction")
@pytest.mark.parametrize("engine", ["fastdag-local", "fastdag-threads", "fastdag-sync"])
def test_tree_reduction_fastdag(benchmark, engine, fd_local, fd_threads):
    executor = {"fastdag-local": fd_local, "fastdag-threads": fd_threads,
                "fastdag-sync": fd.SyncExecutor()}[engine]
    fastdag_tree(64).compute(executor=executor)  # start the workers outside the timing
    result = benchmark(lambda: fastdag_tree(LEAVES).compute(executor=executor))
    assert result == EXPECTED


@pytest.mark.benchmark(group="tree_reduction")
@pytest.mark.parametrize("engine", ["dask-sync", "dask-threads", "dask-processes"])
def test_tree_reduction_dask(benchmark, engine):
    scheduler = engine.split("-", 1)[1]
    result = benchmark.pedantic(lambda: dask_tree(LEAVES).compute(scheduler=scheduler),
                                rounds=3, iterations=1, warmup_rounds=1)
    assert result == EXPECTED
