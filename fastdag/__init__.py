"""fastdag: fast Python task graphs on one machine, and on many through Redis.

    import fastdag as fd

    @fd.task
    def add(x, y):
        return x + y

    add(add(1, 2), 3).compute()   # 6
"""

from .api import acompute, compute, compute_async, get_default_executor, set_default_executor
from .errors import CancelledError, FastdagError, SerializationError, TaskError, WorkerCrashedError
from .executors import Executor, LocalExecutor, RunFuture, SyncExecutor, ThreadExecutor
from .graph import DAG, DAGTask, DAGTaskNode, Node, Task, task
from .metrics import RunRecord, RunReport, TaskRecord, last_run
from .sinks import MemorySink, MetricsError, ParquetSink, RedisSink, load_metrics
from .sinkwriter import MetricsWriteError, flush_metrics
from .store.arena import result_array

__version__ = "0.1.0"


def __getattr__(name: str):
    # Distributed mode needs the optional redis client: import it on first use.
    if name == "RedisExecutor":
        from .distributed import RedisExecutor
        return RedisExecutor
    # The engine bridges need dask.distributed or ray: imported on first use too.
    if name == "DaskExecutor":
        from .executors.dask_cluster import DaskExecutor
        return DaskExecutor
    if name == "RayExecutor":
        from .executors.ray_cluster import RayExecutor
        return RayExecutor
    # The planner from history (statistics and the simulator): on first use too.
    # (``fastdag.forecast.forecast`` returns the Forecast object itself.)
    if name == "plan_report":
        from .forecast_cli import plan_report
        return plan_report
    raise AttributeError(f"module 'fastdag' has no attribute {name!r}")

__all__ = [
    "task", "Task", "Node", "DAG", "DAGTask", "DAGTaskNode",
    "compute", "compute_async", "acompute", "get_default_executor", "set_default_executor",
    "Executor", "RunFuture", "LocalExecutor", "SyncExecutor", "ThreadExecutor",
    "result_array", "last_run", "RunRecord", "RunReport", "TaskRecord", "MemorySink", "ParquetSink", "RedisSink",
    "load_metrics", "flush_metrics", "MetricsError", "MetricsWriteError", "plan_report",
    "RedisExecutor", "DaskExecutor", "RayExecutor",
    "TaskError", "WorkerCrashedError", "SerializationError", "CancelledError", "FastdagError",
]
