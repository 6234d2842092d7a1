"""SyncExecutor: every task in the caller's thread, in topological order.

For debugging: a breakpoint or ``pdb.post_mortem`` in a task works, and the
order is deterministic. ``submit`` runs the whole graph before returning.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..errors import TaskError
from ..graph import DAG, Node
from .base import Executor, RunFuture, as_dag
from .inprocess import InProcessRun


class SyncExecutor(Executor):
    """Runs a graph in the calling thread, one task at a time."""

    name = "sync"

    def __init__(self, metrics: Any = None):
        self.metrics = metrics

    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        dag, single = as_dag(dag_or_nodes)
        run = InProcessRun(dag, single, self.name, self.settings())
        run.future.tasks_total = len(run.plan)
        # Tracked before the first task, so the memory monitor samples the run.
        future = self._track(run.future, options)
        for i in range(len(run.plan)):
            try:
                value = run.run_one(i, time.time())
            except TaskError as exc:
                run.fail(exc)
                return future
            run.complete(i, value)
        run.finish()
        return future
