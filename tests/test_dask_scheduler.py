"""fastdag as a Dask scheduler: fastdag.dask.get and executor.dask_get."""

from __future__ import annotations

import ast
from operator import add

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
from dask._task_spec import Alias, DataNode, Dict, List, Task, TaskRef  # noqa: E402
from dask.utils import key_split  # noqa: E402
from dask.utils_test import GetFunctionTestMixin  # noqa: E402

import fastdag as fd  # noqa: E402
import fastdag.dask  # noqa: E402


class TestGetFunction(GetFunctionTestMixin):
    """Dask's own checks for a foreign ``get`` (on fastdag's default executor)."""

    get = staticmethod(fastdag.dask.get)


def test_fastdag_dask_get_after_a_plain_import_fastdag():
    """``dask.compute(x, scheduler=fastdag.dask.get)`` as written, with no other import."""
    import subprocess
    import sys
    code = ("import dask, dask.array as da, fastdag\n"
            "x = da.ones((40, 40), chunks=10)\n"
            "print(int(dask.compute(x.sum(), scheduler=fastdag.dask.get)[0]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1600"


def _fail(x):
    raise ValueError(f"bad chunk {x}")


def test_array_results_identical_to_sync(local_executor):
    x = da.random.RandomState(0).random_sample((300, 200), chunks=(60, 50))
    expr = (x @ x.T)[::7].sum(axis=0) + x[:, :3].mean()
    expected = expr.compute(scheduler="sync")
    got = expr.compute(scheduler=local_executor.dask_get)
    # BLAS rounds differently for differently aligned inputs (worker memory vs
    # shared memory): the last bit of a matmul may differ, nothing more.
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)
    # and through dask's configuration, as users set a scheduler globally
    with dask.config.set(scheduler=local_executor.dask_get):
        np.testing.assert_allclose(expr.compute(), expected, rtol=1e-14, atol=0)
    # no BLAS, no rounding freedom: bit for bit
    sums = x.sum(axis=0) + x[::3].mean()
    np.testing.assert_array_equal(sums.compute(scheduler=local_executor.dask_get),
                                  sums.compute(scheduler="sync"))


def test_bag_dataframe_and_delayed(local_executor):
    db = pytest.importorskip("dask.bag")
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    words = db.from_sequence(["a b", "b c", "c c"] * 20, npartitions=4)
    counts = words.map(str.split).flatten().frequencies()
    assert sorted(counts.compute(scheduler=local_executor.dask_get)) == \
        sorted(counts.compute(scheduler="sync"))
    frame = pd.DataFrame({"k": np.arange(1000) % 7, "v": np.arange(1000.0)})
    agg = dd.from_pandas(frame, npartitions=5).groupby("k").v.agg(["sum", "mean"])
    pd.testing.assert_frame_equal(agg.compute(scheduler=local_executor.dask_get),
                                  agg.compute(scheduler="sync"))
    leaves = [dask.delayed(add)(i, 1) for i in range(64)]
    while len(leaves) > 1:
        leaves = [dask.delayed(add)(a, b) for a, b in zip(leaves[::2], leaves[1::2])]
    assert leaves[0].compute(scheduler=local_executor.dask_get) == sum(range(1, 65))


def test_task_spec_nodes_and_nested_keys(local_executor):
    dsk = {
        "a": DataNode("a", np.arange(5)),
        "b": Task("b", np.sum, TaskRef("a")),
        "c": Alias("c", "b"),
        "d": Task("d", sorted, List(TaskRef("c"), 3, TaskRef("b"))),
        "e": Task("e", dict, Dict({"x": TaskRef("a"), "y": TaskRef("d")})),
        ("f", 0): Task(("f", 0), add, TaskRef("c"), 1),
    }
    got = fastdag.dask.get(dsk, [["d", ("f", 0)], "c", ["e"]], executor=local_executor)
    want = dask.get(dsk, [["d", ("f", 0)], "c", ["e"]])
    assert got[0] == want[0] == ([3, 10, 10], 11)
    assert got[1] == 10
    np.testing.assert_array_equal(got[2][0]["x"], np.arange(5))


@pytest.mark.parametrize("kind", ["sync", "threads", "local"])
def test_original_exception_type_with_key_and_traceback(kind, local_executor):
    executor = {"sync": fd.SyncExecutor, "threads": fd.ThreadExecutor}.get(kind)
    ex = executor() if executor else local_executor
    x = da.ones(10, chunks=5).map_blocks(_fail, dtype=float)
    with pytest.raises(ValueError, match="bad chunk") as info:
        x.compute(scheduler=ex.dask_get)
    assert not isinstance(info.value, fd.TaskError)
    note = "\n".join(getattr(info.value, "__notes__", []))
    assert "_fail" in note and "Dask key" in note
    if kind == "threads":
        ex.shutdown()


def test_metrics_use_dask_keys(local_executor):
    x = da.ones((40, 40), chunks=20)
    total = (x + 1).sum()
    total.compute(scheduler=local_executor.dask_get)
    report = fd.last_run()
    keys = {t.task_key for t in report.tasks}
    assert any(k.startswith("('sum-") for k in keys), keys
    # functions are the keys' prefixes, as Dask's dashboard groups them
    for t in report.tasks:
        key = ast.literal_eval(t.task_key) if t.task_key.startswith("(") else t.task_key
        assert t.function == key_split(key), t
    assert len(report.tasks) == report.run.tasks


def test_bad_graphs_raise_clear_errors(local_executor):
    with pytest.raises(KeyError):
        fastdag.dask.get({"x": Task("x", add, TaskRef("y"), 1)}, "x", executor=local_executor)
    with pytest.raises(ValueError, match="cycle"):
        fastdag.dask.get({"x": (add, "y", 1), "y": (add, "x", 1)}, "x",
                         executor=local_executor)


def test_large_chain_is_not_recursive(local_executor):
    dsk = {f"x{i + 1}": (add, f"x{i}", 1) for i in range(20000)}
    dsk["x0"] = 0
    assert fastdag.dask.get(dsk, "x20000", executor=local_executor) == 20000


def test_flat_tasks_become_plain_fastdag_calls():
    from fastdag.bridges.dask_graph import to_plan
    leaves = [dask.delayed(add, pure=False)(i, 1) for i in range(256)]
    while len(leaves) > 1:
        leaves = [dask.delayed(add, pure=False)(a, b) for a, b in zip(leaves[::2], leaves[1::2])]
    plan = to_plan(leaves[0].__dask_graph__(), leaves[0].key).plan
    assert len(plan) == 511 and all(plan.simple)   # the Plan pickles without cloudpickle
    assert {t.func for t in plan.tasks} == {add} and set(plan.modes) == {0, 3}
    # keyword arguments are passed as such (the Plan's rich path pickles them);
    # a DataNode is a task of its own; a nested container keeps Dask's evaluation
    kw = to_plan({"a": Task("a", round, 2.567, ndigits=1), "b": DataNode("b", [1]),
                  "c": Task("c", len, List(TaskRef("b")))}, ["a", "c"]).plan
    assert kw.tasks[0].func is round and kw.kwargs[0] == {"ndigits": 1} and not kw.simple[0]
    assert kw.tasks[1].func.__name__ == "data_value" and kw.args[1] == ([1],)
    assert type(kw.tasks[2].func).__name__ == "NodeCall" and kw.args[2] == ()
    assert kw.tasks[2].func.key == ("node", "builtins.len")  # what the GIL profile learns


def test_delayed_graphs_skip_dasks_cull(local_executor, monkeypatch):
    """dask.compute of delayed objects hands ``get`` an expression; fastdag takes its
    layers as they are (its walk from the keys culls) instead of Dask's layer-by-layer
    cull, and falls back to Dask's own graph when linear fusion is on."""
    from dask.highlevelgraph import HighLevelGraph
    culls = []
    cull = HighLevelGraph.cull
    monkeypatch.setattr(HighLevelGraph, "cull", lambda g, keys: culls.append(1) or cull(g, keys))
    inc = dask.delayed(add, pure=False)
    a = inc(1, 2)
    total = inc(inc(a, 3), a)
    assert dask.compute(total, [a, {"x": a}], scheduler=local_executor.dask_get) == \
        dask.compute(total, [a, {"x": a}], scheduler="sync") == (9, [3, {"x": 3}])
    assert len(culls) == 1  # only the sync run's
    with dask.config.set({"optimization.fuse.delayed": True}):
        assert total.compute(scheduler=local_executor.dask_get) == 9
    assert len(culls) == 2


def test_flat_task_shapes_match_dasks_results(local_executor):
    """Each shape of flat Task (no inputs, only inputs, inputs among constants, one input
    twice, keyword arguments) becomes the fastdag call of its function, and computes as
    Dask's own get does."""
    from fastdag.bridges.dask_graph import to_plan
    dsk = {"a": Task("a", add, 1, 2),
           "b": Task("b", add, TaskRef("a"), 10),
           "c": Task("c", add, TaskRef("b"), TaskRef("b")),
           "d": Task("d", max, TaskRef("a"), TaskRef("c"), 7),
           "e": Task("e", round, TaskRef("d"), ndigits=-1),
           "f": Task("f", add, TaskRef("a"), TaskRef("e"))}
    plan = to_plan(dsk, ["f"]).plan
    rows = {label: i for i, label in enumerate(plan.labels)}
    assert [plan.modes[rows[k]] for k in "abcdef"] == [0, 1, 1, 1, 1, 3]
    assert plan.deps[rows["c"]] == (rows["b"],) and all(plan.simple[rows[k]] for k in "abcdf")
    assert {t.func for t in plan.tasks} == {add, max, round}
    assert fastdag.dask.get(dsk, ["f", "c"], executor=local_executor) == \
        dask.get(dsk, ["f", "c"]) == (33, 26)


def _is_topological(plan) -> bool:
    return all(d < i for i, mine in enumerate(plan.deps) for d in mine)


def test_stored_order_is_used_only_when_it_is_topological_and_complete(local_executor,
                                                                      monkeypatch):
    """The Plan follows the graph's stored order (or its reverse) when that puts every
    key after its dependencies and every key is needed; else the walk from the keys
    orders and culls: same results as Dask's get either way, unneeded keys never run."""
    from fastdag.bridges import dask_graph
    walks = []
    walk = dask_graph._topological
    monkeypatch.setattr(dask_graph, "_topological", lambda *a: walks.append(1) or walk(*a))
    inc = dask.delayed(add, pure=False)
    a = inc(1, 2)
    diamond = inc(inc(a, 3), inc(a, 4))   # stored root first, but a's layer after a sibling's
    chain = inc(inc(inc(1, 1), 1), 1)     # stored root first: its reverse is topological
    for value, expected, walked in ((diamond, 13, 1), (chain, 4, 0)):
        walks.clear()
        plan = dask_graph.to_plan(value.__dask_graph__(), value.key).plan
        assert _is_topological(plan) and len(plan) == len(value.__dask_graph__())
        assert len(walks) == walked
        assert value.compute(scheduler=local_executor.dask_get) == expected
    walks.clear()
    forward = {"x": 1, "y": (add, "x", 1), "z": (add, "y", "x")}
    plan = dask_graph.to_plan(forward, "z").plan
    assert plan.labels == ["x", "y", "z"] and _is_topological(plan) and not walks
    # keys nobody asked for are left out, even one that would fail or names a missing key
    extra = dict(forward, boom=(_fail, "y"), lost=Task("lost", add, TaskRef("nowhere"), 1))
    plan = dask_graph.to_plan(extra, ["z"]).plan
    assert sorted(plan.labels) == ["x", "y", "z"] and _is_topological(plan) and walks
    assert fastdag.dask.get(extra, ["z", "y"], executor=local_executor) == \
        dask.get(forward, ["z", "y"]) == (3, 2)
    with pytest.raises(KeyError):
        fastdag.dask.get(extra, "lost", executor=local_executor)


def test_dataframe_sizes_come_from_their_buffers(monkeypatch):
    """Every task's output is sized for metrics; a DataFrame by its index and column
    buffers, not by pandas' deep ``memory_usage`` (``sys.getsizeof``), ~20x dearer,
    nor through a Series per column (``items``), ~100x dearer than its blocks."""
    pd = pytest.importorskip("pandas")
    from fastdag.core.runner import nbytes
    frame = pd.DataFrame({"a": np.arange(1000), "b": np.arange(1000.0), "c": ["x"] * 1000})
    indexed = frame.set_index("a")
    sizes = int(frame.memory_usage(deep=False).sum()), int(indexed.memory_usage().sum())
    monkeypatch.setattr(pd.DataFrame, "__sizeof__", lambda self: pytest.fail("deep memory_usage"))
    monkeypatch.setattr(pd.DataFrame, "items", lambda self: pytest.fail("a Series per column"))
    assert (nbytes(frame), nbytes(indexed)) == sizes


@pytest.mark.parametrize("kind", ["default", "local"])
def test_dask_local_callbacks_see_every_task(kind, local_executor, capsys):
    from dask.callbacks import Callback
    from dask.diagnostics import ProgressBar
    get = fastdag.dask.get if kind == "default" else local_executor.dask_get
    seen: list = []

    class Hooks(Callback):
        def _start(self, dsk):
            seen.append(("start", len(dsk)))

        def _pretask(self, key, dsk, state):
            seen.append(("pre", key))

        def _posttask(self, key, result, dsk, state, worker):
            seen.append(("post", key, len(state["finished"])))

        def _finish(self, dsk, state, errored):
            seen.append(("finish", errored, len(state["finished"]), len(state["waiting"])))

    x = da.arange(64, chunks=8)
    expr = (x * 2 + 1).sum()
    with Hooks(), ProgressBar(dt=0.01):
        assert int(expr.compute(scheduler=get)) == sum(2 * i + 1 for i in range(64))
    n = seen[0][1]
    assert seen[0][0] == "start" and n > 8
    pre = [e[1] for e in seen if e[0] == "pre"]
    post = [e[1] for e in seen if e[0] == "post"]
    assert len(pre) == len(post) == n and set(pre) == set(post)  # every task, once
    assert seen[-1] == ("finish", False, n, 0)
    assert "100% Completed" in capsys.readouterr().out

    seen.clear()
    bad = da.from_delayed(dask.delayed(_fail)(1), shape=(2,), dtype=float).sum()
    with Hooks(), pytest.raises(ValueError):
        bad.compute(scheduler=get)
    assert seen[-1][:2] == ("finish", True)

    seen.clear()
    hooks = Hooks()  # dask.compute(..., callbacks=[...]) as well as `with`: tuples, as Dask takes
    dask.compute(expr, scheduler=get, callbacks=[hooks._callback])
    assert seen[-1][:2] == ("finish", False)
