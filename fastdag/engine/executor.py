"""What every executor shares: the Future it returns and the compute() wrapper."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from ..core import hooks
from ..events import EventBus, Subscription
from ..metrics.recorder import RunRecorder
from ..core.graph import DAG, Node
from ..metrics import sinkwriter
from ..metrics.runs import RunReport

_run_counter = itertools.count(1)
# How long shutdown() waits for plain event subscribers to catch up (a stuck one must not hang it).
EVENTS_FLUSH_S = 10.0


def new_run_id() -> str:
    """A run id unique on this host: pid, counter."""
    return f"{os.getpid()}-{next(_run_counter)}"


class RunFuture(concurrent.futures.Future):
    """A Future for one run; ``cancel()`` also stops the run's tasks.

    The future stays PENDING until it has a result, so ``cancel()`` works at
    any time before then, as users of ``concurrent.futures`` expect of a
    queued job.
    """

    def __init__(self, run_id: str, single: bool, on_cancel: Callable[[], None] | None = None,
                 events: EventBus | None = None):
        super().__init__()
        self.run_id = run_id
        self.single = single
        self.events = events     # the executor's bus: result() waits for its plain subscribers
        self.report: RunReport | None = None
        self.tasks_total = 0     # progress, updated by the executor
        self.tasks_done = 0
        self._on_cancel = on_cancel
        self.scheduler: threading.Thread | None = None  # waiting on it would wait forever
        self.never_started = False  # submit() raised: the caller has the error, no report is kept

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled and self._on_cancel is not None:
            self._on_cancel()
        return cancelled

    def result(self, timeout: float | None = None) -> Any:
        """The run's value; by then plain event subscribers have had the whole run.

        Plain subscribers are called on the bus's own thread (``events.py``),
        so the run never waits for them; whoever waits for the run does, up
        to ``EVENTS_FLUSH_S``, as a caller that subscribed a list expects
        to find ``RunFinished`` in it when ``compute()`` returns.
        """
        try:
            return super().result(timeout)
        finally:
            self._caught_up()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return super().exception(timeout)
        finally:
            self._caught_up()

    def _caught_up(self) -> None:
        if self.events is not None and self.events.plain and self.done():
            self.events.flush(timeout=EVENTS_FLUSH_S)

    def finish(self, outputs: list[Any]) -> None:
        """Resolve with the outputs (one value when a single Node was submitted)."""
        if not self.done():
            try:
                self.set_result(outputs[0] if self.single else tuple(outputs))
            except concurrent.futures.InvalidStateError:
                pass

    def fail_unstarted(self, exc: BaseException) -> None:
        """Fail a run whose ``submit()`` raised ``exc``: the caller has the error, so
        no report is kept (``never_started``); the metrics layer stops watching it."""
        self.never_started = True
        self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        if not self.done():
            try:
                self.set_exception(exc)
            except concurrent.futures.InvalidStateError:
                pass


def as_dag(obj: DAG | Node | Iterable[Node]) -> tuple[DAG, bool]:
    """The DAG to run and whether a single Node (not a tuple) was asked for."""
    if isinstance(obj, DAG):
        return obj, False
    if type(obj) is Node:
        return DAG([obj]), True
    if isinstance(obj, (list, tuple)):
        return DAG(list(obj)), False
    raise TypeError(f"submit() takes a Node, a DAG or a list of Nodes, not {type(obj).__name__}")


class Executor(ABC):
    """submit / compute / shutdown and the context-manager protocol."""

    name = "executor"
    dashboard_url: str | None = None  # set when the executor serves the web dashboard
    metrics: Any = None  # default metrics sink (a path, Redis URL or sink) for every run
    survives_fork = False  # usable in a child made by os.fork (no threads or workers of its own)

    @abstractmethod
    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        """Start running; return a Future of the value (a tuple for a DAG or list)."""

    def compute(self, *nodes: Any, **options: Any) -> Any:
        """Run and wait: one argument gives its value, several give a tuple.

        Arguments are taken as ``fd.compute`` takes them (Nodes inside lists,
        tuples, dicts and sets computed, other values returned as they are),
        so ``ex.compute([a, b])`` is ``[va, vb]``.
        """
        if not nodes:
            raise TypeError("compute() needs at least one Node")
        result = hooks.compute(*nodes, executor=self, **options)
        return result[0] if len(nodes) == 1 else result

    def shutdown(self, wait: bool = True) -> None:
        """Release workers and stored data. Idempotent."""
        self._wait_for_metrics()

    @property
    def closed(self) -> bool:
        """Whether ``shutdown()`` made this executor refuse new runs."""
        return bool(self.__dict__.get("_closed", False))

    def _wait_for_metrics(self) -> None:
        """Block until this executor's runs' metrics are written (bounded, logged)
        and its plain event subscribers have had every event (bounded too).

        Every ``shutdown()`` ends with this, so a file sink is complete, and a
        subscriber has seen every run, when the ``with`` block that produced it ends.
        """
        bus = self.__dict__.get("_events")
        if bus is not None:
            bus.flush(timeout=EVENTS_FLUSH_S)
        sinkwriter.wait_for(self)

    def settings(self) -> dict[str, Any]:
        return {}

    @property
    def event_bus(self) -> EventBus:
        """This executor's event stream (``fastdag.events``), made on first use.

        Its first subscriber is the executor's ``RunRecorder``, which builds
        every run's report and progress from the events.
        """
        bus = self.__dict__.get("_events")
        if bus is None:
            bus = self.__dict__.setdefault("_events", EventBus(RunRecorder()))
        return bus

    @property
    def run_recorder(self) -> RunRecorder | None:
        """The subscriber that builds this executor's run reports (None if it was dropped)."""
        return self.event_bus.recorder

    def _serve_dashboard(self, spec: bool | int | str | None) -> None:
        """Serve the web dashboard (``fastdag.dashboard``) if ``spec`` asks for it.

        The dashboard is a subscriber of a higher layer, reached through
        ``core.hooks`` (no import upward); this only starts it for the
        executor's lifetime.
        """
        self._dashboard = None
        if spec is False or spec is None:
            return
        self._dashboard = hooks.serve_dashboard(self, spec)
        self.dashboard_url = self._dashboard.url

    def _stop_dashboard(self) -> None:
        server = self.__dict__.get("_dashboard")
        if server is not None:
            server.stop()

    def subscribe(self, callback: Callable[[Any], None], batched: bool = False) -> Subscription:
        """Call ``callback(event)`` for every event of every run from now on."""
        return self.event_bus.subscribe(callback, batched)

    def worker_pids(self) -> list[int]:
        """Processes that run tasks (for memory metrics)."""
        return [os.getpid()]

    def dask_get(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """Dask's scheduler ``get`` on this executor's workers.

        ``x.compute(scheduler=ex.dask_get)`` or ``dask.config.set(scheduler=ex.dask_get)``;
        see ``fastdag.dask``.
        """
        return hooks.run_dask_graph(self, wait_for, dsk, keys, **kwargs)  # fastdag.bridges

    def _track(self, future: RunFuture, options: dict[str, Any]) -> RunFuture:
        """Hand a started run to the metrics layer (sinks, fd.last_run, progress).

        ``options``: ``metrics`` (a path or sink; default the executor's
        ``metrics`` attribute), ``name`` (the workflow name), ``progress``.
        """
        from ..metrics import tracking
        unknown = set(options) - {"metrics", "name", "progress"}
        if unknown:
            raise TypeError(f"unknown compute option(s): {', '.join(sorted(unknown))}")
        tracking.track(future, self, options)
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


def wait_for(future: RunFuture) -> Any:
    """``future.result()``, cancelling the run if the wait is interrupted (Ctrl-C)."""
    if future.scheduler is not None and future.scheduler is threading.current_thread():
        future.cancel()
        raise RuntimeError(
            "compute() was called on the executor's own scheduler thread (from a future's "
            "done-callback?): it would wait for itself forever; use compute_async() there")
    try:
        while True:
            try:
                # A bounded wait, so a simulated Ctrl-C (_thread.interrupt_main)
                # is seen too, not only a real SIGINT.
                return future.result(timeout=0.25)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        future.cancel()
        raise
