"""DaskExecutor and RayExecutor against a real two-worker LocalCluster and a real local Ray."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import fastdag as fd
from fastdag.cli import main
from fastdag.bridges.engine_executor import LARGE_ARRAY, split_plan
from fastdag.core.plan import Ref, build_plan


@pytest.fixture(scope="module")
def dask_executor():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield fd.DaskExecutor(client)


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    ex = fd.RayExecutor(num_cpus=2, include_dashboard=False)
    yield ex
    ex.shutdown()


@pytest.fixture(params=["dask", "ray"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_executor")


@fd.task
def add(a, b):
    return a + b


def tree(n: int):
    leaves = [add(i, 1) for i in range(n)]
    while len(leaves) > 1:
        leaves = [add(a, b) for a, b in zip(leaves[::2], leaves[1::2])]
    return leaves[0]


def test_results_records_and_report(engine, tmp_path, capsys):
    root = tree(64)
    future = engine.submit([root, add(2, 3)])
    assert future.result(timeout=120) == (sum(range(1, 65)), 5)
    metrics_path = tmp_path / "m.parquet"
    assert fd.compute(root, executor=engine, metrics=metrics_path, name="tree64") == \
        (sum(range(1, 65)),)
    report = fd.last_run()
    assert report.run.executor == engine.name and report.run.tasks == 127
    assert len(report.tasks) == 127 and report.has_deps
    workers = {t.worker for t in report.tasks}
    assert workers and all(not w.endswith(f":{os.getpid()}") for w in workers), workers
    assert all(t.task_key.startswith("add-") and t.output_bytes > 0 for t in report.tasks)
    assert main(["report", str(metrics_path), "-o", str(tmp_path / "plots")]) == 0
    assert "tree64" in capsys.readouterr().out


def test_task_error_with_worker_traceback_and_retries(engine):
    calls = []

    @fd.task(retries=1)
    def flaky(x):
        calls.append(x)  # the worker's copy of the closure counts the attempts
        if len(calls) < 2:
            raise OSError("first attempt fails")
        return x * 10

    @fd.task
    def broken(x):
        return {}[x]

    assert engine.compute(flaky(4)) == 40
    assert fd.last_run().tasks[0].retries == 1
    with pytest.raises(fd.TaskError, match="broken") as info:
        engine.compute(add(broken(add(1, 2)), 1))
    assert isinstance(info.value.__cause__, KeyError)
    assert "in broken" in info.value.remote_traceback


class _Unpicklable(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def test_an_exception_that_will_not_pickle_is_still_described(engine):
    """The engine pickles what a task raised: one that cannot be pickled still
    reaches the caller as the task's TaskError, with its type and traceback."""
    @fd.task
    def locked(x):
        raise _Unpicklable()

    with pytest.raises(fd.TaskError, match=r"task 'locked-\d+' raised _Unpicklable") as info:
        engine.compute(locked(1))
    assert "in locked" in info.value.remote_traceback


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()], ids=["exit", "interrupt"])
def test_exit_or_interrupt_in_a_task_is_that_task_failure(engine, raised):
    """sys.exit() or a KeyboardInterrupt raised by a task's code fails that task
    (a TaskError naming it, the exception as its cause), as on the local executors,
    and the engine's worker keeps running the next graph."""
    @fd.task
    def leaves(x):
        raise raised

    with pytest.raises(fd.TaskError, match="leaves") as info:
        engine.compute(add(leaves(1), 1))
    assert type(info.value.__cause__) is type(raised)
    assert "in leaves" in info.value.remote_traceback
    assert engine.compute(add(1, 2)) == 3


def test_large_arrays_go_through_the_engine_store(engine):
    big = np.arange(LARGE_ARRAY // 8 + 1000, dtype=np.float64)
    doubled = add(big, big)
    assert engine.compute(add(doubled, big)[-1:]).tolist() == [3 * big[-1]]
    # lifted once, referred to by both tasks that capture it
    put = []
    graph = split_plan(build_plan(add(add(big, 1), big).dag), lambda a: put.append(a) or "ref")
    assert len(put) == 1 and put[0] is big
    n = len(graph.specs)
    refs = [a.i for spec in graph.specs for a in spec.call_args if type(a) is Ref and a.i >= n]
    assert len(refs) == 2 and set(refs) == set(graph.constants)


def test_cancel_stops_the_run(engine, tmp_path):
    @fd.task
    def step(prev, n):
        (tmp_path / f"ran-{n}").touch()
        time.sleep(1)
        return n

    node = None
    for n in range(4):
        node = step(node, n)
    future = engine.submit(node)
    while not list(tmp_path.iterdir()):  # the first step has started
        time.sleep(0.05)
    assert future.cancel()
    with pytest.raises(Exception):
        future.result(timeout=1)
    time.sleep(4.5)  # long enough for all four steps, had the run gone on
    assert len(list(tmp_path.iterdir())) <= 2, sorted(p.name for p in tmp_path.iterdir())
    assert engine.compute(add(5, 6)) == 11  # the executor is still usable
