"""DaskExecutor and RayExecutor against a real two-worker LocalCluster and a real local Ray."""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np
import pytest

import fastdag as fd
from fastdag.cli import main
from fastdag.bridges.clusters import SMALL_OUTPUT, TaskCosts, group
from fastdag.bridges.engine_executor import LARGE_ARRAY, cluster_graph, split_plan
from fastdag.core.plan import Ref, build_plan
from tasks import inc, total


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
    report = fd.last_run()  # the failed run is reported, with the task that did run
    assert report.run.state == "failed" and "KeyError" in report.run.error
    assert [t.function for t in report.tasks] == ["add"]


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


@fd.task
def ones(n):
    return np.ones(n)


@fd.task
def head_sum(a, k):
    return float(a[:k].sum())


def tiny_and_big():
    """Many tiny tasks (a fan-out, chains, a fan-in into a list, an output in the middle)
    and one task whose output is large."""
    base = inc(0)
    middle = total([add(inc(inc(base)), i) for i in range(200)])
    array = ones(SMALL_OUTPUT // 8 * 4)
    return add(middle, head_sum(array, 10)), middle, array


@pytest.fixture
def patient(monkeypatch):
    """Any task under a second is tiny: what clusters then does not hang on the load."""
    monkeypatch.setattr("fastdag.bridges.clusters.TINY_TASK_S", 1.0)


def test_tiny_tasks_share_engine_tasks_and_big_outputs_stay_apart(engine, patient):
    out, middle, array = tiny_and_big()
    expected = fd.compute(out, middle, executor=fd.SyncExecutor())
    for _ in range(2):  # the first runs measure the functions, task by task
        assert engine.compute(out, middle) == expected
    plan = build_plan(fd.DAG([out, middle]))
    graph = split_plan(plan, lambda a: a)
    clusters = cluster_graph(graph, engine.costs)
    assert len(plan) == 605 and len(clusters) <= 4, [len(c.specs) for c in clusters]
    big = [c for c in clusters if any(s.task.name == "ones" for s in c.specs)]
    assert len(big) == 1 and len(big[0].specs) == 1
    assert engine.compute(out, middle) == expected
    report = fd.last_run()
    assert len(report.tasks) == len(plan)  # a record for every fastdag task
    assert sorted(t.task_key for t in report.tasks) == sorted(plan.names())
    assert engine.compute(array)[:3].tolist() == [1.0, 1.0, 1.0]


def test_a_failure_inside_a_cluster_names_its_task(engine, patient):
    @fd.task
    def fails_on(x, bad):
        if x == bad:
            raise ValueError(f"bad {x}")
        return x

    def graph(bad):
        return total([fails_on(inc(i), bad) for i in range(50)])

    for _ in range(2):
        assert engine.compute(graph(-1)) == sum(range(1, 51))
    with pytest.raises(fd.TaskError, match="fails_on") as info:
        engine.compute(graph(7))
    assert isinstance(info.value.__cause__, ValueError) and "bad 7" in str(info.value.__cause__)


def _random_graph(n: int, seed: int) -> list:
    """Tasks of one to three inputs among the previous twenty; outputs: the unused and one more."""
    rng = random.Random(seed)
    nodes = [inc(i) for i in range(5)]
    used: set[int] = set()
    for _ in range(n):
        picked = rng.sample(nodes[-20:], rng.randint(1, min(3, len(nodes))))
        used.update(map(id, picked))
        nodes.append(total(picked) if rng.random() < 0.5 else add(picked[0], picked[-1]))
    return [node for node in nodes if id(node) not in used] + [nodes[n // 2]]


@pytest.mark.parametrize("seed", range(5))
def test_clusters_form_a_dag_of_closed_groups(seed):
    """On any graph: each task in one cluster; only a root is used outside its cluster or
    wanted by the caller; a task that is not tiny is alone; roots come in launch order."""
    plan = build_plan(fd.DAG(_random_graph(400, seed)))
    rng = random.Random(seed)
    tiny = [rng.choice([None, 1e-5, 1e-4, 3e-3]) for _ in range(len(plan))]
    clusters = group(plan, tiny, budget=0.01)
    assert sorted(i for c in clusters for i in c) == list(range(len(plan)))
    owner = {i: k for k, c in enumerate(clusters) for i in c}
    for k, members in enumerate(clusters):
        assert members == sorted(members)
        if len(members) > 1:
            assert all(tiny[i] is not None for i in members)
        for i in members[:-1]:
            assert not plan.wanted[i] and all(owner[u] == k for u in plan.dependents[i])
        for i in members:
            assert all(owner[d] <= k for d in plan.deps[i])
    assert len(clusters) < len(plan) - len(plan) // 8  # tiny tasks did group
    assert len(group(plan, [1e-5] * len(plan), budget=0.01)) < len(plan) * 3 // 4


def test_costs_learnt_from_records_decide_which_tasks_are_tiny():
    plan = build_plan(fd.DAG([add(ones(4), inc(1))]))  # ones, inc, add
    costs = TaskCosts()
    assert costs.tiny(plan) == [None, None, None]  # never seen: not tiny
    record = lambda i, seconds, size, read=0: (i, 0.0, seconds, 0, 0, read, size, 1, 0.0)  # noqa: E731
    costs.learn(plan, [("w", record(0, 1e-5, SMALL_OUTPUT * 2) + record(1, 1e-5, 28)),
                       ("w", record(2, 0.5, 28, SMALL_OUTPUT * 2 + 28))])
    assert costs.tiny(plan) == [None, pytest.approx(1e-5), None]  # big output; slow
    # add measured fast on small inputs only: on ones' large output it is not known
    costs.learn(plan, [("w", record(2, 1e-5, 28, 56))])
    assert costs.tiny(plan)[2] is None
    assert costs.tiny(build_plan(fd.DAG([add(inc(1), inc(2))])))[2] == pytest.approx(1e-5)


@fd.task
def one_list(i):
    return [i]


@fd.task
def grown(xs, v):
    xs.append(v)  # in place: no other task may see it
    return len(xs)


@fd.task
def pair(a, b):
    return (a, b)


def test_tasks_in_one_cluster_do_not_see_each_others_writes(engine, patient):
    """A value two tasks of a cluster read, or a list both captured, is each one's own."""
    captured = [0]

    def graph():
        base = one_list(1)
        return pair(pair(grown(base, 2), grown(base, 3)), pair(grown(captured, 4),
                                                               grown(captured, 5)))

    for _ in range(2):  # the functions measured tiny; not checked: a Dask worker hands
        engine.compute(graph())  # one value in its memory to each consumer there as is
    plan = build_plan(graph().dag)
    assert len(cluster_graph(split_plan(plan, lambda a: a), engine.costs)) == 1
    assert engine.compute(graph()) == ((2, 2), (2, 2))


@fd.task
def listed(i):
    return [i]


@fd.task
def appended(xs, v):
    xs.append(v)
    return len(xs)


@fd.task
def doubled_in_place(a):
    a *= 2  # in place, into an input another task reads too
    return a


def test_a_lone_task_writes_into_its_own_copy_of_a_shared_input(engine):
    """Outside a cluster (functions never measured: no clustering), an engine
    worker holds one value for all its readers; each reader still gets its own."""
    base = listed(1)
    assert engine.compute(pair(appended(base, 2), appended(base, 3))) == (2, 2)
    arr = ones(4)
    doubled, again = doubled_in_place(arr), doubled_in_place(arr)
    first, second, original = engine.compute(doubled, again, arr)
    assert first.tolist() == second.tolist() == [2.0] * 4 and original.tolist() == [1.0] * 4
    assert first.flags.writeable and original.flags.writeable
