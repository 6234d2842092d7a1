"""The task graph of what ``dask.compute`` hands a scheduler, without Dask's cull of delayed graphs.

    dask.compute(delayed...) ──> _HLGExprSequence( HLGExpr(HighLevelGraph, delayed's optimizer) ...)
        │ Dask's own route (``expr.__dask_graph__()``): the optimizer culls the
        │ HighLevelGraph layer by layer (one layer per Delayed call: 4,095 for
        │ a 4,096-leaf tree), then merges the layers into one dict
        ▼
    here, when every part is a plain HLGExpr whose optimizer is delayed's
    and linear fusion of delayed graphs is off (Dask's default): only the
    merge. The cull is not needed: ``dask_graph.to_plan`` walks the graph
    from the keys asked for, so keys nobody needs are never converted.

Why: that cull was measured at ~43 ms of the 4,096-leaf delayed tree, all of
it before any task ran, against a merge of ~2 ms. Any other expression
(arrays, dataframes, bags, delayed with fusion on, a graph already a dict)
goes through ``__dask_graph__`` as before, so Dask's optimizations for those
collections still apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def task_graph(dsk: Any) -> Mapping:
    """A Mapping key -> task for ``dsk``: a graph dict, a collection, or a Dask expression.

    Not to be written to: a delayed collection's graph is the dict its
    HighLevelGraph keeps (``to_dict``, made once), so computing the same
    collection again does not merge its layers again.
    """
    if isinstance(dsk, Mapping):
        return dsk
    graphs = _delayed_graphs(dsk)
    if graphs is None:
        return dsk.__dask_graph__()
    if len(graphs) == 1:
        return graphs[0]
    merged: dict = {}
    for graph in graphs:
        merged.update(graph)
    return merged


def _delayed_graphs(expr: Any) -> list[dict] | None:
    """The merged graph of each part of ``expr`` when Dask would only cull and merge, else None."""
    try:
        from dask import config
        from dask._expr import HLGExpr, _HLGExprGroup, _HLGExprSequence
        from dask.delayed import optimize
    except ImportError:  # a Dask without these classes: its own route
        return None
    if type(expr) is not _HLGExprSequence or config.get("optimization.fuse.delayed"):
        return None
    graphs: dict[int, dict] = {}  # by HighLevelGraph: parts may share one
    for part in expr.operands:
        if type(part) not in (HLGExpr, _HLGExprGroup) or part.low_level_optimizer is not optimize:
            return None
        graphs[id(part.hlg)] = part.hlg.to_dict()
    return list(graphs.values())
