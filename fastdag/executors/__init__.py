"""Executors: Sync (one thread), Threads (a pool), Local (processes + shared memory)."""

from ..engine.executor import Executor, RunFuture
from .local import LocalExecutor
from .sync import SyncExecutor
from .threads import ThreadExecutor

__all__ = ["Executor", "RunFuture", "LocalExecutor", "SyncExecutor", "ThreadExecutor"]
