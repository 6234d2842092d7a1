"""fastdag: fast Python task graphs on one machine, and on many through Redis.

    import fastdag as fd

    @fd.task
    def add(x, y):
        return x + y

    add(add(1, 2), 3).compute()   # 6

The package is built in layers, imports pointing down only::

    cli.py, api.py, dask.py, viz/, dashboard/      commands, entry points, pictures
    executors/  distributed/  bridges/             Sync/Threads/Local, Redis, Dask and Ray
    engine/                                        Executor base, the worker process
    store/  metrics/                               where results and measurements go
    core/   events.py                              graph, plan, runner, serialize, errors

Two things here keep ``import fastdag`` cheap and the layers one-way:

* the public names (``__all__``) are imported on first use (PEP 562), so
  ``fastdag --help`` loads neither numpy nor the executors;
* this module, which Python runs before any submodule, plugs the upper
  layers' services into ``core.hooks`` (``Node.compute()``, ``DAG.visualize``,
  ``dashboard=``, ``Executor.dask_get``, ``RunReport.to_arrow``), each
  importing its package on first call, so no import points up.
"""

from __future__ import annotations

from typing import Any

from .core import hooks as _hooks

__version__ = "0.1.0"

_API = {"acompute", "compute", "compute_async", "get_default_executor", "set_default_executor"}
_ERRORS = {"CancelledError", "FastdagError", "SerializationError", "TaskError",
           "WorkerCrashedError"}
_EXECUTORS = {"Executor", "LocalExecutor", "RunFuture", "SyncExecutor", "ThreadExecutor"}
_GRAPH = {"DAG", "DAGTask", "DAGTaskNode", "Node", "Task", "task"}
_RUNS = {"RunRecord", "RunReport", "TaskRecord"}
_SINKS = {"MemorySink", "MetricsError", "ParquetSink", "RedisSink", "load_metrics"}
_SINKWRITER = {"MetricsWriteError", "flush_metrics"}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and keep it as a module attribute."""
    module: Any
    if name in _API:
        from . import api as module
    elif name in _ERRORS:
        from .core import errors as module
    elif name in _EXECUTORS:
        from . import executors as module
    elif name in _GRAPH:
        from .core import graph as module
    elif name in _RUNS:
        from .metrics import runs as module
    elif name == "last_run":
        from .metrics import tracking as module
    elif name in _SINKS:
        from .metrics import sinks as module
    elif name in _SINKWRITER:
        from .metrics import sinkwriter as module
    elif name == "result_array":
        from .store import arena as module
    elif name == "RedisExecutor":  # needs the optional redis client
        from . import distributed as module
    elif name == "DaskExecutor":  # the engine bridges need dask.distributed or ray
        from .bridges import dask_cluster as module
    elif name == "RayExecutor":
        from .bridges import ray_cluster as module
    elif name == "plan_report":  # the planner from history: statistics and the simulator
        from .predict import text as module
    elif name == "dask":  # ``fastdag.dask.get`` after a plain ``import fastdag``
        import importlib  # not ``from . import``: that asks this hook again
        return importlib.import_module(f"{__name__}.dask")
    else:
        raise AttributeError(f"module 'fastdag' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# -- the upper layers' services, plugged into core.hooks (imported on first call)

def _draw_dag(dag: Any, path: Any) -> None:
    from .viz.report import draw_dag
    draw_dag(dag, path)


def _serve_dashboard(executor: Any, spec: Any) -> Any:
    from .dashboard import serve_executor
    return serve_executor(executor, spec)


def _run_dask_graph(executor: Any, wait: Any, dsk: Any, keys: Any, **kwargs: Any) -> Any:
    from .bridges.dask_scheduler import run_dask_graph
    return run_dask_graph(executor, wait, dsk, keys, **kwargs)


def _tasks_table(report: Any) -> Any:
    from .metrics.tables import tasks_table
    return tasks_table(report)


def _compute(*nodes: Any, **options: Any) -> Any:
    from .api import compute
    return compute(*nodes, **options)


def _resolve_executor(executor: Any) -> Any:
    from .api import resolve_executor
    return resolve_executor(executor)


_hooks.install(draw_dag=_draw_dag, serve_dashboard=_serve_dashboard,
               run_dask_graph=_run_dask_graph, tasks_table=_tasks_table,
               compute=_compute, resolve_executor=_resolve_executor)

__all__ = [
    "task", "Task", "Node", "DAG", "DAGTask", "DAGTaskNode",
    "compute", "compute_async", "acompute", "get_default_executor", "set_default_executor",
    "Executor", "RunFuture", "LocalExecutor", "SyncExecutor", "ThreadExecutor",
    "result_array", "last_run", "RunRecord", "RunReport", "TaskRecord", "MemorySink", "ParquetSink", "RedisSink",
    "load_metrics", "flush_metrics", "MetricsError", "MetricsWriteError", "plan_report",
    "RedisExecutor", "DaskExecutor", "RayExecutor",
    "TaskError", "WorkerCrashedError", "SerializationError", "CancelledError", "FastdagError",
]
