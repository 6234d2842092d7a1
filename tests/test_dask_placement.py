"""Dask graphs on the default executor's placement: threads once their functions are known GIL-free.

``fastdag.dask.get`` (and ``ex.dask_get`` on a ``placement="auto"``
executor) judge a Dask graph's Plan as ``submit`` judges a DAG, per Dask
task function. On threads the copy-on-write guarantee holds as for DAGs.
Nothing here is timed: the profile is fed explicitly, or learned from
sleeps (GIL-free by construction) with generous deadlines.
"""

from __future__ import annotations

import os
import time
from operator import add

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
from dask._task_spec import DataNode, List, Task, TaskRef  # noqa: E402

import fastdag as fd  # noqa: E402
import fastdag.dask  # noqa: E402
import fastdag.core.gil  # noqa: E402
from fastdag.bridges.dask_graph import to_plan  # noqa: E402


@pytest.fixture
def auto():
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        assert ex.compute(fd.task(abs)(-1)) == 1
        ex.start_workers()  # a tiny graph needs no worker: started here (see lazystart.py)
        assert ex.placement.ready.wait(60), "workers never said they were up"
        yield ex


def _known_gil_free(ex: fd.LocalExecutor, dsk, keys) -> None:
    """Tell the profile every function of this graph ran 10 ms without holding the GIL."""
    for task in to_plan(dsk, keys).plan.tasks:
        for _ in range(3):
            ex.placement.profile.record(task.func, 0.01, 0.0)


def _learning(ex: fd.LocalExecutor):
    """A Dask scheduler that marks the graph it is given GIL-free, then runs it with Dask's."""
    def get(dsk, keys, **kwargs):
        _known_gil_free(ex, dsk, keys)
        return dask.get(dsk, keys)
    return get


def _placement() -> str:
    return fd.last_run().run.settings.get("placement", "processes")


def _nap_pid(seconds: float, _i: int) -> int:
    time.sleep(seconds)  # releases the GIL
    return os.getpid()


def test_a_gil_releasing_dask_graph_runs_on_threads_once_learned(auto):
    naps = [dask.delayed(_nap_pid, pure=False)(0.02, i) for i in range(6)]
    # never seen: the worker processes run it, and measure it
    pids = set(dask.compute(*naps, scheduler=auto.dask_get))
    assert os.getpid() not in pids and _placement() == "processes"
    # once measured GIL-free (a loaded machine may take a few runs to convince
    # the sampler), threads of this process run it
    deadline = time.monotonic() + 60
    while True:
        pids = set(dask.compute(*naps, scheduler=auto.dask_get))
        if _placement() == "threads":
            break
        assert os.getpid() not in pids
        assert time.monotonic() < deadline, auto.placement.profile.summary()
    assert pids == {os.getpid()}
    assert auto.placement.profile.get(_nap_pid).held_fraction is not None


def _python_loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i % 7
    return total


def test_a_pure_python_dask_graph_stays_on_the_processes(auto):
    loops = [dask.delayed(_python_loop, pure=False)(2_000_000) for _ in range(4)]
    expected = dask.compute(*loops, scheduler="sync")
    for _ in range(3):
        assert dask.compute(*loops, scheduler=auto.dask_get) == expected
        assert _placement() == "processes"
    assert auto.placement.profile.get(_python_loop) is not None


def test_array_and_dataframe_on_threads_equal_sync(auto):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    x = da.random.RandomState(0).random_sample((300, 200), chunks=(60, 50))
    expr = x.sum(axis=0) + x[::3].mean() - x.T[:, 5:9].sum(axis=1).sum()
    frame = pd.DataFrame({"k": np.arange(2000) % 7, "v": np.arange(2000.0)})
    agg = dd.from_pandas(frame, npartitions=4).groupby("k").v.agg(["sum", "mean", "count"])
    for collection in (expr, agg):  # the graphs as compute() optimises them
        collection.compute(scheduler=_learning(auto))
    got_expr, got_agg = expr.compute(scheduler=auto.dask_get), agg.compute(scheduler=auto.dask_get)
    assert _placement() == "threads"
    np.testing.assert_array_equal(got_expr, expr.compute(scheduler="sync"))
    assert got_expr.flags.writeable
    pd.testing.assert_frame_equal(got_agg, agg.compute(scheduler="sync"))
    assert (frame["k"] == np.arange(2000) % 7).all()


def _bump(a: np.ndarray) -> np.ndarray:
    a += 1
    return a


def _bump_first(items: list) -> float:
    items[0] += 1
    return float(items[0].sum())


def _copy(a: np.ndarray) -> np.ndarray:
    return a.copy()


def test_a_dask_task_writing_its_input_changes_nobody_elses(auto):
    data, alone = np.zeros(1000), np.zeros(10)
    dsk = {"data": DataNode("data", data),
           "alone": DataNode("alone", alone),                      # one consumer only
           "bumped_alone": Task("bumped_alone", _bump, TaskRef("alone")),
           "made": Task("made", np.ones, 1000),
           "bumped": Task("bumped", _bump, TaskRef("made")),        # a direct call
           "nested": Task("nested", _bump_first, List(TaskRef("made"))),  # Dask's evaluation
           "seen": Task("seen", _copy, TaskRef("made")),
           "bumped_data": Task("bumped_data", _bump, TaskRef("data")),
           "data_seen": Task("data_seen", _copy, TaskRef("data")),
           "sum": Task("sum", add, TaskRef("bumped"), TaskRef("seen"))}
    keys = ["bumped", "nested", "seen", "bumped_data", "data_seen", "sum", "bumped_alone"]
    _known_gil_free(auto, dsk, keys)
    bumped, nested, seen, bumped_data, data_seen, total, bumped_alone = fastdag.dask.get(dsk, keys, executor=auto)
    assert _placement() == "threads"
    assert (bumped == 2).all() and bumped.flags.writeable
    assert nested == 2000.0
    assert (seen == 1).all() and (total == 3).all()
    assert (bumped_data == 1).all() and (data_seen == 0).all()
    assert (bumped_alone == 1).all()
    assert (data == 0).all() and (alone == 0).all()  # the graph's own data, as the caller holds it


def test_fused_subgraphs_and_nested_nodes_are_learned_by_the_functions_inside():
    db = pytest.importorskip("dask.bag")
    plans = {}

    def grab(name):
        def get(dsk, keys, **kwargs):
            plans[name] = to_plan(dsk, keys).plan
            return dask.get(dsk, keys)
        return get
    db.from_sequence(["a b"] * 8, npartitions=2).map(str.split).flatten().frequencies() \
        .compute(scheduler=grab("bag"))
    (da.ones((8, 8), chunks=4) + 1).sum().compute(scheduler=grab("array"))
    profile = fd.core.gil.GilProfile()
    alias = ("node", "dask._task_spec.Alias")  # Dask's own, the same in both
    keys = {name: {fd.core.gil.function_key(t.func) for t in plan.tasks if t.func.key != alias}
            for name, plan in plans.items()}
    # Dask runs both through the same evaluators; the profile must not mix them up
    assert not keys["bag"] & keys["array"], keys
    for task in plans["array"].tasks:
        profile.record(task.func, 0.01, 0.0)
    assert all(profile.get(t.func) is None for t in plans["bag"].tasks if t.func.key != alias)
