"""A Dask graph becomes a fastdag ``Plan``, built directly (no Nodes, no DAG).

    dask graph (legacy tuples, or Task / Alias / DataNode / List / Dict)
        │  dask's own convert_legacy_graph: every value a GraphNode
        ▼
    keys asked for (nested lists)  ──>  walk from them: only what they need,
        │                               dependencies before dependents
        ▼
    Plan: one task per Dask key, named by the key (``Plan.labels``) and
    grouped in metrics by ``key_split`` (``matmul``, ``sum-aggregate``, ...)

Two ways to run a key:

* A flat ``Task`` (``func(a, TaskRef(k), 3, key=v)``: no nested
  containers holding nodes), the bulk of array, bag, dataframe and delayed
  graphs, becomes a fastdag call of ``func`` itself with ``Ref``
  placeholders: it pickles in the Plan's fast path and runs as fastdag's
  own tasks do, and the default executor's placement learns ``func``'s GIL
  use (see executors.placement). This cut the 4,096-leaf delayed tree's
  Plan pickling from ~100 ms to ~1 ms here. A ``DataNode`` becomes a task
  returning its value (``data_value``).
* Anything else (aliases, nested List/Dict/Tuple/Set, fused subgraphs)
  runs through Dask's own evaluation: a ``NodeCall`` holding the GraphNode
  calls it with a mapping of its dependencies' values, so none of that spec
  is re-implemented here.

The walk is iterative (a chain of 100,000 keys is fine), detects cycles,
and raises ``KeyError`` for a key asked for or depended on that the graph
does not hold, as Dask's schedulers do.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from ..core.graph import Task, gc_paused
from ..core.plan import _ATOMIC, _LEAVES, Plan, Ref
from ..core.runner import INTERNAL_FILES
from .dask_expr import task_graph


class DaskPlan(NamedTuple):
    """A Plan for a Dask graph, and where each key asked for landed in its outputs."""

    plan: Plan
    keys: Any             # the keys as the caller nested them (lists of keys)
    position: dict        # key -> index in plan.outputs


class NodeCall:
    """A Dask GraphNode Dask must evaluate itself (aliases, nested containers, fused
    subgraphs), as a task function called with its dependencies' values in order.

    The node sits in the function, not among the arguments: on threads the
    default executor gives every task copy-on-write views of its arguments,
    ``copy.deepcopy`` for objects it does not know, and deep-copying Dask's
    (immutable) nodes cost ~0.2 ms a task, 25-40 ms a run of the array
    benchmarks. Dependencies' values are still guarded as any input is;
    constants written inside a nested node are shared as on Dask's threads.

    Equal (and hashed) by ``key``, the functions the node evaluates, so the
    GIL profile (``gil.function_key``) learns a bag's pure-Python pipeline
    and an array's numpy one apart although Dask runs both through the same
    evaluators.
    """

    __slots__ = ("node", "dep_keys", "key")

    def __init__(self, node: Any, dep_keys: tuple, key: tuple):
        self.node, self.dep_keys, self.key = node, dep_keys, key

    def __call__(self, *values: Any) -> Any:
        return self.node(dict(zip(self.dep_keys, values)))

    def __eq__(self, other: object) -> bool:
        return type(other) is NodeCall and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __reduce__(self):
        return (NodeCall, (self.node, self.dep_keys, self.key))

    def __repr__(self) -> str:
        return f"{self.key[0]}({', '.join(self.key[1:])})"


def _name(func: Any) -> str:
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', type(func).__name__)}"


def _profile_key(node: Any, types: _DaskTypes) -> tuple:
    """What the GIL profile knows a node by: the function(s) it calls."""
    func = getattr(node, "func", None)
    if func is types.subgraph and node.args and isinstance(node.args[0], dict):
        inner = node.args[0].values()
        return ("subgraph", *sorted({_name(n.func) for n in inner
                                     if getattr(n, "func", None) is not None}))
    return ("node", _name(type(node) if func is None else func))


INTERNAL_FILES.add(__file__)  # a worker's traceback starts at the user's function

_tasks_by_prefix: dict[tuple, Task] = {}


def _task_for(key: Hashable, key_split: Any, func: Callable) -> Task:
    """One fastdag Task per (function, Dask key prefix), so metrics group tasks as Dask does."""
    prefix = key_split(key)
    try:
        return _tasks_by_prefix[func, prefix]
    except KeyError:
        task = _tasks_by_prefix[func, prefix] = Task(func, name=prefix)
        return task
    except TypeError:  # an unhashable callable
        return Task(func, name=prefix)


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
    """Convert ``dsk`` (a Mapping, a collection, or the expression ``dask.compute`` passes)."""
    from dask._task_spec import convert_legacy_graph
    from dask.utils import key_split

    with gc_paused():
        graph = convert_legacy_graph(task_graph(dsk))
        wanted = flatten_keys(keys)
        for key in wanted:
            if key not in graph:
                raise KeyError(key)
        order, index = _topological(graph, wanted)
        plan = _build(graph, order, index, wanted, key_split)
    return DaskPlan(plan, keys, {k: n for n, k in enumerate(wanted)})


_POST = object()  # on the walk's stack: the key below it has all its dependencies ordered
_ENTERED = -1


def _topological(graph: dict, wanted: list) -> tuple[list, dict]:
    """The keys ``wanted`` needs, each after its dependencies (iterative DFS), and their positions."""
    index: dict = {}  # key -> its position in the order, or _ENTERED while its inputs are walked
    order: list = []
    stack: list = list(reversed(wanted))
    push, pop = stack.append, stack.pop
    while stack:
        key = pop()
        if key is _POST:
            key = pop()
            index[key] = len(order)
            order.append(key)
            continue
        at = index.get(key)
        if at is not None:
            if at == _ENTERED:
                raise ValueError(f"the Dask graph has a cycle through key {key!r}")
            continue
        index[key] = _ENTERED
        push(key)
        push(_POST)
        try:
            deps = graph[key].dependencies
        except KeyError:
            raise KeyError(key) from None
        for dep in deps:
            if index.get(dep, _ENTERED) == _ENTERED:
                push(dep)
    return order, index


class _Direct(NamedTuple):
    """A flat Dask Task as a fastdag call: its function, arguments and dependencies."""

    func: Callable
    args: tuple
    deps: tuple[int, ...]
    mode: int     # as Node.mode: 0 no inputs, 1 inputs among the args, 3 args are the inputs
    simple: int   # 1 when every argument pickles without cloudpickle (and no kwargs)
    kwargs: dict | None


class _DaskTypes(NamedTuple):
    """Dask's spec classes, imported when a graph is converted (not with fastdag)."""

    task: type
    ref: type
    data: type
    subgraph: Callable  # dask's evaluator of fused subgraphs
    nodes: tuple[type, ...]   # anything Dask evaluates inside an argument


def _dask_types() -> _DaskTypes:
    from dask._task_spec import DataNode, GraphNode, Task as DaskTask, TaskRef, _execute_subgraph
    return _DaskTypes(DaskTask, TaskRef, DataNode, _execute_subgraph, (GraphNode, TaskRef))


def data_value(value: Any) -> Any:
    """A Dask ``DataNode``'s value, as a task of its own (guarded like any captured argument)."""
    return value


def _direct(node: Any, index: dict, types: _DaskTypes) -> _Direct | None:
    """The common case, ``func(a, TaskRef(k), 3, key=v)``, without Dask's evaluation in between.

    Such a task then pickles and runs as fastdag's own tasks do, and the
    placement profile learns its own function (not one shared evaluator).
    A ``DataNode`` becomes ``data_value(value)``. Anything else (nested
    containers, aliases, fused subgraphs' arguments that hold nodes) is left
    to the GraphNode itself.
    """
    cls = type(node)
    if cls is types.data:
        return _Direct(data_value, (node.value,), (), 0, int(type(node.value) in _ATOMIC), None)
    if cls is not types.task:
        return None
    deps: list[int] = []
    args = _direct_values(node.args, index, types, deps)
    if args is None:
        return None
    func = node.func
    if func is types.subgraph:  # a fused subgraph: its nodes are evaluated by Dask
        return None
    if node.kwargs:
        kwargs = _direct_values(node.kwargs.values(), index, types, deps)
        if kwargs is None:
            return None
        return _Direct(func, tuple(args), tuple(dict.fromkeys(deps)), 1 if deps else 0, 0,
                       dict(zip(node.kwargs, kwargs)))
    simple = int(all([type(a) in _ATOMIC for a in args]))
    if not deps:
        return _Direct(func, tuple(args), (), 0, simple, None)
    if len(deps) == len(args) and len(set(deps)) == len(deps):
        return _Direct(func, (), tuple(deps), 3, 1, None)
    return _Direct(func, tuple(args), tuple(dict.fromkeys(deps)), 1, simple, None)


def _direct_values(values: Any, index: dict, types: _DaskTypes, deps: list[int]) -> list | None:
    """Arguments with ``TaskRef`` as ``Ref`` (their indices added to ``deps``); None if nested."""
    out = []
    ref, nodes = types.ref, types.nodes
    for a in values:
        cls = type(a)
        if cls is ref:
            d = index[a.key]
            deps.append(d)
            out.append(Ref(d))
        elif cls in _LEAVES or not isinstance(a, nodes):
            out.append(a)
        else:
            return None
    return out


def _convert(i: int, key: Hashable, node: Any, index: dict, types: _DaskTypes, key_split: Any,
             columns: tuple[list, list, list, list, list, bytearray]) -> None:
    """Fill row ``i`` of the Plan's columns for a node of any kind (``_direct`` or Dask's own)."""
    tasks, args, kwargs, modes, deps, simple = columns
    direct = _direct(node, index, types)
    if direct is not None:
        tasks[i] = _task_for(key, key_split, direct.func)
        args[i], deps[i], modes[i], simple[i] = direct.args, direct.deps, direct.mode, direct.simple
        kwargs[i] = direct.kwargs
        return
    dep_keys = tuple(node.dependencies)
    # A Task per node (its function holds the node), not one per key prefix
    tasks[i] = Task(NodeCall(node, dep_keys, _profile_key(node, types)), name=key_split(key))
    deps[i] = tuple([index[d] for d in dep_keys])
    args[i], modes[i], simple[i] = (), 3 if dep_keys else 0, 1


def _build(graph: dict, order: list, index: dict, wanted: list, key_split: Any) -> Plan:
    types = _dask_types()
    n = len(order)
    tasks: list[Task] = [None] * n  # type: ignore[list-item]
    args: list[tuple | None] = [None] * n
    kwargs: list[dict | None] = [None] * n
    modes = [0] * n
    deps: list[tuple[int, ...]] = [()] * n
    simple = bytearray(n)
    task_cls, ref, subgraph = types.task, types.ref, types.subgraph
    refs_only, plain = frozenset({ref}), _LEAVES | {ref}
    for i, key in enumerate(order):
        node = graph[key]
        if type(node) is task_cls and not node.kwargs and node.func is not subgraph:
            # The bulk of every graph, without building a _Direct: f(TaskRef..., 3, "x")
            values = tuple(node.args)
            kinds = {type(a) for a in values}
            if kinds == refs_only:
                mine = tuple([index[a.key] for a in values])
                if len(set(mine)) == len(mine):
                    tasks[i] = _task_for(key, key_split, node.func)
                    deps[i], modes[i], simple[i], args[i] = mine, 3, 1, ()
                    continue
            elif kinds <= _LEAVES:
                tasks[i] = _task_for(key, key_split, node.func)
                args[i], simple[i] = values, 1
                continue
            elif kinds <= plain:
                tasks[i] = _task_for(key, key_split, node.func)
                args[i] = tuple([Ref(index[a.key]) if type(a) is ref else a for a in values])
                deps[i] = tuple(dict.fromkeys([a.i for a in args[i] if type(a) is Ref]))
                modes[i], simple[i] = 1, 1
                continue
        _convert(i, key, node, index, types, key_split, (tasks, args, kwargs, modes, deps, simple))
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, mine in enumerate(deps):
        for d in mine:
            dependents[d].append(i)
    outputs = [index[k] for k in wanted]
    flags = bytearray(n)
    for o in outputs:
        flags[o] = 1
    return Plan(tasks=tasks, args=args, kwargs=kwargs, modes=modes, deps=deps,
                dependents=dependents, outputs=outputs, keys=list(range(n)), wanted=flags,
                simple=simple, labels=[str(k) for k in order])
