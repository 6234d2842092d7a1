"""Executors: Sync (one thread), Threads (a pool), Local (processes + shared memory).

    fd.compute / Node.compute ──> Executor.submit(dag) ──> RunFuture
        SyncExecutor, ThreadExecutor ──> inprocess.InProcessRun ──> runner.execute, here
        LocalExecutor ──> placement: GIL-releasing graphs on threads here (guarded),
                          the others ──pipes──> worker processes (executors/boot.py,
                          engine/worker.py) ──> results in /dev/shm (store)

The user-facing executors, above ``engine`` (their base class and the worker
loop) and beside ``distributed`` (Redis) and ``bridges`` (Dask, Ray).
"""

from ..engine.executor import Executor, RunFuture
from .local import LocalExecutor
from .sync import SyncExecutor
from .threads import ThreadExecutor

__all__ = ["Executor", "RunFuture", "LocalExecutor", "SyncExecutor", "ThreadExecutor"]
