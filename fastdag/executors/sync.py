"""SyncExecutor: every task in the caller's thread, in topological order.

For debugging: a breakpoint or ``pdb.post_mortem`` in a task works, and the
order is deterministic. ``submit`` runs the whole graph before returning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.graph import DAG, Node
from ..core.plan import Plan
from ..engine.executor import Executor, RunFuture, as_dag
from .inprocess import InProcessRun, run_inline


class SyncExecutor(Executor):
    """Runs a graph in the calling thread, one task at a time."""

    name = "sync"
    survives_fork = True  # nothing but the calling thread

    def __init__(self, metrics: Any = None):
        self.metrics = metrics

    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        dag, single = as_dag(dag_or_nodes)
        return self.submit_plan(dag, single, **options)

    def submit_plan(self, plan: Plan | DAG, single: bool = False, **options: Any) -> RunFuture:
        """Run a Plan built by something other than a DAG (a Dask graph, see bridges)."""
        run = InProcessRun(plan, single, self.name, self.settings(), self.event_bus,
                           options.get("name", ""))
        # Tracked before the first task, so the memory monitor samples the run.
        self._track(run.future, options)
        run_inline(run)
        return run.future
