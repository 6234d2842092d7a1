"""How fastdag scales: per-task cost over graph size, and peak memory of a large-array chain.

* Tree reduction from 1,024 to 65,536 leaves (``--large`` adds 262,144 and
  1,048,576), graph building included; ``extra_info['per_task_us']`` is
  the fastest round divided by the number of tasks (leaves - 1).
* A chain of 4 tasks passing one float64 array of 256 MB (``--large``:
  also 1 GB and 2 GB): the first task makes it, the next three add 1 to it
  in place and return it, the driver receives it. ``extra_info`` holds the
  peak memory of one extra run (see ``memory.py``): system-wide used memory
  over its baseline (counts /dev/shm, counts shared pages once) and the
  summed RSS of driver and workers, and the peak as a multiple of the array.

Dask runs the very same graphs (``dask_graphs``) where it finishes in
reasonable time: its sync scheduler up to 65,536 leaves, threads up to
16,384, processes up to 4,096 (see ``DASK_TREE_MAX``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        pytest benchmarks/test_bench_scaling.py --benchmark-only --benchmark-json=scaling.json
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastdag as fd
from fastdag.workloads import tree_reduction

import dask_graphs
from memory import MIB, PeakMemory

TREE_QUICK = (1024, 4096, 16384, 65536)
TREE_LARGE = (262_144, 1_048_576)
TREE_ENGINES = ("fastdag-local", "dask-sync", "dask-threads", "dask-processes")
# The largest tree each Dask scheduler gets (seconds to a minute per run at that size).
# Measured under load here: 4,096 leaves took Dask 1 s (sync) to 5 s (threads, processes).
DASK_TREE_MAX = {"dask-sync": 65_536, "dask-threads": 16_384, "dask-processes": 4_096}

CHAIN_QUICK = (256 * MIB,)
CHAIN_LARGE = (1024 * MIB, 2048 * MIB)
CHAIN_ENGINES = ("fastdag-local", "fastdag-threads", "dask-threads", "dask-processes", "dask-distributed")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Sizes depend on ``--large``; ids are ``engine-size`` (the engine is also in extra_info)."""
    large = metafunc.config.getoption("--large")
    if "leaves" in metafunc.fixturenames:
        sizes = TREE_QUICK + (TREE_LARGE if large else ())
        cases = [(e, n) for n in sizes for e in TREE_ENGINES
                 if e.startswith("fastdag") or n <= DASK_TREE_MAX[e]]
        metafunc.parametrize(("engine", "leaves"), cases, ids=[f"{e}-{n}" for e, n in cases])
    if "nbytes" in metafunc.fixturenames:
        sizes = CHAIN_QUICK + (CHAIN_LARGE if large else ())
        cases = [(e, n) for n in sizes for e in CHAIN_ENGINES]
        metafunc.parametrize(("engine", "nbytes"), cases,
                             ids=[f"{e}-{n // MIB}MB" for e, n in cases])


def _scheduler(engine: str, request: pytest.FixtureRequest) -> Any:
    if engine == "dask-distributed":
        return request.getfixturevalue("dask_client")
    return engine.split("-", 1)[1]


def _executor(engine: str, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue({"fastdag-local": "fd_local", "fastdag-threads": "fd_threads",
                                    "fastdag-sync": "fd_sync"}[engine])


def _measure_memory(run: Callable[[], Any], check: Callable[[Any], None]) -> PeakMemory:
    """Peak memory of one more run, after the timed rounds' results are gone."""
    gc.collect()
    with PeakMemory() as peak:
        result = run()
        check(result)
        del result
    return peak


# -- tree reduction ---------------------------------------------------------------------
def test_tree_scaling(benchmark, request, engine: str, leaves: int) -> None:
    values = tree_reduction.leaves(leaves)
    expected = tree_reduction.reference(values)
    if engine.startswith("fastdag"):
        executor = _executor(engine, request)
        run: Callable[[], Any] = lambda: tree_reduction.build(values).compute(executor=executor)
    else:
        built = tree_reduction.build(values)  # fastdag's graph, translated inside the timer
        scheduler = _scheduler(engine, request)
        run = lambda: dask_graphs.compute(built, scheduler=scheduler)
    group = f"tree_scaling-{leaves}"
    benchmark.group = group
    benchmark.extra_info.update(workload=group, engine=engine, size=f"leaves={leaves}", tasks=leaves - 1)
    slow = leaves > 65_536 or (not engine.startswith("fastdag") and leaves >= 16_384)
    rounds = 1 if slow else 3
    result = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    assert result == expected
    del result
    benchmark.extra_info["per_task_us"] = round(benchmark.stats.stats.min / (leaves - 1) * 1e6, 3)

    def check(value: Any) -> None:
        assert value == expected

    peak = _measure_memory(run, check)
    benchmark.extra_info.update(peak.as_info())


# -- a large array through a chain --------------------------------------------------------
@fd.task
def make_array(nbytes: int) -> np.ndarray:
    """The chain's array, made inside the graph so the driver holds no copy of it."""
    return np.ones(nbytes // 8)


@fd.task
def bump(a: np.ndarray) -> np.ndarray:
    """Modify the input in place and pass it on: zero-copy means no copy is made here."""
    a += 1.0
    return a


def chain(nbytes: int) -> fd.Node:
    """Four tasks: make, then three in-place increments."""
    node = make_array(nbytes)
    for _ in range(3):
        node = bump(node)
    return node


def _check_chain(value: np.ndarray, nbytes: int) -> None:
    assert value.nbytes == nbytes // 8 * 8
    assert np.all(value[:: max(1, value.size // 4096)] == 4.0) and value[-1] == 4.0


def test_chain_memory(benchmark, request, engine: str, nbytes: int) -> None:
    if engine.startswith("fastdag"):
        executor = _executor(engine, request)
        run: Callable[[], Any] = lambda: chain(nbytes).compute(executor=executor)
    else:
        built = chain(nbytes)
        scheduler = _scheduler(engine, request)
        run = lambda: dask_graphs.compute(built, scheduler=scheduler)
    group = f"chain_memory-{nbytes // MIB}MB"
    benchmark.group = group
    benchmark.extra_info.update(workload=group, engine=engine, size=f"{nbytes // MIB} MiB", tasks=4)
    rounds = 3 if nbytes <= 256 * MIB else 1
    result = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    _check_chain(result, nbytes)
    del result
    benchmark.extra_info["per_task_ms"] = round(benchmark.stats.stats.min / 4 * 1e3, 2)
    peak = _measure_memory(run, lambda value: _check_chain(value, nbytes))
    benchmark.extra_info.update(peak.as_info())
    benchmark.extra_info["peak_system_x_array"] = round(peak.system / nbytes, 3)
    benchmark.extra_info["peak_rss_sum_x_array"] = round(peak.rss / nbytes, 3)
