"""Dask's ``get`` protocol on a fastdag executor: ``get(dsk, keys, **kwargs)``.

    dask.compute(x, scheduler=...) ──> run_dask_graph(executor, dsk, keys)
        to_plan (dask_graph) ──> executor.submit_placed ──> workers, or threads here
                                 (placement="auto": GIL-releasing functions, learned)
        ◄── outputs, shaped like ``keys`` ── or the task's own exception

Dask code catches the exceptions its tasks raise (``except ValueError``), so
a failed task reaches the caller as the original exception, not fastdag's
``TaskError``; the Dask key and the worker's traceback are attached as a note.
Dask's local callbacks (``ProgressBar``, ``Profiler``, ``callbacks=``) are
called from the run's events (``dask_callbacks.py``). Options Dask passes to
every scheduler (``num_workers``, ``pool``, ``chunksize``...) mean nothing
here and are ignored; fastdag's own run options (``metrics``, ``name``,
``progress``) are passed on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.errors import TaskError
from .dask_callbacks import dask_callbacks
from .dask_graph import nest_results, to_plan

RUN_OPTIONS = ("metrics", "name", "progress")


def run_dask_graph(executor: Any, wait: Callable[[Any], Any], dsk: Any, keys: Any,
                   **kwargs: Any) -> Any:
    """Compute ``keys`` of the Dask graph ``dsk`` on ``executor``; results as dask's get gives.

    ``wait`` turns the executor's Future into its value (engine.executor.wait_for).
    """
    # The default executor places a Plan on threads or processes as it does a DAG.
    submit_plan = getattr(executor, "submit_placed", None) or getattr(executor, "submit_plan", None)
    if submit_plan is None:
        raise TypeError(f"{type(executor).__name__} cannot run Dask graphs; use a "
                        "LocalExecutor, ThreadExecutor or SyncExecutor")
    options = {k: kwargs[k] for k in RUN_OPTIONS if k in kwargs}
    with dask_callbacks(executor, dsk, kwargs.get("callbacks")) as (bind, graph):
        converted = to_plan(graph, keys)
        try:
            future = submit_plan(converted.plan, False, **options)
            bind(future)
            values = wait(future)
        except TaskError as err:
            raise original_exception(err) from None
    return nest_results(keys, converted.position, values)


def original_exception(err: TaskError) -> BaseException:
    """The exception the task raised, noted with its Dask key and remote traceback.

    A worker crash has no original exception: the TaskError itself is returned.
    """
    cause = err.__cause__
    if cause is None:
        return err
    if hasattr(cause, "add_note"):  # Python 3.11+
        note = f"raised by Dask key {err.task!r} on a fastdag worker"
        if err.remote_traceback:
            note += "; traceback in the worker:\n" + err.remote_traceback.rstrip()
        cause.add_note(note)
    return cause
