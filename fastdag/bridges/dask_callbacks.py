"""Dask's local callbacks on a fastdag run: ``ProgressBar``, ``Profiler``, your own ``Callback``.

Dask's local schedulers call every active callback (``with ProgressBar():``,
``dask.compute(..., callbacks=[...])``) at five points::

    start(dsk)                               before anything runs
    start_state(dsk, state)                  with the scheduler's state dict
    pretask(key, dsk, state)                 a task is about to run
    posttask(key, result, dsk, state, id)    it ran, on worker ``id``
    finish(dsk, state, errored)              the run is over

fastdag runs the tasks elsewhere (its worker processes, or threads), so the
two task hooks are driven by the run's events (``TaskStarted``,
``TaskFinished``), on the event bus's thread, while the caller waits;
``start`` and ``finish`` run in the caller's thread, and every event has
been handed out before ``finish`` (``RunFuture.result`` waits for plain
subscribers). ``state`` keeps the entries Dask's diagnostics read:
``ready`` (a list), ``waiting`` (key -> keys it still waits for),
``running``, ``finished`` and ``released`` (sets), ``dependencies`` and
``dependents``; its ``cache`` stays empty and ``posttask`` gets None as the
result, since values stay in fastdag's store, not in the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import events as ev


@contextmanager
def dask_callbacks(executor: Any, dsk: Any, callbacks: Any
                   ) -> Iterator[tuple[Callable[[Any], None], Any]]:
    """Run Dask's active callbacks around a run; yields ``(bind, graph)``: ``bind(future)``
    to call once the run is submitted, and ``dsk`` as the graph to convert (made a
    Mapping once here when the callbacks need it). Without callbacks it costs
    nothing (no subscriber)."""
    from dask.callbacks import local_callbacks
    with local_callbacks(callbacks) as active:
        if not active:
            yield _nothing, dsk
            return
        from dask.core import get_dependencies
        from .dask_expr import task_graph
        graph = dict(task_graph(dsk))
        driver = _Driver(active, graph, {k: get_dependencies(graph, k) for k in graph})
        started = []
        errored = True
        try:
            for cb in active:
                if cb[0]:
                    cb[0](graph)
                started.append(cb)
            for cb in active:
                if cb[1]:
                    cb[1](graph, driver.state)
            with executor.subscribe(driver):
                yield driver.bind, graph
            errored = False
        finally:
            for cb in started:
                if cb[4]:
                    cb[4](graph, driver.state, errored)


def _nothing(future: Any) -> None:
    return None


class _Driver:
    """A plain event subscriber that turns one run's task events into Dask's hooks."""

    def __init__(self, callbacks: list, graph: dict, dependencies: dict) -> None:
        self.pre = [cb[2] for cb in callbacks if cb[2]]
        self.post = [cb[3] for cb in callbacks if cb[3]]
        self.graph = graph
        dependents: dict[Any, set] = {k: set() for k in graph}
        for key, deps in dependencies.items():
            for d in deps:
                dependents[d].add(key)
        self.state: dict[str, Any] = {
            "dependencies": dependencies, "dependents": dependents, "cache": {},
            "ready": [k for k, deps in dependencies.items() if not deps],
            "waiting": {k: set(deps) for k, deps in dependencies.items() if deps},
            "waiting_data": {}, "running": set(), "finished": set(), "released": set(),
        }
        self.keys: list[Any] = []  # plan index -> Dask key
        self.run_id: str | None = None
        self.early: list[Any] = []  # events that came before the run id was known
        self.lock = threading.RLock()

    def bind(self, future: Any) -> None:
        """The run is submitted: its id; replay what came before (its RunSubmitted,
        which names the tasks, at least)."""
        with self.lock:
            self.run_id = future.run_id
            early, self.early = self.early, []
            for event in early:
                self(event)

    def __call__(self, event: Any) -> None:
        with self.lock:
            if self.run_id is None:
                self.early.append(event)
                return
            if getattr(event, "run_id", None) != self.run_id:
                return
            kind = type(event)
            if kind is ev.RunSubmitted:
                by_label = {str(k): k for k in self.graph}
                self.keys = [by_label.get(n, n) for n in event.names]
            elif kind is ev.TaskStarted:
                self._started(self.keys[event.task])
            elif kind is ev.TaskFinished:
                self._finished(self.keys[event.task], event.worker)

    def _started(self, key: Any) -> None:
        state = self.state
        state["waiting"].pop(key, None)
        if key in state["ready"]:
            state["ready"].remove(key)
        state["running"].add(key)
        for hook in self.pre:
            hook(key, self.graph, state)

    def _finished(self, key: Any, worker: str) -> None:
        state = self.state
        if key not in state["running"]:
            self._started(key)
        state["running"].discard(key)
        state["finished"].add(key)
        for d in state["dependents"].get(key, ()):
            waits = state["waiting"].get(d)
            if waits is not None:
                waits.discard(key)
                if not waits:
                    del state["waiting"][d]
                    state["ready"].append(d)
        for hook in self.post:
            hook(key, None, self.graph, state, worker)
