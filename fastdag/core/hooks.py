"""Services of the upper layers that objects of the lower ones offer as methods.

    DAG.visualize(path)            core.graph      ──> draw_dag(dag, path)          viz.report
    RunReport.to_arrow()           metrics.runs    ──> tasks_table(report)          metrics.tables
    Executor(dashboard=spec)       engine.executor ──> serve_dashboard(ex, spec)    dashboard
    Executor.dask_get(dsk, keys)   engine.executor ──> run_dask_graph(ex, wait_for, dsk, keys)
                                                                                    bridges.dask_scheduler
    Node.compute(), compute_async  core.graph      ──> compute(*nodes, **options),  api
                                                       resolve_executor(executor)

Each of these methods belongs to a low layer's class but its work to a
package above it. Instead of importing that package (an import pointing up,
and a cycle), the method calls the function plugged in here.
``fastdag/__init__.py``, which Python runs before any submodule of fastdag,
plugs in all of them, each importing its package on first call; so nothing
here or below imports upward, and ``import fastdag`` loads none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _not_installed(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("fastdag.core.hooks: service not installed (fastdag/__init__.py "
                       "installs them; was it replaced?)")


draw_dag: Callable[[Any, Any], None] = _not_installed
tasks_table: Callable[[Any], Any] = _not_installed
serve_dashboard: Callable[[Any, Any], Any] = _not_installed
run_dask_graph: Callable[..., Any] = _not_installed
compute: Callable[..., Any] = _not_installed
resolve_executor: Callable[[Any], Any] = _not_installed

_NAMES = ("draw_dag", "tasks_table", "serve_dashboard", "run_dask_graph", "compute",
          "resolve_executor")


def install(**services: Callable[..., Any]) -> None:
    """Plug in the upper layers' functions, by the names above."""
    unknown = set(services) - set(_NAMES)
    if unknown:
        raise TypeError(f"unknown hook(s): {', '.join(sorted(unknown))}")
    globals().update(services)
