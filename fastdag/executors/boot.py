"""The first code a worker process runs, before it serves any task.

A worker's default executor is a SyncExecutor: a task that calls
``compute()`` without an executor runs the inner graph in its own thread,
instead of starting a whole pool of worker processes inside every worker
(and waiting on it).

    LocalExecutor worker:  python -c _WORKER_BOOT ──> boot() ──> engine.worker.main_from_argv
    fastdag worker (Redis): distributed/cli.py main ──> inline_nested_compute() ──> run_worker

A LocalExecutor whose workers may not be needed (``placement="auto"``,
see ``lazystart.py``) starts them *dormant*: the interpreter starts, arms
the parent-death guard, and blocks on its pipe until the client sends the
wake byte, before it imports the worker's modules (most of its boot). So
the client spawns its workers before the first graph runs, when spawning
is cheap (later, each of the many system calls of ``subprocess.Popen``
waits for the GIL behind that graph's pure-Python threads), and a graph of
numpy or Pillow work, which never wakes them, does not share the CPU with
their imports. End of file instead of the byte (the client is gone, or is
shutting down before it needed them): the worker exits.

The wake message names the modules the graph that needed the workers will
make them import, which they import before they report "up" (``engine/wake.py``).

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
    """Entry point of a LocalExecutor worker: "dormant" or "awake", then argv as
    ``worker.main_from_argv`` takes it (FD ... PARENT)."""
    mode, argv = argv[0], argv[1:]
    preload: list[str] = []
    if mode == "dormant":
        from ..engine.wake import sleep_until_woken
        preload = sleep_until_woken(int(argv[0]), int(argv[-1]))
    inline_nested_compute()
    from ..engine.worker import main_from_argv
    main_from_argv(argv, preload)
