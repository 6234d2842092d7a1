"""Translate a fastdag graph into ``dask.delayed`` objects that do the same work.

The benchmarks compare schedulers, not algorithms, so Dask must run exactly
the graph fastdag runs: the same functions, called with the same arguments,
in the same dependency structure. Rewriting every workload by hand for Dask
would let the two drift apart; walking the built DAG cannot.

Each node becomes one ``dask.delayed(func, pure=False)`` call (``pure=False``
so Dask gives every call its own key, as fastdag does, instead of hashing
large array arguments to deduplicate them). Nodes nested inside lists,
tuples, dicts and sets are replaced by the matching Delayed at any depth;
Dask finds them there just as fastdag does.
"""

from __future__ import annotations

import uuid
from typing import Any

import dask

import fastdag as fd
from fastdag.core.graph import map_nested


def to_dask(outputs: fd.Node | list[fd.Node] | tuple[fd.Node, ...]) -> Any:
    """The Delayed (or tuple of Delayed, for several outputs) equivalent to ``outputs``.

    Nodes are visited in the DAG's topological order, so every dependency is
    translated before its consumers and each node exactly once: a node used
    by several consumers stays a single shared Delayed, as in fastdag.
    """
    single = isinstance(outputs, fd.Node)
    dag = fd.DAG(outputs if not single else [outputs])
    done: dict[int, Any] = {}  # id(Node) -> Delayed
    # Keys unique to this translation: a distributed scheduler that still holds a
    # result under the same key from an earlier compute would hand it back uncomputed.
    token = uuid.uuid4().hex[:12]

    def swap(node: fd.Node) -> Any:
        return done[id(node)]

    for node in dag.nodes:
        args = map_nested(node.args, fd.Node, swap)
        kwargs = map_nested(node.kwargs, fd.Node, swap) if node.kwargs else {}
        # A readable key: Dask's task stream then names the function.
        key = f"{node.task.name}-{node.key}-{token}"
        done[id(node)] = dask.delayed(node.task.func, pure=False)(*args, dask_key_name=key, **kwargs)
    translated = tuple(done[id(node)] for node in dag.outputs)
    return translated[0] if single else translated


def compute(outputs: fd.Node | list[fd.Node] | tuple[fd.Node, ...], **options: Any) -> Any:
    """Translate and run on Dask (``scheduler=`` or a distributed client in ``options``).

    Returns the value for one output, a tuple for several, like ``fd.compute``.
    """
    translated = to_dask(outputs)
    if isinstance(translated, tuple):
        return dask.compute(*translated, **options)
    return dask.compute(translated, **options)[0]


__all__ = ["to_dask", "compute"]
