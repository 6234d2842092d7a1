"""The same graphs on every local executor: results, sharing, concurrency."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

import fastdag as fd
from tasks import add, inc, total


@fd.task
def nothing():
    return None


@fd.task
def pid_of(_):
    return os.getpid()


@fd.task(nout=3)
def split3(x):
    return x, x * 2, x * 3


@fd.task
def chunks(n):
    return [list(range(i, i + 3)) for i in range(0, 3 * n, 3)]


def tree(n: int) -> fd.Node:
    level: list = list(range(n))
    while len(level) > 1:
        pairs = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def test_single_node(executor):
    assert inc(1).compute(executor=executor) == 2


def test_node_without_node_arguments_and_none_result(executor):
    assert nothing().compute(executor=executor) is None
    assert fd.compute(nothing(), inc(0), executor=executor) == (None, 1)


def test_diamond(executor):
    top = inc(0)
    assert add(inc(top), add(top, 10)).compute(executor=executor) == 13


@pytest.mark.parametrize("n", [1024, 4096])
def test_tree_reduction(executor, n):
    assert tree(n).compute(executor=executor) == n * (n - 1) // 2


def test_wide_fan_out_and_fan_in(executor):
    root = inc(0)
    leaves = [add(root, i) for i in range(500)]
    assert total(leaves).compute(executor=executor) == sum(1 + i for i in range(500))


def test_deep_chain(executor):
    node = inc(0)
    for _ in range(10_000):
        node = inc(node)
    assert node.compute(executor=executor) == 10_001


def test_nested_arguments(executor):
    a, b = inc(1), inc(2)

    @fd.task
    def combine(lists, mapping, *, extra):
        return sum(sum(x) for x in lists) + sum(mapping.values()) + sum(extra)

    node = combine([[a, b], [a, 1]], {"x": b, "y": 5}, extra={a, 100})
    assert node.compute(executor=executor) == (2 + 3 + 2 + 1) + (3 + 5) + (2 + 100)


def test_shared_node_runs_once(executor, tmp_path):
    marker = tmp_path / "runs"

    @fd.task
    def counted(x):
        with open(marker, "a") as f:
            f.write("x")
        return x

    shared = counted(5)
    assert fd.compute(add(shared, 1), add(shared, 2), executor=executor) == (6, 7)
    assert marker.read_text() == "x"


def test_overlapping_outputs_and_same_node_twice(executor):
    shared = inc(1)
    a, b = add(shared, 1), add(shared, 2)
    assert fd.compute(a, b, a, executor=executor) == (3, 4, 3)
    assert fd.compute(shared, 7, executor=executor) == (2, 7)


def test_disconnected_outputs(executor):
    assert executor.compute(inc(1), inc(10), tree(8)) == (2, 11, 28)


def test_getitem_and_nout(executor):
    a, b, c = split3(2)
    assert fd.compute(add(a, b), inc(c), executor=executor) == (6, 7)
    parts = chunks(4)
    sums = [total(parts[i]) for i in range(4)]
    assert total(sums).compute(executor=executor) == sum(range(12))


def test_compute_again_reuses_the_graph(executor):
    node = tree(64)
    assert node.compute(executor=executor) == node.compute(executor=executor) == 2016


def test_closures_and_lambdas(executor):
    offset = 41
    add_offset = fd.task(lambda x: x + offset)
    assert add_offset(inc(0)).compute(executor=executor) == 42


def test_numpy_results(executor):
    @fd.task
    def make(n):
        return np.arange(n, dtype=np.float64)

    @fd.task
    def scale(a, k):
        return a * k

    big, small = make(200_000), make(10)
    out_big, out_small = fd.compute(scale(big, 2), scale(small, 3), executor=executor)
    np.testing.assert_array_equal(out_big, np.arange(200_000) * 2.0)
    np.testing.assert_array_equal(out_small, np.arange(10) * 3.0)
    assert out_big.flags.writeable and out_small.flags.writeable


def test_many_dags_at_once(executor):
    futures = [executor.submit(tree(256 + k)) for k in range(8)]
    results = [f.result(timeout=60) for f in futures]
    assert results == [sum(range(256 + k)) for k in range(8)]


def test_compute_async_and_acompute(executor):
    future = tree(32).compute_async(executor=executor)
    assert future.result(timeout=30) == 496

    async def main():
        return await fd.acompute(inc(1), inc(2), executor=executor)

    assert asyncio.run(main()) == (2, 3)


def test_local_executor_runs_tasks_in_other_processes(local_executor):
    pids = fd.compute(*[pid_of(i) for i in range(8)], executor=local_executor)
    assert os.getpid() not in pids


def test_default_executor_is_reused():
    first = fd.get_default_executor()
    assert inc(1).compute() == 2
    assert fd.get_default_executor() is first
    assert isinstance(first, fd.LocalExecutor)


def test_set_default_executor():
    sync = fd.SyncExecutor()
    previous = fd.set_default_executor(sync)
    try:
        assert fd.get_default_executor() is sync
        assert inc(1).compute() == 2
    finally:
        fd.set_default_executor(previous)
    with pytest.raises(TypeError):
        fd.set_default_executor("not an executor")


def test_executor_context_manager_and_compute_forms():
    with fd.ThreadExecutor(workers=2) as ex:
        a, b = inc(1), inc(2)
        assert ex.compute(a) == 2
        assert ex.compute(a, b) == (2, 3)
        assert fd.compute(a, b, executor=ex) == (2, 3)
        assert ex.submit(a).result() == 2
        assert ex.submit([a, b]).result() == (2, 3)


def test_submit_rejects_non_nodes(executor):
    with pytest.raises(TypeError):
        executor.submit(42)
    with pytest.raises(TypeError):
        fd.compute_async(1)


def test_unknown_compute_option(executor):
    with pytest.raises(TypeError, match="unknown"):
        inc(1).compute(executor=executor, colour="red")


def test_thread_executor_frees_a_finished_run_without_the_garbage_collector():
    import gc
    import weakref

    @fd.task
    def make():
        return np.ones(1000)

    ex = fd.ThreadExecutor(workers=2)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        future = ex.submit(make())
        ref = weakref.ref(future.result())
        del future
        deadline = time.time() + 5
        while ref() is not None and time.time() < deadline:
            time.sleep(0.01)  # the pool thread drops its work item after the run resolves
        assert ref() is None, "a reference cycle keeps the finished run's result alive"
    finally:
        if was_enabled:
            gc.enable()
        ex.shutdown()
