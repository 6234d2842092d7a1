"""A Dask graph becomes a fastdag ``Plan``, built directly (no Nodes, no DAG).

    dask graph (legacy tuples, or Task / Alias / DataNode / List / Dict)
        │  dask's own convert_legacy_graph: every value a GraphNode
        ▼
    keys asked for (nested lists)  ──>  walk from them: only what they need,
        │                               dependencies before dependents
        ▼
    Plan: one task per Dask key; its "function" calls the GraphNode with
    the values of its dependencies; named by the Dask key (``Plan.labels``),
    grouped in metrics by ``key_split`` (``matmul``, ``sum-aggregate``, ...)

Dask's GraphNode already knows how to evaluate itself from a mapping of
its dependencies' values, so nothing of Dask's spec is parsed here: the
bridge only numbers the keys and records the edges. A fastdag worker
receives the GraphNode pickled in the Plan and calls it.

The walk is iterative (a chain of 100,000 keys is fine), detects cycles,
and raises ``KeyError`` for a key asked for or depended on that the graph
does not hold, as Dask's schedulers do.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

from ..graph import Task, gc_paused
from ..plan import Plan, Ref
from ..runner import INTERNAL_FILES


class DaskPlan(NamedTuple):
    """A Plan for a Dask graph, and where each key asked for landed in its outputs."""

    plan: Plan
    keys: Any             # the keys as the caller nested them (lists of keys)
    position: dict        # key -> index in plan.outputs


def run_graph_node(node: Any, dep_keys: tuple, *values: Any) -> Any:
    """Evaluate one Dask GraphNode given its dependencies' values, in ``dep_keys`` order."""
    if dep_keys:
        return node(dict(zip(dep_keys, values)))
    return node({})


INTERNAL_FILES.add(__file__)  # a worker's traceback starts at the user's function

_tasks_by_prefix: dict[str, Task] = {}


def _task_for(key: Hashable, key_split: Any) -> Task:
    """One fastdag Task per Dask key prefix, so metrics group tasks as Dask does."""
    prefix = key_split(key)
    task = _tasks_by_prefix.get(prefix)
    if task is None:
        task = _tasks_by_prefix[prefix] = Task(run_graph_node, name=prefix)
    return task


def flatten_keys(keys: Any) -> list:
    """The keys of a (possibly nested) list of keys, in order, each once."""
    flat: list = []
    seen: set = set()
    stack = [keys]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif item not in seen:
            seen.add(item)
            flat.append(item)
    return flat


def nest_results(keys: Any, position: dict, values: tuple) -> Any:
    """Values shaped like ``keys``: a list of keys gives a tuple, as dask's get does."""
    if isinstance(keys, list):
        return tuple(nest_results(k, position, values) for k in keys)
    return values[position[keys]]


def to_plan(dsk: Any, keys: Any) -> DaskPlan:
    """Convert ``dsk`` (a Mapping or a collection's graph) for computing ``keys``."""
    from dask._task_spec import convert_legacy_graph
    from dask.utils import key_split

    if not isinstance(dsk, Mapping):
        dsk = dsk.__dask_graph__()
    with gc_paused():
        graph = convert_legacy_graph(dsk)
        wanted = flatten_keys(keys)
        for key in wanted:
            if key not in graph:
                raise KeyError(key)
        order = _topological(graph, wanted)
        plan = _build(graph, order, wanted, key_split)
    return DaskPlan(plan, keys, {k: n for n, k in enumerate(wanted)})


def _topological(graph: dict, wanted: list) -> list:
    """The keys ``wanted`` needs, each after its dependencies (iterative DFS)."""
    done: dict = {}
    entered: set = set()
    order: list = []
    stack: list[tuple[Hashable, bool]] = [(k, False) for k in reversed(wanted)]
    while stack:
        key, post = stack.pop()
        if post:
            done[key] = True
            order.append(key)
            continue
        if key in done:
            continue
        if key in entered:
            raise ValueError(f"the Dask graph has a cycle through key {key!r}")
        entered.add(key)
        stack.append((key, True))
        try:
            deps = graph[key].dependencies
        except KeyError:
            raise KeyError(key) from None
        for dep in deps:
            if dep not in done:
                stack.append((dep, False))
    return order


def _build(graph: dict, order: list, wanted: list, key_split: Any) -> Plan:
    n = len(order)
    index = {key: i for i, key in enumerate(order)}
    tasks: list[Task] = [None] * n  # type: ignore[list-item]
    args: list[tuple | None] = [None] * n
    modes = [0] * n
    deps: list[tuple[int, ...]] = [()] * n
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, key in enumerate(order):
        node = graph[key]
        tasks[i] = _task_for(key, key_split)
        dep_keys = tuple(node.dependencies)
        if dep_keys:
            mine = tuple([index[d] for d in dep_keys])
            for d in mine:
                dependents[d].append(i)
            deps[i] = mine
            modes[i] = 1
            args[i] = (node, dep_keys, *[Ref(d) for d in mine])
        else:
            args[i] = (node, ())
    outputs = [index[k] for k in wanted]
    flags = bytearray(n)
    for o in outputs:
        flags[o] = 1
    return Plan(tasks=tasks, args=args, kwargs=[None] * n, modes=modes, deps=deps,
                dependents=dependents, outputs=outputs, keys=list(range(n)), wanted=flags,
                simple=bytearray(n), labels=[str(k) for k in order])
