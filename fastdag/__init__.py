"""fastdag: fast Python task graphs on one machine, and on many through Redis.

    import fastdag as fd

    @fd.task
    def add(x, y):
        return x + y

    add(add(1, 2), 3).compute()   # 6
"""

from .core import hooks as _hooks
from .api import acompute, compute, compute_async, get_default_executor, set_default_executor
from .core.errors import CancelledError, FastdagError, SerializationError, TaskError, WorkerCrashedError
from .executors import Executor, LocalExecutor, RunFuture, SyncExecutor, ThreadExecutor
from .core.graph import DAG, DAGTask, DAGTaskNode, Node, Task, task
from .metrics.runs import RunRecord, RunReport, TaskRecord
from .metrics.tracking import last_run
from .metrics.sinks import MemorySink, MetricsError, ParquetSink, RedisSink, load_metrics
from .metrics.sinkwriter import MetricsWriteError, flush_metrics
from .store.arena import result_array

__version__ = "0.1.0"


# -- the upper layers' services, plugged into core.hooks (each imports its package when called)

def _draw_dag(dag, path) -> None:
    from .viz.report import draw_dag
    draw_dag(dag, path)


def _tasks_table(report):
    from .metrics.tables import tasks_table
    return tasks_table(report)


def _serve_dashboard(executor, spec):
    from .dashboard import serve_executor
    return serve_executor(executor, spec)


def _run_dask_graph(executor, wait, dsk, keys, **kwargs):
    from .bridges.dask_scheduler import run_dask_graph
    return run_dask_graph(executor, wait, dsk, keys, **kwargs)


_hooks.install(draw_dag=_draw_dag, tasks_table=_tasks_table, serve_dashboard=_serve_dashboard,
               run_dask_graph=_run_dask_graph)


def __getattr__(name: str):
    # Distributed mode needs the optional redis client: import it on first use.
    if name == "RedisExecutor":
        from .distributed import RedisExecutor
        return RedisExecutor
    # The engine bridges need dask.distributed or ray: imported on first use too.
    if name == "DaskExecutor":
        from .bridges.dask_cluster import DaskExecutor
        return DaskExecutor
    if name == "RayExecutor":
        from .bridges.ray_cluster import RayExecutor
        return RayExecutor
    raise AttributeError(f"module 'fastdag' has no attribute {name!r}")

__all__ = [
    "task", "Task", "Node", "DAG", "DAGTask", "DAGTaskNode",
    "compute", "compute_async", "acompute", "get_default_executor", "set_default_executor",
    "Executor", "RunFuture", "LocalExecutor", "SyncExecutor", "ThreadExecutor",
    "result_array", "last_run", "RunRecord", "RunReport", "TaskRecord", "MemorySink", "ParquetSink", "RedisSink",
    "load_metrics", "flush_metrics", "MetricsError", "MetricsWriteError",
    "RedisExecutor", "DaskExecutor", "RayExecutor",
    "TaskError", "WorkerCrashedError", "SerializationError", "CancelledError", "FastdagError",
]
