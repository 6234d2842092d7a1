"""The first code a worker process runs, before it serves any task.

A worker's default executor is a SyncExecutor: a task that calls
``compute()`` without an executor runs the inner graph in its own thread,
instead of starting a whole pool of worker processes inside every worker
(and waiting on it).

    LocalExecutor worker:  python -c _WORKER_BOOT ──> boot() ──> engine.worker.main_from_argv
    fastdag worker (Redis): distributed/cli.py main ──> inline_nested_compute() ──> run_worker

An entry point, like the ``cli`` modules: the top of a worker process's
imports, run or called only by those two, so setting the default executor
(``fastdag.api``, above every executor) here adds no import cycle.
"""

from __future__ import annotations

from typing import Any


def inline_nested_compute() -> None:
    """Make this process's default executor run graphs inline, in the calling thread.

    The SyncExecutor is made (and the executor modules imported, some 25 ms
    of a worker's boot) only when a task first calls ``compute()``.
    """
    from ..api import set_default_factory
    set_default_factory(_sync_executor)


def _sync_executor() -> Any:
    from .sync import SyncExecutor
    return SyncExecutor()


def boot(argv: list[str]) -> None:
    """Entry point of a LocalExecutor worker: the modules to import before it reports up
    (newline-separated, see ``lazystart.py``), then argv as ``worker.main_from_argv`` takes it."""
    inline_nested_compute()
    from ..engine.worker import main_from_argv
    main_from_argv(argv[1:], argv[0].split("\n") if argv[0] else [])
