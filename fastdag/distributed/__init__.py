"""Distributed mode: ``RedisExecutor`` and the ``fastdag worker`` command.

    RedisExecutor.submit ──signed RunPlan, root batches──> Redis stream (protocol.Keys)
        ──> fastdag worker processes, any host (worker) ──> results: shm on the same
            host, Redis otherwise (handoff) ──> fan-in counters, events ──> client

The client puts a signed Plan and the root tasks into Redis; workers on any
number of hosts take batches from a stream, run clusters of tasks locally
and hand fan-ins to each other through atomic counters (see ``protocol``,
``cluster`` and ``worker``).
"""

from __future__ import annotations

from typing import Any

from ..core.signing import MissingSecret, PayloadRejected, WeakSecret


def __getattr__(name: str) -> Any:
    # The client needs the optional redis package: imported on first use, so
    # that ``fastdag --help`` (which registers ``fastdag worker``) stays quick.
    if name in ("RedisExecutor", "RedisUnavailable"):
        from . import executor
        value = getattr(executor, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RedisExecutor", "RedisUnavailable", "PayloadRejected", "MissingSecret", "WeakSecret"]
