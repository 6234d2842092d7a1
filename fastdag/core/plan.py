"""The planner: a DAG becomes a flat, picklable ``Plan`` that every executor runs.

A Plan numbers the nodes in the DAG's topological order (creation order) and
keeps, per node: the task, its argument template (Nodes replaced by ``Ref``
placeholders), the indices it depends on, the indices that consume it, and
whether the caller wants its value. Lists of small ints and tuples pickle in
one pass and unpickle without recursion, whatever the graph's depth, so the
whole Plan is shipped to a worker once per run and later messages name tasks
by index only.

Clustering (after WUKONG) is decided from the Plan while the graph runs,
not frozen beforehand, because task costs are unknown until tasks run:

* Batching: the scheduler hands a worker a contiguous slice of the ready
  tasks (see ``batch_size``), not one task per message.
* Chains and subtrees: a worker that finishes a task continues at once with a
  consumer whose inputs it all holds (the workers' task loop); a linear chain
  or a whole reduction subtree then runs inside one worker with no message.
* Fan-out: of several consumers made ready at once the worker keeps one and
  hands the rest back to the scheduler, so other workers share the branches.
* Fan-in: a task made ready by a report is sent first to the worker that
  delivered its last input, where that input already lives.
* Delayed I/O: a result whose consumers all ran in the worker that produced
  it never reaches the object store.
* Lifetimes: ``refcounts`` (consumers + 1 if wanted by the caller) tell the
  scheduler when a stored result can be freed.
"""

from __future__ import annotations

import itertools
import math
import operator
import pickle
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .graph import (ARGS_ARE_DEPS, DAG, NO_NODES, TOP_LEVEL, Node, Task, gc_paused,
                    is_node_list, map_nested, walk_lock)


class Ref:
    """Placeholder in an argument template for the value of node ``i``."""

    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i

    def __reduce__(self):
        return (Ref, (self.i,))

    def __repr__(self) -> str:
        return f"Ref({self.i})"


_ATOMIC = frozenset({int, float, str, bytes, bool, type(None), complex, Ref})


@dataclass
class Plan:
    """Everything a worker needs to run any task of one DAG, by index."""

    tasks: list[Task]
    args: list[tuple | None]
    kwargs: list[dict | None]
    modes: list[int]
    deps: list[tuple[int, ...]]
    # Per task, the tasks that consume it. None: worked out from ``deps`` when
    # first read (``__getattr__``); a run inline in the caller's thread never
    # reads it, and 4,096 lists cost it as much as a fifth of its tasks.
    dependents: list[list[int]] | None
    outputs: list[int]
    keys: list[int]
    wanted: bytearray = field(default_factory=bytearray)
    # Per task: True if its arguments are plain data that ``pickle`` handles
    # on its own (ints, strings, Refs...). Only the others need cloudpickle,
    # whose per-object hook costs about a microsecond: see ``__reduce__``.
    simple: bytearray = field(default_factory=bytearray)
    # Per task, a name given by whoever built the plan (a Dask key), used
    # instead of "<function>-<number>" in errors and metrics.
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        if self.dependents is None:
            del self.dependents  # read through __getattr__ from now on

    def __getattr__(self, name: str):
        if name != "dependents":
            raise AttributeError(name)
        made: list[list[int]] = [[] for _ in self.deps]
        for i, mine in enumerate(self.deps):
            for d in mine:
                made[d].append(i)
        self.__dict__["dependents"] = made
        return made

    def __len__(self) -> int:
        return len(self.tasks)

    def name(self, i: int) -> str:
        """The readable name of task ``i``, as Node.name gives it (or its label)."""
        if self.labels is not None:
            return self.labels[i]
        return f"{self.tasks[i].name}-{self.keys[i]}"

    def names(self) -> _Names:
        """All task names, as a lazy sequence (metrics read few of them)."""
        return _Names(self)

    def functions(self) -> list[str]:
        """The function name of every task, made once: the events and the metrics both ask."""
        made = self.__dict__.get("_functions")  # not a field: never pickled to workers
        if made is None:
            made = self.__dict__["_functions"] = list(map(_NAME, self.tasks))
        return made

    def refcounts(self) -> list[int]:
        """Per task: how many consumers, plus one if the caller wants it."""
        made = self.__dict__.get("dependents")
        if made is not None:
            counts = list(map(len, made))
        else:  # counted from deps, the lists not made
            counts = [0] * len(self.deps)
            for d in itertools.chain.from_iterable(self.deps):
                counts[d] += 1
        for i in itertools.compress(range(len(counts)), self.wanted):
            counts[i] += 1
        return counts

    def __reduce__(self):
        # The structure (ints and tuples) and the simple arguments go through
        # the C pickler in one call; the functions and the remaining
        # arguments are left to whatever pickler is pickling the Plan
        # (cloudpickle, with large buffers out of band).
        tasks = self.tasks
        unique = set(tasks)
        if all(t.importable() for t in unique):
            plain_tasks, table = tasks, None  # the C pickler memoizes repeats
        else:
            table = list(unique)
            ids = {id(t): k for k, t in enumerate(table)}
            plain_tasks = [ids[id(t)] for t in tasks]
        simple = self.simple
        holed: dict[int, tuple] = {}
        holes = array("q")
        if simple.count(0) == 0:  # every task's arguments are plain: the usual case
            plain_args, rich = self.args, {}
        else:
            plain_args = [a if simple[i] else None for i, a in enumerate(self.args)]
            rich = {}
            with gc_paused():
                for i in [i for i in range(len(simple)) if not simple[i]]:
                    template = (self.args[i], self.kwargs[i])
                    wire = _holed(template, holes)
                    if wire is None:
                        rich[i] = template
                    else:
                        holed[i] = wire
        with gc_paused():
            structure = pickle.dumps((plain_tasks, plain_args, self.modes, self.deps,
                                      self.dependents, self.outputs, self.keys, self.wanted,
                                      simple, self.labels, holed, holes), protocol=5)
        return (_restore_plan, (structure, table, rich))


# Argument templates made of these alone (and of lists, tuples and dicts of
# them) travel with the Plan's structure, through the C pickler.
_LEAVES = _ATOMIC - {Ref}


def _holed(template: tuple, holes: array) -> tuple | None:
    """``template`` with every Ref replaced by the class ``Ref`` itself, its index
    appended to ``holes``; None (``holes`` untouched) if it holds anything but plain data.

    A template of plain data pickles in the C pickler without a single call
    back into Python, except for its Refs: each costs a ``__reduce__`` call,
    and a fan-in of 100,000 inputs has 100,000 of them. The class is pickled
    once and then named by the memo, so the holes cost nothing; their
    indices travel as one array and ``_filled`` puts Refs back in the same
    order. Sets are not plain (their holes would merge), nor are subclasses
    (a namedtuple): those templates go through cloudpickle as before.
    """
    start = len(holes)
    try:
        return _hole(template, holes)
    except (_NotPlain, RecursionError):  # too deep for a Python walk: cloudpickle's turn
        del holes[start:]
        return None


class _NotPlain(Exception):
    pass


def _hole(value, holes: array):
    cls = type(value)
    if cls is Ref:
        holes.append(value.i)
        return Ref
    if cls in _LEAVES:
        return value
    if cls is list or cls is tuple:
        kinds = set(map(type, value))
        if kinds <= _LEAVES:
            return value
        if kinds <= _ATOMIC:  # a flat list of Refs and constants, the fan-in's
            holes.extend([v.i for v in value if type(v) is Ref])
            holed = [Ref if type(v) is Ref else v for v in value]
        else:
            holed = [_hole(v, holes) for v in value]
        return holed if cls is list else tuple(holed)
    if cls is dict:
        if not set(map(type, value)) <= _LEAVES:
            raise _NotPlain
        return {k: _hole(v, holes) for k, v in value.items()}
    raise _NotPlain


def _filled(value, holes: Iterator[int]):
    """Undo ``_hole``: each ``Ref`` class in ``value`` becomes Ref(next index)."""
    if value is Ref:
        return Ref(next(holes))
    cls = type(value)
    if cls is list or cls is tuple:
        kinds = set(map(type, value))
        if kinds <= _LEAVES:
            return value
        if kinds <= _LEAVES | {type}:  # plain data holds no classes: a type is a hole
            filled = [Ref(next(holes)) if v is Ref else v for v in value]
        else:
            filled = [_filled(v, holes) for v in value]
        return filled if cls is list else tuple(filled)
    if cls is dict:
        return {k: _filled(v, holes) for k, v in value.items()}
    return value


class _Names(Sequence):
    """``plan.name(i)`` for every i, computed when read."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.plan.name(j) for j in range(*i.indices(len(self)))]
        return self.plan.name(i)


def _restore_plan(structure: bytes, table: list[Task] | None, rich: dict) -> Plan:
    with gc_paused():
        tasks, args, modes, deps, dependents, outputs, keys, wanted, simple, labels, \
            holed, holes = pickle.loads(structure)
        if table is not None:
            tasks = [table[k] for k in tasks]
        kwargs: list[dict | None] = [None] * len(tasks)
        filled = iter(holes)
        for i, wire in holed.items():
            args[i], kwargs[i] = _filled(wire, filled)
        for i, (a, kw) in rich.items():
            args[i] = a
            kwargs[i] = kw
    return Plan(tasks=tasks, args=args, kwargs=kwargs, modes=modes,
                deps=deps, dependents=dependents, outputs=outputs, keys=keys, wanted=wanted,
                simple=simple, labels=labels)


def build_plan(dag: DAG) -> Plan:
    """Number the DAG's nodes and turn their arguments into templates."""
    with gc_paused(), walk_lock:
        return _build_plan(dag)


def _build_plan(dag: DAG) -> Plan:
    # Runs under walk_lock: Node._mark is a scratch slot shared by all graphs,
    # here each node's position in the plan.
    nodes = dag.nodes
    n = len(nodes)
    args: list[tuple | None] = [None] * n
    kwargs: list[dict | None] = [None] * n
    deps: list[tuple[int, ...]] = [()] * n
    simple = bytearray(b"\1") * n  # cleared below where an argument is not plain data
    atomic = _ATOMIC
    for i, node in enumerate(nodes):
        node._mark = i  # numbered as met: its inputs, met before it, already are
        mode = node.mode
        if mode:
            node_deps = node.deps
            if len(node_deps) == 2:  # the commonest shape, without a comprehension
                a, b = node_deps
                deps[i] = (a._mark, b._mark)
            else:
                deps[i] = tuple([d._mark for d in node_deps])
            if mode == ARGS_ARE_DEPS:
                continue
        kw = node.kwargs or None
        if mode == NO_NODES:
            a = node.args
        else:
            a, kw = _template(node, kw)
        args[i] = a
        kwargs[i] = kw
        if kw is not None:
            simple[i] = 0
            continue
        for v in a:
            if type(v) not in atomic:
                simple[i] = 0
                break

    outputs = [o._mark for o in dag.outputs]
    wanted = bytearray(n)
    for o in outputs:
        wanted[o] = 1
    return Plan(tasks=list(map(_TASK, nodes)), args=args, kwargs=kwargs,
                modes=list(map(_MODE, nodes)), deps=deps, dependents=None,
                outputs=outputs, keys=list(map(_KEY, nodes)), wanted=wanted,
                simple=simple)


_TASK, _MODE, _KEY, _NAME = (operator.attrgetter(name) for name in ("task", "mode", "key", "name"))


def _template(node: Node, kw: dict | None) -> tuple[tuple, dict | None]:
    """The argument template of a node with Node arguments: each Node replaced by its Ref."""
    if node.mode == TOP_LEVEL:
        a = tuple([Ref(v._mark) if type(v) is Node else v for v in node.args])
        if kw:
            kw = {k: Ref(v._mark) if type(v) is Node else v for k, v in kw.items()}
        return a, kw
    if kw is None and len(node.args) == 1 and type(node.args[0]) is list \
            and is_node_list(node.args[0]):
        return ([Ref(v._mark) for v in node.args[0]],), None  # f([a, b, ...]): sum, concat
    return map_nested(node.args, Node, _to_ref), map_nested(kw, Node, _to_ref) if kw else None


def _to_ref(node: Node) -> Ref:
    return Ref(node._mark)


def batch_size(ready: int, workers: int, mean_task_seconds: float | None) -> int:
    """How many ready tasks to hand one idle worker in one message.

    An even share of the ready tasks among *all* the workers, busy ones
    included: with the continuation rule, a share of a reduction's leaves
    becomes a whole subtree run without a message, and a fan-out made ready
    while a worker is busy leaves that worker its share, to take when it
    is done, rather than piling every branch on the idle one. Once tasks are
    known to take long, a batch holds no more than about
    ``TARGET_BATCH_SECONDS`` of work, so that workers finishing early can
    still be given the rest: batching pays for tiny tasks only.
    """
    share = max(1, math.ceil(ready / max(1, workers)))
    if mean_task_seconds is not None and mean_task_seconds > 0:
        share = min(share, max(1, int(TARGET_BATCH_SECONDS / mean_task_seconds)))
    return share


TARGET_BATCH_SECONDS = 0.02
