"""The engine bridges, each against the engine's own way of running the same work, one run.

1. Dask collections on fastdag (``scheduler=ex.dask_get`` on a
   ``placement="auto"`` executor as ``fastdag.dask.get`` uses, engine
   ``fastdag-local``; ``fastdag-processes``: every graph on the worker
   processes) against Dask's local schedulers on the same collection:
   dask.array blocked matmul, ``da.linalg.svd`` (tall-and-skinny, TSQR),
   ``da.linalg.svd_compressed``; a dask.bag word count; a dask.dataframe
   groupby-aggregate; a tree of 4,096 ``dask.delayed`` leaves. Workloads are
   named ``dask-*``; the end-of-run table gives fastdag-local / best peer.
2. fastdag graphs on a Dask cluster (``fastdag-dask``: ``fd.DaskExecutor``)
   against the same graph translated to ``dask.delayed`` and run with
   ``client.compute`` (``dask-client``), and on Ray (``fastdag-ray``:
   ``fd.RayExecutor``) against the graph written as Ray remote functions
   (``ray-remote``). Workloads are named ``cluster-*``; the six of
   ``fastdag.workloads`` at modest sizes. Dask's cluster is the suite's
   two-process ``LocalCluster``; Ray a local Ray with two CPUs.

Every engine of a group gets the same rounds after one warm-up round, and
every result is checked. A fastdag engine's test also runs its peers (the
best Dask schedulers; the native cluster form) one round each before each of
its own rounds, and stores the medians of those side-by-side rounds and their
ratio in ``extra_info["interleaved"]``: on a shared machine the load swings
between one test and the next, so that ratio is the one to quote. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        pytest benchmarks/test_bench_bridges.py --benchmark-only --benchmark-json=bench-bridges.json
"""

from __future__ import annotations

import operator
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastdag as fd
from fastdag.core.graph import map_nested

import dask_graphs
from engines import PARALLEL
from test_bench_workloads import _PREPARED, _check, _fastdag_run

dask = pytest.importorskip("dask")
ROUNDS = 3


def _bench(benchmark: Any, workload: str, engine: str, run: Callable[[], Any],
           interleave: dict[str, Callable[[], Any]] | None = None) -> Any:
    """Time ``run``; for a fastdag engine, also ``interleave`` and (fastdag-local) placement.

    ``interleave``: the peers' runs of the same workload (the best Dask
    schedulers, the native cluster form), one round of each before every
    round of the fastdag engine (untimed by pytest-benchmark, timed here).
    On a machine shared with other jobs the load can swing several-fold
    between the minutes one engine's test runs and the next; rounds taken
    side by side see the same load, so their ratio
    (``extra_info["interleaved"]``) is the one to quote.
    """
    benchmark.group = workload
    benchmark.extra_info.update(workload=workload, engine=engine)
    if not engine.startswith("fastdag-") or engine == "fastdag-processes":
        return benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    placements: list[str] = benchmark.extra_info.setdefault("placements", [])
    peers: dict[str, list[float]] = {name: [] for name in interleave or {}}

    def peer_rounds() -> None:
        for name, peer in (interleave or {}).items():
            start = time.perf_counter()
            peer()
            peers[name].append(time.perf_counter() - start)

    def placed() -> Any:  # where the default executor's placement put each round
        result = run()
        if engine == "fastdag-local":
            placements.append(fd.last_run().run.settings.get("placement", "processes"))
        return result
    result = benchmark.pedantic(placed, setup=peer_rounds, rounds=ROUNDS, iterations=1,
                                warmup_rounds=1)
    if peers:
        benchmark.extra_info["interleaved"] = _interleaved(benchmark, peers)
    return result


def _interleaved(benchmark: Any, peers: dict[str, list[float]]) -> dict[str, Any]:
    """Medians of the timed rounds of the fastdag engine and of each interleaved peer; the ratio."""
    mine = statistics.median(benchmark.stats.stats.data)
    medians = {name: statistics.median(times[-ROUNDS:]) for name, times in peers.items()}
    best = min(medians, key=medians.__getitem__)
    return {"fastdag_s": mine, "peers_s": medians, "best": best,
            "ratio": mine / medians[best]}


# -- 1. Dask collections on fastdag ---------------------------------------------------------
def _scheduler(engine: str, request: pytest.FixtureRequest) -> Any:
    if engine == "fastdag-local":  # as fastdag.dask.get runs: placement learned per function
        return request.getfixturevalue("fd_auto").dask_get
    if engine == "fastdag-processes":  # every graph on the worker processes
        return request.getfixturevalue("fd_local").dask_get
    return engine.split("-", 1)[1]


@pytest.fixture(scope="module")
def fd_auto():
    """An executor like fastdag.dask.get's default one (placement="auto"), for this suite.

    Its workers are up before any timing, as the session's ``fd_local``'s
    are: otherwise the warm-up round runs on threads while they boot, and
    the first timed round pays the workers' first import of the collection.
    """
    ex = fd.LocalExecutor(workers=PARALLEL, placement="auto")
    ex.compute(fd.task(abs)(-1))
    ex.start_workers()  # a tiny graph needs no worker (see executors/lazystart.py)
    assert ex.placement.ready.wait(120), "the workers never started"
    yield ex
    ex.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _release_inputs():
    yield
    _PREPARED.release()


# The Dask schedulers that can be best for each collection, timed side by side with
# fastdag-local's rounds (bag: its default, processes, is the target's peer).
BEST_DASK = {"array": ("dask-threads", "dask-sync"), "bag": ("dask-processes", "dask-threads"),
             "dataframe": ("dask-threads", "dask-sync"), "delayed": ("dask-sync", "dask-threads")}


def _ordered(workloads: list[str], engines: list[str]) -> Any:
    """(workload, engine) pairs, workload outermost: one workload's input is held at a time."""
    return pytest.mark.parametrize("workload,engine", [(w, e) for w in workloads for e in engines])


@_ordered(["gemm", "svd1", "svd2"], ["fastdag-local", "fastdag-processes", "dask-threads",
                                     "dask-sync"])
def test_dask_array(benchmark, request, workload, engine):
    """matmul (gemm), da.linalg.svd (svd1), da.linalg.svd_compressed (svd2)."""
    case, data, expected = _PREPARED.get(workload, False)
    peer = case.peers["dask-array-threads"]  # a function of (data, scheduler)
    scheduler = _scheduler(engine, request)
    dasks = {name: (lambda s=name.split("-", 1)[1]: peer(data, s)) for name in BEST_DASK["array"]}
    result = _bench(benchmark, f"dask-array-{workload}", engine, lambda: peer(data, scheduler),
                    dasks)
    verdict = _check(workload, result, expected)
    assert verdict.ok, verdict


WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
         "omicron pi rho sigma tau upsilon phi chi psi omega").split()


@pytest.mark.parametrize("engine", ["fastdag-local", "fastdag-processes", "dask-processes",
                                    "dask-threads"])
def test_dask_bag_wordcount(benchmark, request, engine):
    import dask.bag as db
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, 12)) for _ in range(100_000)]

    def run(scheduler: Any) -> list:
        bag = db.from_sequence(lines, npartitions=8)
        return bag.map(str.split).flatten().frequencies().compute(scheduler=scheduler)

    scheduler = _scheduler(engine, request)
    dasks = {name: (lambda s=name.split("-", 1)[1]: run(s)) for name in BEST_DASK["bag"]}
    counts = dict(_bench(benchmark, "dask-bag-wordcount", engine, lambda: run(scheduler), dasks))
    assert sum(counts.values()) == 12 * len(lines)


@pytest.mark.parametrize("engine", ["fastdag-local", "fastdag-processes", "dask-threads",
                                    "dask-sync", "dask-processes"])
def test_dask_dataframe_groupby(benchmark, request, engine):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"k": rng.integers(0, 1000, 2_000_000), "v": rng.random(2_000_000)})
    ddf = dd.from_pandas(frame, npartitions=8)
    run = lambda s: ddf.groupby("k").v.agg(["sum", "mean", "count"]).compute(scheduler=s)  # noqa: E731
    scheduler = _scheduler(engine, request)
    dasks = {name: (lambda s=name.split("-", 1)[1]: run(s)) for name in BEST_DASK["dataframe"]}
    result = _bench(benchmark, "dask-dataframe-groupby", engine, lambda: run(scheduler), dasks)
    assert int(result["count"].sum()) == len(frame)


def _delayed_tree(n: int) -> Any:
    add = dask.delayed(operator.add, pure=False)
    level = list(range(n))
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.parametrize("engine", ["fastdag-local", "fastdag-processes", "dask-sync",
                                    "dask-threads"])
def test_dask_delayed_tree(benchmark, request, engine):
    scheduler = _scheduler(engine, request)
    tree = _delayed_tree(4096)  # built once, before the timer: the schedulers are compared
    dasks = {name: (lambda s=name.split("-", 1)[1]: tree.compute(scheduler=s))
             for name in BEST_DASK["delayed"]}
    result = _bench(benchmark, "dask-delayed-tree-4096", engine,
                    lambda: tree.compute(scheduler=scheduler), dasks)
    assert result == 4096 * 4095 // 2


# -- 2. fastdag graphs on Dask and Ray clusters --------------------------------------------
@pytest.fixture(scope="module")
def ray_executor():
    """A local Ray with two CPUs, as the Dask cluster has two one-thread workers."""
    pytest.importorskip("ray")
    with fd.RayExecutor(num_cpus=2) as ex:
        yield ex


class _Slot:
    """Stands for a Node inside a container of arguments shipped to a Ray task."""

    def __init__(self, key: int):
        self.key = key


def _call_nested(func: Callable, args: tuple, kwargs: dict, keys: list[int], *values: Any) -> Any:
    by_key = dict(zip(keys, values))
    fill = lambda slot: by_key[slot.key]  # noqa: E731
    return func(*map_nested(args, _Slot, fill), **map_nested(kwargs, _Slot, fill))


def to_ray(outputs: list[fd.Node]) -> list[Any]:
    """The graph as Ray remote calls, written the way a Ray user writes them.

    One ``ray.remote`` function per task function, Node arguments passed as
    ObjectRefs at top level (Ray resolves only those); a task whose Nodes
    sit inside containers gets them as extra arguments, put back in place.
    """
    import ray
    remote: dict[Any, Any] = {}
    refs: dict[int, Any] = {}
    nested = ray.remote(_call_nested)
    slot = lambda n: _Slot(id(n))  # noqa: E731
    for node in fd.DAG(outputs).nodes:
        func = node.task.func
        if node.mode == 2:
            args = map_nested(node.args, fd.Node, slot)
            kwargs = map_nested(node.kwargs, fd.Node, slot) if node.kwargs else {}
            deps = [refs[id(d)] for d in node.deps]
            refs[id(node)] = nested.remote(func, args, kwargs, [id(d) for d in node.deps], *deps)
            continue
        fn = remote.get(func)
        if fn is None:
            fn = remote[func] = ray.remote(func)
        args = [refs[id(a)] if type(a) is fd.Node else a for a in node.args]
        kwargs = {k: refs[id(v)] if type(v) is fd.Node else v for k, v in node.kwargs.items()}
        refs[id(node)] = fn.remote(*args, **kwargs)
    return [refs[id(o)] for o in outputs]


def _ray_values(nodes: Any) -> Any:
    import ray
    single = isinstance(nodes, fd.Node)
    values = ray.get(to_ray([nodes] if single else list(nodes)))
    return values[0] if single else tuple(values)


CLUSTER_WORKLOADS = ["tree_reduction", "gemm", "svd1", "svd2", "wordcount", "image_transform"]


@_ordered(CLUSTER_WORKLOADS, ["fastdag-dask", "dask-client", "fastdag-ray", "ray-remote"])
def test_cluster(benchmark, request, workload, engine):
    case, data, expected = _PREPARED.get(workload, False)
    native: dict[str, Callable[[], Any]] = {}
    if engine in ("fastdag-dask", "dask-client"):
        client = request.getfixturevalue("dask_client")
        native["dask-client"] = lambda: dask_graphs.compute(case.graph(data), scheduler=client)
    else:
        request.getfixturevalue("ray_executor")  # the same local Ray
        native["ray-remote"] = lambda: _ray_values(case.graph(data))
    if engine == "fastdag-dask":
        executor = fd.DaskExecutor(request.getfixturevalue("dask_client"))
    elif engine == "fastdag-ray":
        executor = request.getfixturevalue("ray_executor")
    if engine.startswith("fastdag-"):
        run = lambda: _fastdag_run(case.graph, data, executor)  # noqa: E731
    else:
        run, native = native[engine], {}
    result = _bench(benchmark, f"cluster-{workload}", engine, run, native)
    verdict = _check(workload, result, expected)
    assert verdict.ok, verdict
