"""Distributed mode: RedisExecutor with two local workers against dask.distributed.

Both sides get two single-threaded worker processes on this machine:
``fastdag worker --concurrency 2`` on a private redis-server, and a
``LocalCluster(n_workers=2, threads_per_worker=1)``. Both run the same
functions (the workloads library's) in graphs of the same shape, graph
building included. Run:

    pytest benchmarks/test_bench_redis.py --benchmark-only -p no:cacheprovider
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastdag as fd
from fastdag.workloads import gemm, tree_reduction

pytestmark = pytest.mark.redis

LEAVES = 4096
GEMM_N = int(os.environ.get("FASTDAG_BENCH_GEMM_N", "4000"))
GEMM_BLOCK = int(os.environ.get("FASTDAG_BENCH_GEMM_BLOCK", "1000"))
SECRET = "benchmark-secret"


def _redis_server_class():
    path = Path(__file__).resolve().parent.parent / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_fastdag_tests_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RedisServer


@pytest.fixture(scope="module")
def redis_executor(tmp_path_factory):
    server = _redis_server_class()(tmp_path_factory.mktemp("redis"))
    server.start()
    env = {**os.environ, "FASTDAG_SECRET": SECRET}
    workers = subprocess.Popen([sys.executable, "-m", "fastdag.cli", "worker", "--redis",
                                server.url, "--concurrency", "2"], env=env)
    ex = fd.RedisExecutor(server.url, secret=SECRET)
    try:
        deadline = time.time() + 30
        while len(ex.workers()) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(ex.workers()) == 2, "the workers did not start"
        tree_reduction.build(64).compute(executor=ex)      # warm up outside the timing
        yield ex
    finally:
        ex.shutdown(wait=False)
        from fastdag.metrics import sinkwriter
        sinkwriter.flush(timeout=30)        # reports reach the Redis sink before it stops
        workers.terminate()
        workers.wait(timeout=30)
        server.stop()


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def dask_tree(n: int):
    import dask
    add = dask.delayed(tree_reduction.add.func, pure=False)
    level = tree_reduction.leaves(n)
    while len(level) > 1:
        level = [add(level[k], level[k + 1]) if k + 1 < len(level) else level[k]
                 for k in range(0, len(level), 2)]
    return level[0]


def dask_gemm(n: int, block: int):
    """The same blocked product as ``gemm.build(n, block=block)``, in dask.delayed."""
    import dask
    delayed = dask.delayed
    spans = [(s, min(s + block, n)) for s in range(0, n, block)]
    rand = delayed(gemm.random_block.func, pure=False)
    ga = [[rand(0, 0, i, j, r1 - r0, c1 - c0) for j, (c0, c1) in enumerate(spans)]
          for i, (r0, r1) in enumerate(spans)]
    gb = [[rand(0, 1, i, j, r1 - r0, c1 - c0) for j, (c0, c1) in enumerate(spans)]
          for i, (r0, r1) in enumerate(spans)]
    prod = delayed(gemm.block_product.func, pure=False)
    bsum = delayed(gemm.block_sum.func, pure=False)
    out = [[bsum([prod(ga[i][k], gb[k][j]) for k in range(len(spans))])
            for j in range(len(spans))] for i in range(len(spans))]
    return delayed(gemm.assemble.func, pure=False)(out)


@pytest.mark.benchmark(group="redis-tree_reduction")
def test_tree_reduction_redis(benchmark, redis_executor):
    expected = tree_reduction.reference(LEAVES)
    result = benchmark.pedantic(lambda: tree_reduction.build(LEAVES).compute(
        executor=redis_executor), rounds=3, iterations=1, warmup_rounds=1)
    assert result == expected


@pytest.mark.benchmark(group="redis-tree_reduction")
def test_tree_reduction_dask_distributed(benchmark, dask_client):
    expected = tree_reduction.reference(LEAVES)
    result = benchmark.pedantic(lambda: dask_tree(LEAVES).compute(), rounds=3, iterations=1,
                                warmup_rounds=1)
    assert result == expected


@pytest.mark.benchmark(group="redis-gemm")
def test_gemm_redis(benchmark, redis_executor):
    result = benchmark.pedantic(lambda: gemm.build(GEMM_N, block=GEMM_BLOCK).compute(
        executor=redis_executor), rounds=3, iterations=1, warmup_rounds=1)
    _check_gemm(result)


@pytest.mark.benchmark(group="redis-gemm")
def test_gemm_dask_distributed(benchmark, dask_client):
    result = benchmark.pedantic(lambda: dask_gemm(GEMM_N, GEMM_BLOCK).compute(), rounds=3,
                                iterations=1, warmup_rounds=1)
    _check_gemm(result)


def _check_gemm(c: np.ndarray) -> None:
    assert c.shape == (GEMM_N, GEMM_N)
    a, b = gemm.generated_input(GEMM_N, GEMM_BLOCK)
    rows = slice(0, min(GEMM_N, 200))      # a sample of rows keeps the check cheap
    np.testing.assert_allclose(c[rows], a[rows] @ b, rtol=1e-9)
