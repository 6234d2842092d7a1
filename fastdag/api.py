"""Module-level entry points: compute, compute_async, acompute, the default executor.

    fd.compute(*nodes) / Node.compute() ──> executor (default: a LocalExecutor made on
        first use) .submit(nodes) ──> RunFuture ──wait_for──> values

``Node.compute()`` and ``compute_async()`` in ``core/graph.py`` reach this
module through ``core.hooks`` (``compute``, ``resolve_executor``), plugged in
by ``fastdag/__init__.py``: core never imports it.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .core.graph import Node, _collect_nested, map_nested

if TYPE_CHECKING:  # imported on first call: a worker process boots without them
    from .engine.executor import Executor, RunFuture

_default: Executor | None = None
_made: Executor | None = None  # the default made here, not one the user set
_default_lock = threading.Lock()
_factory: Callable[[], Executor] | None = None  # what makes the default; None: a LocalExecutor


def get_default_executor() -> Executor:
    """The process-wide executor, made on first use: a LocalExecutor, or what
    ``set_default_factory`` makes (a worker process's SyncExecutor).

    Its placement is "auto": GIL-releasing graphs run on threads here, the
    others on its worker processes (see ``executors/placement.py``).
    """
    global _default, _made
    with _default_lock:
        if _default is None or (_default is _made and _default.closed):
            # made on first use, and again after someone shut it down
            _default = _made = _factory() if _factory is not None else _local_executor()
        return _default


def _local_executor() -> Executor:
    from .executors.local import LocalExecutor
    return LocalExecutor(placement="auto")


def set_default_factory(factory: Callable[[], Executor] | None) -> None:
    """Make the default executor with ``factory()`` when it is first needed.

    A worker process sets this at boot (``executors/boot.py``): an executor
    made only if a task calls ``compute()``, not imported before the worker
    can take its first task.
    """
    global _factory
    with _default_lock:
        _factory = factory


def set_default_executor(executor: Executor | None) -> Executor | None:
    """Replace the default executor; return the previous one (not shut down)."""
    global _default
    if executor is not None and not _is_executor(executor):
        raise TypeError(f"expected an fd executor, got {type(executor).__name__}")
    with _default_lock:
        previous, _default = _default, executor
    return previous


def _is_executor(value: Any) -> bool:
    from .engine.executor import Executor
    return isinstance(value, Executor)


def _forget_in_forked_child() -> None:
    """A child made by ``os.fork`` (a ``multiprocessing`` fork pool) has none of the
    default executor's threads and must not use its workers: it makes its own
    when it first computes. Executors that hold nothing of the kind stay."""
    global _default, _made, _default_lock
    _default_lock = threading.Lock()  # it may have been held by another thread at fork
    if _default is not None and not getattr(_default, "survives_fork", False):
        _default = _made = None


os.register_at_fork(after_in_child=_forget_in_forked_child)


def resolve_executor(executor: Any) -> Executor:
    """``executor``, or the default one for None; a clear error for anything else
    (``executor="threads"``, as Dask's ``scheduler=`` is written)."""
    if executor is None:
        return get_default_executor()
    if not _is_executor(executor):
        raise TypeError(f"executor= takes an fd executor (fd.LocalExecutor(), "
                        f"fd.ThreadExecutor(), fd.SyncExecutor(), ...), not {executor!r}")
    return executor


@atexit.register
def _shutdown_default() -> None:
    executor = set_default_executor(None)
    if executor is not None:
        executor.shutdown(wait=False)


def _split(args: tuple) -> tuple[list[Node], list[int]]:
    nodes, positions = [], []
    for pos, value in enumerate(args):
        if type(value) is Node:
            nodes.append(value)
            positions.append(pos)
    return nodes, positions


def compute_async(*args: Any, executor: Executor | None = None, **options: Any) -> RunFuture:
    """Start computing the Nodes among ``args``; a Future of the tuple of results."""
    nodes, _ = _split(args)
    if len(nodes) != len(args):
        raise TypeError("compute_async() takes fd.Node arguments only")
    if not nodes:
        raise TypeError("compute_async() needs at least one Node")
    return resolve_executor(executor).submit(nodes, **options)


def compute(*args: Any, executor: Executor | None = None, **options: Any) -> tuple:
    """Compute several Nodes as one graph (shared parts run once); a tuple of results.

    As in dask.compute, Nodes inside lists, tuples, dicts and sets among
    ``args`` are computed too (``fd.compute([a, b])`` is ``([va, vb],)``);
    other arguments are returned as they are.
    """
    nodes, positions = _split(args)
    inner: dict[Node, None] = {}
    if len(nodes) < len(args):
        _collect_nested([a for a in args if type(a) is not Node], inner)
    if not nodes and not inner:
        return tuple(args)
    from .engine.executor import wait_for
    values = wait_for(resolve_executor(executor).submit(nodes + list(inner), **options))
    if inner:
        found = {id(n): v for n, v in zip(nodes + list(inner), values)}
        return tuple(map_nested(a, Node, lambda n: found[id(n)]) for a in args)
    out = list(args)
    for pos, value in zip(positions, values):
        out[pos] = value
    return tuple(out)


async def acompute(*nodes: Node, executor: Executor | None = None, **options: Any) -> Any:
    """``await fd.acompute(node)``: one node gives its value, several a tuple."""
    future = compute_async(*nodes, executor=executor, **options)
    import asyncio  # loaded already: the caller runs in its event loop
    result = await asyncio.wrap_future(future)
    return result[0] if len(nodes) == 1 else result
