"""The live web dashboard: runs as they go, and any past run replayed.

    executor events ──subscribe──> RunStore (model) ──> DashboardServer (server) ──> browser
                    ──Publisher (publish)──HTTP──> another process's ``fastdag dashboard``
    metrics stores ──load_metrics──> RunStore; one run ──> report.html (standalone)

A top-layer package: executors reach it only through ``core.hooks``
(``dashboard=``), and it imports ``viz`` but nothing imports it from below.
``fd.LocalExecutor(dashboard=True)`` (or a port) serves it for the
executor's lifetime; ``fastdag dashboard SOURCE...`` serves runs stored in
metrics files and the live runs of executors made with
``dashboard="publish:URL"`` (``publish.py``). The server (``server.py``)
needs aiohttp, the ``dashboard`` extra: ``pip install 'fastdag[dashboard]'``.
"""

from __future__ import annotations

import sys
from typing import Any

from .model import RunStore

__all__ = ["RunStore", "serve_executor", "serve_store", "require_aiohttp"]


def require_aiohttp() -> None:
    """Raise a clear ImportError when the server's library is missing."""
    import importlib.util
    if importlib.util.find_spec("aiohttp") is None:  # found, not imported: see server.py
        raise ImportError("the fastdag dashboard needs aiohttp: pip install "
                          "'fastdag[dashboard]' (or pip install aiohttp)") from None


def serve_store(store: RunStore, host: str = "127.0.0.1", port: int = 0) -> Any:
    """Start serving ``store`` on a background thread; the running server."""
    require_aiohttp()
    from .server import DashboardServer
    return DashboardServer(store, host, port)


def serve_executor(executor: Any, spec: bool | int | str) -> Any:
    """Serve ``executor``'s runs: ``spec`` True (any free port), a port, or "host:port".

    Or ``"publish:URL"``: send them to the ``fastdag dashboard`` server at URL
    instead. Prints the URL once, on stderr. The caller stops it at shutdown.
    """
    if isinstance(spec, str) and spec.startswith("publish:"):
        from .publish import Publisher
        publisher = Publisher(executor, spec[len("publish:"):],
                              memory_source=lambda: worker_memory(executor))
        print(f"fastdag dashboard: publishing to {publisher.url}", file=sys.stderr, flush=True)
        return publisher
    host, port = "127.0.0.1", 0
    if isinstance(spec, str):
        host, _, text = spec.rpartition(":")
        host, port = host or "127.0.0.1", int(text or 0)
    elif spec is not True:
        if isinstance(spec, bool) or not isinstance(spec, int) or not 0 <= spec < 65536:
            raise ValueError(f"dashboard= takes True, a port number or 'host:port', not {spec!r}")
        port = spec
    store = RunStore(memory_source=lambda: worker_memory(executor))
    server = serve_store(store, host, port)
    server.subscription = executor.subscribe(store.receive, batched=True)
    print(f"fastdag dashboard: {server.url}", file=sys.stderr, flush=True)
    return server


def worker_memory(executor: Any) -> dict[str, int]:
    """Resident memory of each of ``executor``'s worker processes on this host, by name."""
    from ..metrics.runs import HOST
    from ..metrics.monitor import rss_of
    try:
        pids = list(executor.worker_pids())
    except Exception:  # noqa: BLE001 - an executor shutting down
        return {}
    return {f"{HOST}:{pid}": rss_of([pid]) for pid in pids}
