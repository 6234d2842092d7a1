"""A Dask graph becomes a fastdag ``Plan``, built directly (no Nodes, no DAG).

    dask graph (legacy tuples, or Task / Alias / DataNode / List / Dict)
        │  dask's own convert_legacy_graph, unless every value is already a
        │  Task or DataNode (one C pass over the value types decides)
        ▼
    the order the graph stores its keys, or its reverse (a delayed graph is
    stored root first), if every key comes after its dependencies and each
    key nobody depends on was asked for ──> one pass fills the Plan's columns
        │ otherwise (or a key missing): the walk from the keys asked for,
        │ only what they need, dependencies before dependents; then that pass
        ▼
    Plan: one task per Dask key, named by the key (``Plan.labels``) and
    grouped in metrics by ``key_split`` (``matmul``, ``sum-aggregate``, ...)

Why the stored order first: the walk was ~3 ms of the 4,096-leaf delayed
tree's ~12 ms conversion, and the pass checks the order for free (each row
compares its dependencies' indices with its own). The rows of the commonest
shapes (``f(TaskRef, TaskRef)``, ``f(constants)``) are filled inline; the
Tasks (one per function and key prefix) and labels are made column-wise.

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

from collections.abc import Callable, Hashable, Mapping
from functools import cache
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


def _task_for(func: Callable, prefix: str) -> Task:
    """One fastdag Task per (function, Dask key prefix), so metrics group tasks as Dask does."""
    try:
        task = _tasks_by_prefix.get((func, prefix))
        if task is None:
            task = _tasks_by_prefix[func, prefix] = Task(func, name=prefix)
        return task
    except TypeError:  # an unhashable callable
        return Task(func, name=prefix)


def _key_split() -> Callable[[Hashable], str]:
    from dask.utils import key_split
    return key_split


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
    with gc_paused():
        graph = _graph_nodes(task_graph(dsk))
        wanted = flatten_keys(keys)
        for key in wanted:
            if key not in graph:
                raise KeyError(key)
        plan = _plan_in_stored_order(graph, wanted)
        if plan is None:
            order, index = _topological(graph, wanted)
            plan = _build(order, list(map(graph.__getitem__, order)), index, wanted)
    return DaskPlan(plan, keys, {k: n for n, k in enumerate(wanted)})


def _graph_nodes(graph: Mapping) -> Mapping:
    """``graph`` with every value a GraphNode: as it is when it holds only Tasks and
    DataNodes (delayed, array and dataframe graphs), else through Dask's converter.

    Dask's ``convert_legacy_graph`` is a Python pass over every key even
    when there is nothing to convert; a set of the value types is one C pass.
    """
    from dask._task_spec import DataNode, Task as DaskTask, convert_legacy_graph
    if set(map(type, graph.values())) <= {DaskTask, DataNode}:
        return graph
    return convert_legacy_graph(graph)


def _plan_in_stored_order(graph: Mapping, wanted: list) -> Plan | None:
    """The Plan in the order the graph's keys are stored (or its reverse), with no walk.

    A delayed graph is merged from its layers root first (each collection's
    own layer, then its dependencies'), a dict written by hand is often
    inputs first: when that order, or its reverse, already puts every key
    after its dependencies, and every key is needed (each one nobody
    depends on is asked for), the walk from the keys asked for is not
    needed. None otherwise (``_Unordered``: then that walk orders and culls).
    """
    order = list(graph)
    nodes = list(graph.values())
    if _stored_root_first(nodes, order):
        order.reverse()
        nodes.reverse()
    index = dict(zip(order, range(len(order))))
    try:
        plan = _build(order, nodes, index, wanted)
    except (_Unordered, KeyError):  # a missing key may belong to a key not needed
        return None
    unused = list(map(len, plan.dependents)).count(0)
    if unused != sum(1 for o in plan.outputs if not plan.dependents[o]):
        return None  # a key nobody needs (nor asked for): the walk leaves it out
    return plan


def _stored_root_first(nodes: list, order: list) -> bool:
    """Whether the first key with dependencies is stored before one of them."""
    for position, node in enumerate(nodes):
        deps = node.dependencies
        if deps:
            try:
                order.index(next(iter(deps)), position + 1)
            except ValueError:
                return False
            return True
    return False


class _Unordered(Exception):
    """A key met before one of its dependencies, in the order tried."""


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
    plain: frozenset          # the argument types of a plain call: TaskRef and _LEAVES


@cache
def _dask_types() -> _DaskTypes:
    from dask._task_spec import DataNode, GraphNode, Task as DaskTask, TaskRef, _execute_subgraph
    return _DaskTypes(DaskTask, TaskRef, DataNode, _execute_subgraph, (GraphNode, TaskRef),
                      _LEAVES | {TaskRef})


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


def _convert(i: int, key: Hashable, node: Any, index: dict, types: _DaskTypes) -> tuple:
    """Row ``i`` of the Plan for a node of any kind (``_direct`` or Dask's own evaluation):
    (function, args, deps, mode, simple, kwargs, its own Task or None).
    """
    direct = _direct(node, index, types)
    if direct is not None:
        row = (direct.func, direct.args, direct.deps, direct.mode, direct.simple,
               direct.kwargs, None)
    else:
        dep_keys = tuple(node.dependencies)
        # A Task per node (its function holds the node), not one per key prefix
        call = NodeCall(node, dep_keys, _profile_key(node, types))
        row = (call, (), tuple([index[d] for d in dep_keys]), 3 if dep_keys else 0, 1, None,
               Task(call, name=_key_split()(key)))
    if row[2] and max(row[2]) >= i:
        raise _Unordered
    return row


def _tasks(funcs: list, order: list, own: dict[int, Task]) -> list[Task]:
    """The fastdag Task of every row: its own (``own``), else one per (function, key prefix)."""
    key_split = _key_split()
    try:
        tasks = list(map(_tasks_by_prefix.get, zip(funcs, map(key_split, order))))
    except TypeError:  # an unhashable callable somewhere: look each up below
        tasks = [None] * len(order)
    if tasks.count(None):
        for i in [i for i, task in enumerate(tasks) if task is None]:
            tasks[i] = own.get(i) or _task_for(funcs[i], key_split(order[i]))
    return tasks


def _build(order: list, nodes: list, index: dict, wanted: list) -> Plan:
    """The Plan of ``nodes`` (the graph's values for ``order``), in that order.

    Raises ``_Unordered`` if a node comes before one of its dependencies.
    One pass over the nodes fills the columns, ``f(TaskRef, TaskRef)`` (a
    reduction's step) and ``f(1, "x")`` inline, anything else by ``_row``; the fastdag
    Tasks (one per function and Dask key prefix) and the labels are then
    made column-wise.
    """
    n = len(order)
    funcs: list[Any] = [None] * n
    args: list[tuple | None] = [()] * n
    kwargs: list[dict | None] = [None] * n
    modes = [3] * n
    deps: list[tuple[int, ...]] = [()] * n
    dependents: list[list[int]] = [[] for _ in range(n)]
    simple = bytearray(b"\x01") * n
    own: dict[int, Task] = {}
    types = _dask_types()
    task_cls, ref, leaves = types.task, types.ref, _LEAVES
    for i, node in enumerate(nodes):
        if type(node) is task_cls and not node.kwargs:
            values = node.args
            if len(values) == 2:
                a, b = values
                if type(a) is ref and type(b) is ref:
                    x, y = index[a.key], index[b.key]
                    if x < i and y < i and x != y:
                        funcs[i], deps[i] = node.func, (x, y)
                        dependents[x].append(i)
                        dependents[y].append(i)
                        continue
            if set(map(type, values)) <= leaves:  # constants only (a subgraph has a dict)
                funcs[i], args[i], modes[i] = node.func, values, 0
                continue
        row = _row(i, node, index, types, order)
        funcs[i], args[i], deps[i], modes[i], simple[i], kwargs[i] = row[:6]
        if row[6] is not None:
            own[i] = row[6]
        for d in row[2]:
            dependents[d].append(i)
    outputs = [index[k] for k in wanted]
    flags = bytearray(n)
    for o in outputs:
        flags[o] = 1
    return Plan(tasks=_tasks(funcs, order, own), args=args, kwargs=kwargs, modes=modes,
                deps=deps, dependents=dependents, outputs=outputs, keys=list(range(n)),
                wanted=flags, simple=simple, labels=list(map(str, order)))


def _row(i: int, node: Any, index: dict, types: _DaskTypes, order: list) -> tuple:
    """Row ``i`` of the Plan: (function, args, deps, mode, simple, kwargs, own Task or None).

    A Task without keywords whose arguments are TaskRefs and constants (the
    bulk of every graph) without building a ``_Direct``; anything else by
    ``_convert``. Raises ``_Unordered`` if a dependency is not before ``i``.
    """
    if type(node) is types.task and not node.kwargs and node.func is not types.subgraph:
        values = node.args
        kinds = set(map(type, values))
        if kinds <= _LEAVES:
            return node.func, values, (), 0, 1, None, None
        if kinds <= types.plain:
            ref = types.ref
            template = tuple([Ref(index[a.key]) if type(a) is ref else a for a in values])
            mine = tuple(dict.fromkeys([a.i for a in template if type(a) is Ref]))
            if max(mine) >= i:
                raise _Unordered
            if len(kinds) == 1 and len(mine) == len(values):  # f(a, b, c) of distinct inputs
                return node.func, (), mine, 3, 1, None, None
            return node.func, template, mine, 1, 1, None, None
    return _convert(i, order[i], node, index, types)
