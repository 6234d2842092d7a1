"""Executors: Sync (one thread), Threads (a pool), Local (processes + shared memory).

    fd.compute / Node.compute ──> Executor.submit(dag) ──> RunFuture
        SyncExecutor, ThreadExecutor ──> inprocess.InProcessRun ──> runner.execute, here
        LocalExecutor ──> placement: GIL-releasing graphs on threads here (guarded),
                          the others ──pipes──> worker processes (executors/boot.py,
                          engine/worker.py) ──> results in /dev/shm (store)

The user-facing executors, above ``engine`` (their base class and the worker
loop) and beside ``distributed`` (Redis) and ``bridges`` (Dask, Ray).

The names are imported on first use (PEP 562), as in ``fastdag/__init__.py``:
a worker process starts from ``executors/boot.py``, and importing this
package must not load the LocalExecutor's client side (its scheduler, the
constant cache, numpy) into every worker before it can take a task.
"""

from __future__ import annotations

from typing import Any

_WHERE = {"Executor": "..engine.executor", "RunFuture": "..engine.executor",
          "LocalExecutor": ".local", "SyncExecutor": ".sync", "ThreadExecutor": ".threads"}


def __getattr__(name: str) -> Any:
    """Import an executor on first use and keep it as a module attribute."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


__all__ = ["Executor", "RunFuture", "LocalExecutor", "SyncExecutor", "ThreadExecutor"]
