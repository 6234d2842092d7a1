"""SyncExecutor: every task in the caller's thread, in topological order.

For debugging: a breakpoint or ``pdb.post_mortem`` in a task works, and the
order is deterministic. ``submit`` runs the whole graph before returning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..graph import DAG, Node
from .base import Executor, RunFuture, as_dag
from .inprocess import InProcessRun, run_inline


class SyncExecutor(Executor):
    """Runs a graph in the calling thread, one task at a time."""

    name = "sync"

    def __init__(self, metrics: Any = None):
        self.metrics = metrics

    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        dag, single = as_dag(dag_or_nodes)
        run = InProcessRun(dag, single, self.name, self.settings())
        self._track(run.future, options)
        run_inline(run)
        return run.future
