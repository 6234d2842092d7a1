"""Lazy task graphs: ``@task`` functions, the ``Node`` a call returns, and ``DAG``.

Calling a task runs nothing: it returns a ``Node`` that remembers the function
and its arguments. Arguments may be Nodes, or containers (list, tuple, dict,
set, frozenset, namedtuple, dataclass instance) holding Nodes at any depth;
those Nodes are the node's dependencies. Everything else is captured by
value at call time.

Nodes are built by the million in big graphs, so a Node is a slotted object
whose constructor does only what it must: one scan of the arguments to find
dependencies. Identity is the key (``is``): no hashing of arguments, no
tokenizing. Graph walks are iterative, so a chain of 100,000 nodes does not
touch the recursion limit.

This module holds no execution code; ``plan.py`` turns a DAG into work.

Running is not core's business either: ``Node.compute()`` and
``compute_async()`` hand the graph to ``fastdag.api`` (the default executor
and the run) through ``hooks.compute`` / ``hooks.resolve_executor``, and
drawing without Graphviz goes through ``hooks.draw_dag`` to ``fastdag.viz``;
nothing in core imports upward.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import gc
import importlib
import inspect
import itertools
import operator
import shutil
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from . import hooks
from .coroutines import synchronous

_CONTAINERS = (list, tuple, dict, set, frozenset)
_SCALARS = frozenset({int, float, complex, str, bytes, bool, type(None)})

# ``Node.mode``: how the runner puts a Node's argument values in place. Plain
# ints, not an IntEnum: one is set on every Node built and compared for every
# task run, and a plain int keeps both (and the pickled Plan) as cheap as a literal.
NO_NODES = 0       # no Node among the arguments: call with them as given
TOP_LEVEL = 1      # Nodes only directly in args/kwargs: replace those
NESTED = 2         # Nodes inside containers: map over the containers
ARGS_ARE_DEPS = 3  # the positional args are exactly ``deps``: func(*values of deps)
_next_key = itertools.count().__next__
_new_node = object.__new__
_NO_KWARGS: dict = {}  # the kwargs of every Node called without keywords: never written to


class Task:
    """A function made lazy by ``@fd.task``; calling it returns a :class:`Node`.

    ``retries`` re-runs a task that raised or whose worker died. ``nout``
    declares how many items the result has, so ``a, b = f(x)`` can unpack
    it into separate Nodes. ``requires`` lists what a worker must provide
    (pip requirement strings), checked before the task runs remotely.
    ``gil`` tells the default executor whether the function holds the GIL
    (True: keep it on worker processes; False: it releases the GIL, threads
    may run it; None: measure it, see ``executors/placement.py``).
    """

    def __init__(self, func: Callable, name: str | None = None, retries: int = 0,
                 nout: int | None = None, requires: Sequence[str] = (),
                 gil: bool | None = None):
        if not callable(func):
            raise TypeError(f"fd.task needs a callable, got {type(func).__name__}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative int, got {retries!r}")
        if nout is not None and (not isinstance(nout, int) or nout < 0):
            raise ValueError(f"nout must be a non-negative int or None, got {nout!r}")
        if gil not in (None, True, False):
            raise ValueError(f"gil must be True, False or None, got {gil!r}")
        # How many positional args a call without keywords may pass (empty: check each call).
        self._accepts = _counts(_positional_arity(func))
        self._signature: inspect.Signature | None = None
        functools.update_wrapper(self, func, updated=())
        if inspect.iscoroutinefunction(func):  # async def: the value is what it returns
            func = synchronous(func)
        self.func = func
        self.gil = gil
        self.name = name or getattr(func, "__name__", type(func).__name__)
        self.retries = retries
        self.nout = nout
        self.requires = tuple(requires)

    def __call__(self, *args: Any, **kwargs: Any) -> Node:
        # Fail at call time, as the plain function would, on a wrong arity.
        if kwargs or len(args) not in self._accepts:
            self._check_call(args, kwargs)
        elif len(args) == 2:
            a, b = args
            if type(a) is Node and type(b) is Node and a is not b:
                # f(a, b) of two Nodes, the bulk of big graphs: made here, without a
                # call of Node.__init__ (a sixth of building a tree of them).
                node = _new_node(Node)
                node.task = self
                node.args = args
                node.kwargs = _NO_KWARGS  # this call's empty dict goes back to the free list
                node.deps = args
                node.mode = ARGS_ARE_DEPS
                node.key = _next_key()
                node._mark = 0
                return node
        return Node(self, args, kwargs)

    def _check_call(self, args: tuple, kwargs: dict) -> None:
        if self._signature is None:
            try:
                self._signature = inspect.signature(self.func)
            except (TypeError, ValueError):  # builtins without a signature
                return
            if not self._accepts:  # builtins: their signature says it once
                self._accepts = _counts(_signature_arity(self._signature))
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """``@fd.task`` on a method: ``obj.method(x)`` is a Node of ``method(obj, x)``.

        Only a function written in a class body binds (its ``__qualname__``
        is ``Class.name``): ``step = fd.task(module_function)`` on a class
        stays unbound, as a ``dask.delayed`` function there does; builtins,
        ``staticmethod`` and partials do not bind, as in Python.
        """
        if instance is None or type(self.func) is not _FUNCTION:
            return self
        owner_name = self.func.__qualname__.rpartition(".")[0]
        if not owner_name or owner_name.endswith("<locals>"):
            return self
        return types.MethodType(self, instance)

    def __repr__(self) -> str:
        return f"<fd.task {self.name}>"

    def importable(self) -> bool:
        """Whether plain ``pickle`` can send this Task (its module names it or its function).

        Such tasks travel as a module path and are imported by the worker;
        the others (``__main__``, closures, notebooks) need cloudpickle.
        """
        return self._pickle_by() != "value"

    def _pickle_by(self) -> str:
        by = self.__dict__.get("_by")
        if by is None:
            module = getattr(self.func, "__module__", None)
            qualname = getattr(self.func, "__qualname__", "")
            by = "value"
            if module and module != "__main__" and "<locals>" not in qualname:
                try:
                    target = _lookup(module, qualname)
                except (ImportError, AttributeError):
                    target = None
                by = "task" if target is self else "func" if target is self.func else "value"
            self.__dict__["_by"] = by
        return by

    def __reduce__(self):
        if self._pickle_by() == "task":
            return (_lookup, (self.func.__module__, self.func.__qualname__))
        return (_rebuild_task, (self.func, self.name, self.retries, self.nout, self.requires,
                                self.gil))


def _lookup(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _rebuild_task(func, name, retries, nout, requires, gil=None) -> Task:
    return Task(func, name=name, retries=retries, nout=nout, requires=requires, gil=gil)


def _counts(arity: tuple[int, float] | None) -> range:
    """The positional-argument counts ``arity`` (fewest, most) allows, as a range:
    one C-level ``in`` per call. Empty for None (every call checked by signature)."""
    if arity is None:
        return range(0)
    fewest, most = arity
    return range(fewest, sys.maxsize if most == float("inf") else int(most) + 1)


def _positional_arity(func: Callable) -> tuple[int, float] | None:
    """How many positional arguments (fewest, most) a call without keywords may pass, or None.

    Lets ``Task.__call__`` validate the common call with two integer compares
    instead of ``Signature.bind`` (microseconds that add up in big graphs).
    """
    code = getattr(func, "__code__", None)
    if code is None or inspect.ismethod(func):
        return None
    if code.co_kwonlyargcount and len(getattr(func, "__kwdefaults__", None) or ()) \
            < code.co_kwonlyargcount:
        return None  # a required keyword-only argument: every call needs a check
    most = float("inf") if code.co_flags & inspect.CO_VARARGS else code.co_argcount
    return code.co_argcount - len(getattr(func, "__defaults__", None) or ()), most


def _signature_arity(signature: inspect.Signature) -> tuple[int, float] | None:
    """``_positional_arity`` from a signature (builtins), or None if keywords are required."""
    fewest, most = 0, 0.0
    for p in signature.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            most = float("inf")
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            most += 1
            fewest += p.default is p.empty
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            return None
    return fewest, most


def task(func: Callable | None = None, /, **options: Any) -> Any:
    """Make ``func`` lazy: ``@fd.task`` or ``@fd.task(name=..., retries=..., nout=..., gil=...)``.

    Wrapping the same function again with the same options returns the same
    Task (see ``_cached_task``), so ``fd.task(f)(x)`` written at every call,
    the ``dask.delayed(f)(x)`` idiom, plans and ships like one wrapper.

    The options are those of ``_task_with_options`` (its signature is this
    function's ``__signature__``): taken as ``**options`` here so that the
    common ``fd.task(f)`` at every call, one dict lookup by identity (or by
    code, for a lambda made anew each time), does not pay for filling five
    keyword-only defaults first (a third of its cost).
    """
    if not options and func is not None:
        ref = _plain_tasks.get(id(func))
        found = ref() if ref is not None else None
        if found is not None and found.func is func:
            return found
        found = _same_code_task(func)
        if found is not None:
            return found
    if func is None:  # @fd.task(...), or fd.task(func=f)
        return _task_with_options(**options)
    return _task_with_options(func, **options)


def _task_with_options(func: Callable | None = None, *, name: str | None = None,
                       retries: int = 0, nout: int | None = None, requires: Sequence[str] = (),
                       gil: bool | None = None) -> Any:
    """``task`` with its options spelled out (and checked by Python: an unknown one raises)."""
    options = (name, retries, nout, tuple(requires), gil)
    if func is None:
        return lambda f: _cached_task(f, options)
    return _cached_task(func, options)


task.__signature__ = inspect.signature(_task_with_options)  # type: ignore[attr-defined]
# Its errors (an unknown option) name ``task()``, the function the user called.
_task_with_options.__qualname__ = "task"


_DEFAULTS = (None, 0, None, (), None)
_plain_tasks: dict[int, weakref.ref] = {}  # id(func) -> its Task with default options


_task_cache: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_task_cache_lock = threading.Lock()


def _cached_task(func: Callable, options: tuple) -> Task:
    """The Task for ``func`` and these options: the one made before if it is still alive.

    Weak values: a Task no one holds is dropped with its function. Plain
    functions without closure or attributes are keyed by their code, globals
    and defaults, so a lambda written at each call (a new function object
    every time, same behaviour) maps to one Task too; other callables by
    identity (a live Task keeps its function, so the id is not reused).
    """
    try:
        key = (_behaviour_key(func), options)
        hash(key)
    except TypeError:  # unhashable defaults or options: no caching
        return Task(func, *options)
    with _task_cache_lock:
        found = _task_cache.get(key)
        if found is None:
            found = _task_cache[key] = Task(func, *options)
        if options == _DEFAULTS:
            if found.func is func:
                _plain_tasks[id(func)] = weakref.ref(found, functools.partial(_forget, id(func)))
            if key[0][0] != "id":
                code = func.__code__
                _code_tasks[id(code)] = (
                    weakref.ref(found, functools.partial(_forget_code, id(code))), code,
                    func.__globals__, func.__qualname__, key[0][2])
        return found


def _forget(func_id: int, ref: weakref.ref) -> None:
    if _plain_tasks.get(func_id) is ref:
        del _plain_tasks[func_id]


def _forget_code(code_id: int, ref: weakref.ref) -> None:
    entry = _code_tasks.get(code_id)
    if entry is not None and entry[0] is ref:
        del _code_tasks[code_id]


# id(code) -> (weakref to the last default Task of a function with that code, the code
# itself (held, so that its id is not reused while the entry lives), and what
# ``_behaviour_key`` said of that function: its globals, qualname and ``_defaults_key``).
# A plain tuple: unpacked for every lambda written at a call, where fields cost more.
_code_tasks: dict[int, tuple] = {}


def _same_code_task(func: Callable) -> Task | None:
    """The default-options Task of a function that behaves as ``func`` does, found by its code.

    What ``_behaviour_key`` decides, checked field by field against what it
    said of the function the Task was made from, without hashing a code
    object or taking the cache's lock: a lambda written at each call costs a
    dict lookup and a few attribute reads.
    """
    if type(func) is not _FUNCTION:
        return None
    code = func.__code__
    entry = _code_tasks.get(id(code))
    if entry is None:
        return None
    ref, same_code, globals_, qualname, defaults_key = entry
    defaults = func.__defaults__
    if (same_code is code and globals_ is func.__globals__ and func.__closure__ is None
            and not func.__kwdefaults__ and not func.__dict__ and qualname == func.__qualname__
            and (defaults_key is None if defaults is None
                 else _defaults_key(func) == defaults_key)):
        return ref()
    return None


def _behaviour_key(func: Callable) -> tuple:
    code = getattr(func, "__code__", None)
    if (type(func) is _FUNCTION and func.__closure__ is None and not func.__dict__
            and not func.__kwdefaults__):
        return (code, id(func.__globals__), _defaults_key(func), func.__qualname__)
    return ("id", id(func))


def _defaults_key(func: Callable) -> tuple | None:
    """A function's default values with their types: ``1``, ``1.0`` and ``True`` are
    equal and hash alike, but ``lambda x, s=s: x * s`` made with each must stay three tasks."""
    defaults = func.__defaults__
    return None if defaults is None else tuple((type(d), d) for d in defaults)


_FUNCTION = type(_positional_arity)


def _getitem(obj: Any, key: Any) -> Any:
    return obj[key]


_getitem_task = Task(_getitem, name="getitem")


class Node:
    """One call of a task, not yet run. Compute it with ``.compute()``.

    ``deps`` are the distinct Nodes among the arguments, in order of first
    appearance. ``mode`` tells the runner how to substitute their values:
    ``NO_NODES``, ``TOP_LEVEL``, ``NESTED`` or ``ARGS_ARE_DEPS`` (the common
    ``f(a, b)`` of two Nodes: nothing to substitute); see their definitions.
    """

    # ``_mark``: scratch for graph walks, which all take ``walk_lock``: a walk's
    # stamp (negative, see ``_topological_order``) or, while a plan is being
    # built, the node's position in it (see ``plan.build_plan``); 0 when made.
    __slots__ = ("task", "args", "kwargs", "deps", "mode", "key", "_mark", "__weakref__")

    def __init__(self, task: Task, args: tuple, kwargs: dict):
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.key = _next_key()
        self._mark = 0
        if not kwargs and len(args) == 2:
            # f(1, 2): settled without building a dict (f(a, b) of two Nodes is
            # made by Task.__call__ itself).
            a, b = args
            if type(a) in _SCALARS and type(b) in _SCALARS:
                self.deps, self.mode = (), NO_NODES
                return
        elif not kwargs and len(args) == 1 and type(args[0]) is list:
            # f([a, b, ...]) of Nodes only (sum, concat), or of plain numbers
            # (a reduction's leaves, sum([0, 1])): settled without a nested walk.
            found = _flat_list_deps(args[0])
            if found is not None:
                self.deps, self.mode = found
                return
        # A dict keeps first-appearance order and finds repeats in O(1): a
        # fan-in of 100,000 Nodes in one list must not cost a list scan per Node.
        deps: dict[Node, None] = {}
        mode = NO_NODES
        for value in itertools.chain(args, kwargs.values()) if kwargs else args:
            cls = type(value)
            if cls is Node:
                if mode == NO_NODES:
                    mode = TOP_LEVEL
                deps[value] = None
            elif (isinstance(value, _CONTAINERS)
                  or cls not in _SCALARS and hasattr(cls, _DATACLASS)) \
                    and _collect_nested(value, deps):
                mode = NESTED
        if mode == TOP_LEVEL and not kwargs and len(deps) == len(args):
            mode = ARGS_ARE_DEPS  # every argument is a distinct Node: the args are the deps
            self.deps = args  # the same tuple: one object fewer for the GC to track
        else:
            self.deps = tuple(deps)
        self.mode = mode

    # -- naming ---------------------------------------------------------------
    @property
    def name(self) -> str:
        """A readable unique name: the task's name and this node's number."""
        return f"{self.task.name}-{self.key}"

    def __repr__(self) -> str:
        return f"Node({self.name})"

    # -- lazy item access, as dask.delayed -----------------------------------
    def __getitem__(self, key: Any) -> Node:
        return Node(_getitem_task, (self, key), {})

    def __iter__(self) -> Iterator[Node]:
        nout = self.task.nout
        if nout is None:
            raise TypeError(
                f"{self.name} has no declared length: use @fd.task(nout=N) to unpack "
                "its result, or index it with node[i]")
        return (self[i] for i in range(nout))

    def __len__(self) -> int:
        if self.task.nout is None:
            raise TypeError(f"{self.name} has no declared length (use @fd.task(nout=N))")
        return self.task.nout

    def __bool__(self) -> bool:
        return True

    # -- execution shortcuts -------------------------------------------------
    @property
    def dag(self) -> DAG:
        """The graph of everything this node needs."""
        return DAG([self])

    def compute(self, executor: Any = None, **options: Any) -> Any:
        """Run the graph ending here and return this node's value."""
        return hooks.compute(self, executor=executor, **options)[0]

    def compute_async(self, executor: Any = None, **options: Any):
        """Start the graph ending here; return a ``concurrent.futures.Future``."""
        return hooks.resolve_executor(executor).submit(self, **options)

    def __reduce__(self):
        raise TypeError(
            f"{self.name} is a lazy fd.Node and cannot be pickled; pass it as an "
            "argument of another task, or compute() it first")


def _flat_list_deps(items: list) -> tuple[tuple, int] | None:
    """``(deps, mode)`` of a call ``f(items)`` when ``items`` holds only Nodes or only
    scalars (not empty); None for anything else (the general walk decides)."""
    nodes = scalars = 0
    for value in items:
        cls = type(value)
        if cls is Node:
            nodes += 1
        elif cls in _SCALARS:
            scalars += 1
        else:
            return None
    if nodes and not scalars:
        if nodes == 2:  # the pairwise reduction's sum([a, b])
            a, b = items
            return ((a, b) if a is not b else (a,)), NESTED
        return tuple(dict.fromkeys(items)), NESTED
    if scalars and not nodes:
        return (), NO_NODES
    return None


def is_node_list(items: list) -> bool:
    """Whether ``items`` is a non-empty list of Nodes and nothing else."""
    for value in items:
        if type(value) is not Node:
            return False
    return bool(items)


def _collect_nested(container: Any, deps: dict[Node, None]) -> bool:
    """Add Nodes found at any depth in ``container`` to ``deps``; True if any."""
    found = False
    stack = [container]
    seen = {id(container)}  # a list that holds itself is a valid argument
    while stack:
        obj = stack.pop()
        items = obj.values() if isinstance(obj, dict) else \
            obj if isinstance(obj, _CONTAINERS) else _field_values(obj)
        for value in items:
            if type(value) is Node:
                found = True
                deps[value] = None
            elif (isinstance(value, _CONTAINERS) or _is_dataclass(value)) \
                    and id(value) not in seen:
                seen.add(id(value))
                stack.append(value)
        if isinstance(obj, dict):
            for k in obj:
                if type(k) is Node:
                    raise TypeError("a Node cannot be a dict key; use it as a value")
    return found


def map_nested(template: Any, cls: type, fn: Callable[[Any], Any]) -> Any:
    """Rebuild ``template`` with every instance of ``cls`` replaced by ``fn(obj)``.

    Containers (list, tuple, namedtuple, dict, set, frozenset) are copied at
    every depth, a dataclass instance where one of its fields changes
    (``_map_fields``); other values are returned as they are.
    """
    if type(template) is cls:
        return fn(template)
    if isinstance(template, dict):
        items = {k: map_nested(v, cls, fn) for k, v in template.items()}
        return items if type(template) is dict else type(template)(items)
    if isinstance(template, _CONTAINERS):
        # Leaves handled inline: a fan-in's list of 100,000 Nodes costs no recursion.
        items = [fn(v) if type(v) is cls else v if type(v) in _SCALARS else map_nested(v, cls, fn)
                 if isinstance(v, _CONTAINERS) or hasattr(type(v), _DATACLASS) else v
                 for v in template]
        if type(template) is list:
            return items
        if hasattr(template, "_fields"):  # namedtuple
            return type(template)(*items)
        return type(template)(items)
    if _is_dataclass(template):
        return _map_fields(template, cls, fn)
    return template


def _is_dataclass(value: Any) -> bool:
    """Whether ``value`` is a dataclass instance (not a dataclass itself)."""
    return hasattr(type(value), _DATACLASS)  # a dataclass's own type is ``type``: no fields


_DATACLASS = "__dataclass_fields__"


def _field_values(obj: Any) -> list:
    """The values of a dataclass instance's fields (a field never set is left out)."""
    missing = object()
    values = [getattr(obj, f.name, missing) for f in dataclasses.fields(obj)]
    return [v for v in values if v is not missing]


def _map_fields(obj: Any, cls: type, fn: Callable[[Any], Any]) -> Any:
    """A shallow copy of dataclass instance ``obj`` with ``map_nested`` applied to its
    fields, or ``obj`` itself if none changes. Fields are set as ``copy`` sets them,
    without calling ``__init__`` again, so frozen and slotted dataclasses work too."""
    changed = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name, changed)
        if value is not changed:
            new = map_nested(value, cls, fn)
            if new is not value:
                changed[f.name] = new
    if not changed:
        return obj
    out = copy.copy(obj)
    for name, value in changed.items():
        object.__setattr__(out, name, value)
    return out


class DAG:
    """An immutable task graph: the outputs asked for and all they depend on.

    ``nodes`` is in topological order (every node after its dependencies):
    the order in which the nodes were created.
    """

    def __init__(self, outputs: Node | Iterable[Node]):
        outs = [outputs] if isinstance(outputs, Node) else list(outputs)
        for out in outs:
            if type(out) is not Node:
                raise TypeError(f"a DAG is built from fd.Node objects, got {type(out).__name__}")
        if not outs:
            raise ValueError("a DAG needs at least one output node")
        self.outputs: tuple[Node, ...] = tuple(outs)
        with gc_paused():
            self.nodes: list[Node] = _topological_order(outs)

    @functools.cached_property
    def index(self) -> dict[int, int]:
        """Position of each node in ``nodes``, keyed by ``id(node)``."""
        return {id(n): i for i, n in enumerate(self.nodes)}

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __contains__(self, node: object) -> bool:
        return id(node) in self.index and self.nodes[self.index[id(node)]] is node

    def __repr__(self) -> str:
        return f"<fd.DAG {len(self.nodes)} nodes, {len(self.outputs)} outputs>"

    @functools.cached_property
    def dependents(self) -> list[list[int]]:
        """For each node index, the indices of the nodes that consume it."""
        index = self.index
        out: list[list[int]] = [[] for _ in self.nodes]
        for i, node in enumerate(self.nodes):
            for dep in node.deps:
                out[index[id(dep)]].append(i)
        return out

    @property
    def roots(self) -> list[Node]:
        """Nodes with no Node arguments: where execution starts."""
        return [n for n in self.nodes if not n.deps]

    @property
    def sinks(self) -> list[Node]:
        """Nodes nothing in the graph consumes."""
        deps = self.dependents
        return [n for i, n in enumerate(self.nodes) if not deps[i]]

    @property
    def edges(self) -> list[tuple[Node, Node]]:
        """(producer, consumer) pairs."""
        return [(d, n) for n in self.nodes for d in n.deps]

    def levels(self) -> list[int]:
        """Each node's longest distance (in edges) from a root."""
        index = self.index
        level = [0] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            if node.deps:
                level[i] = 1 + max(level[index[id(d)]] for d in node.deps)
        return level

    @property
    def depth(self) -> int:
        """Number of nodes on the longest path."""
        return 1 + max(self.levels())

    def critical_path(self, durations: dict[int, float] | None = None) -> list[Node]:
        """The heaviest root-to-sink path: by node count, or by ``durations[node.key]``."""
        index = self.index
        best = [0.0] * len(self.nodes)
        came: list[int] = [-1] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            weight = 1.0 if durations is None else durations.get(node.key, 0.0)
            prev = -1
            for d in node.deps:
                j = index[id(d)]
                if prev < 0 or best[j] > best[prev]:
                    prev = j
            best[i] = weight + (best[prev] if prev >= 0 else 0.0)
            came[i] = prev
        i = max(range(len(best)), key=best.__getitem__)
        path = []
        while i >= 0:
            path.append(self.nodes[i])
            i = came[i]
        return path[::-1]

    def to_dot(self) -> str:
        """The graph in Graphviz DOT, outputs drawn with a double border."""
        outs = {id(n) for n in self.outputs}
        lines = ["digraph fastdag {", "  rankdir=BT;", "  node [shape=box, fontsize=10];"]
        for n in self.nodes:
            shape = ", peripheries=2" if id(n) in outs else ""
            lines.append(f'  n{n.key} [label="{_dot_escape(n.name)}"{shape}];')
        for d, n in self.edges:
            lines.append(f"  n{d.key} -> n{n.key};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def visualize(self, path: str = "dag.png") -> str:
        """Draw the graph to PNG or SVG: Graphviz if installed, else matplotlib."""
        fmt = path.rsplit(".", 1)[-1].lower()
        if fmt not in ("png", "svg", "pdf"):
            raise ValueError(f"visualize writes .png, .svg or .pdf, not {path!r}")
        dot = shutil.which("dot")
        if dot:
            import subprocess  # here: a worker process imports this module before its first task
            subprocess.run([dot, f"-T{fmt}", "-o", path], input=self.to_dot().encode(),
                           check=True, capture_output=True)
            return path
        hooks.draw_dag(self, path)  # matplotlib, in fastdag.viz
        return path


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around bulk work that makes no cycles.

    Walking or numbering a million nodes allocates millions of tuples and
    dict entries; every 700 allocations CPython would scan the young ones,
    which roughly doubles the time of such passes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# Graph walks stamp the nodes they visit (``Node._mark``) rather than keep a
# set of ids: an attribute store is several times cheaper than hashing an id.
# Stamps are shared by every graph a node belongs to, so walks take this lock.
walk_lock = threading.Lock()
_walk_stamps = itertools.count(-1, -1).__next__  # negative: never a plan position


def _topological_order(outputs: list[Node]) -> list[Node]:
    """Every node the outputs need, sorted by creation number.

    A node is always created after its arguments, so creation order is a
    topological order; one walk plus a sort of integers beats a depth-first
    post-order in Python, and it keeps tasks the user built together
    (one loop, one branch) next to each other, which batching relies on.
    """
    with walk_lock:
        stamp = _walk_stamps()
        for out in outputs:
            out._mark = stamp
        stack = list(outputs)
        nodes = []
        append, pop, push = nodes.append, stack.pop, stack.append
        while stack:
            node = pop()
            append(node)
            for dep in node.deps:
                if dep._mark != stamp:
                    dep._mark = stamp
                    push(dep)
    nodes.sort(key=_by_key)
    return nodes


_by_key = operator.attrgetter("key")


# Aliases for code written against the original prototype.
DAGTask = task
DAGTaskNode = Node

__all__ = ["Task", "Node", "DAG", "task", "map_nested", "DAGTask", "DAGTaskNode"]
