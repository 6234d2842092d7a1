"""Tree reduction of 4,096 leaves (4,095 add tasks), graph building included.

fastdag's three executors against Dask's sync, threads and processes
schedulers (the processes one both with its default new pool per compute and
with one reused pool) in the same run, every engine with the same rounds
(``ROUNDS`` after one warm-up round) and BLAS budget (``engines.py``). Run:

    pytest benchmarks/test_bench_tree.py --benchmark-only --benchmark-json=bench-tree.json
"""

from __future__ import annotations

import operator

import pytest
from engines import blas_budget, dask_scheduler

import fastdag as fd

LEAVES = 4096
EXPECTED = LEAVES * (LEAVES - 1) // 2
ROUNDS = 5


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


def timed(benchmark, engine: str, run) -> int:
    """``run`` timed over ROUNDS rounds after one warm-up, under ``engine``'s BLAS budget."""
    benchmark.extra_info.update(workload="tree_reduction", engine=engine, size=f"leaves={LEAVES}")
    with blas_budget(engine):
        return benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="tree_reduction")
@pytest.mark.parametrize("engine", ["fastdag-local", "fastdag-threads", "fastdag-sync"])
def test_tree_reduction_fastdag(benchmark, engine, fd_local, fd_threads):
    executor = {"fastdag-local": fd_local, "fastdag-threads": fd_threads,
                "fastdag-sync": fd.SyncExecutor()}[engine]
    result = timed(benchmark, engine, lambda: fastdag_tree(LEAVES).compute(executor=executor))
    assert result == EXPECTED


@pytest.mark.benchmark(group="tree_reduction")
@pytest.mark.parametrize("engine", ["dask-sync", "dask-threads", "dask-processes",
                                    "dask-processes-pool"])
def test_tree_reduction_dask(benchmark, engine, request):
    scheduler = engine.split("-")[1]
    pool = request.getfixturevalue("dask_pool") if engine.endswith("-pool") else None
    with dask_scheduler(engine, pool):
        result = timed(benchmark, engine,
                       lambda: dask_tree(LEAVES).compute(scheduler=scheduler))
    assert result == EXPECTED
