"""Threads for the default executor: copy-on-write inputs and GIL profiling around each task.

``GuardedRun`` is an ``InProcessRun`` whose tasks see guarded inputs
(``guard.guarded``: read-only views, lazy copies) wherever another task or
the caller may see the same value, re-runs a task on private copies if it
wrote into one, hands the caller writeable results, and measures each task's
wall and GIL-held time for the placement profile. ``GuardedThreads`` is the
``ThreadExecutor`` that makes such runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..events import EventBus
from ..core.graph import DAG, gc_paused
from ..core.gil import GilProfile, GilSampler, function_key
from ..core.guard import guarded, private, writeable, wrote_read_only
from ..core.plan import Plan
from ..core.runner import INTERNAL_FILES, execute
from ..core.errors import TaskError
from ..engine.executor import RunFuture, wait_for
from ..engine.step import own_arguments
from .inprocess import InProcessRun
from .threads import ThreadExecutor

INTERNAL_FILES.add(__file__)  # a task's traceback starts at the user's function


# A hook that may send task ``i`` of a run to a worker process (see placement.py).
Offload = Callable[["GuardedRun", int], "RunFuture | None"]


_NOT = bytes([1, 0]) + bytes(254)  # bytes.translate table: 0 <-> 1


class _Inputs:
    """The run's values as a task reads them: guarded where others share them."""

    __slots__ = ("values", "shared", "leaf")

    def __init__(self, values: list, shared: bytearray, leaf: Callable[[Any], Any]):
        self.values, self.shared, self.leaf = values, shared, leaf

    def __getitem__(self, d: int) -> Any:
        value = self.values[d]
        return self.leaf(value) if self.shared[d] else value


class GuardedRun(InProcessRun):
    """One graph on threads of this process with the copy-on-write guarantee of worker processes."""

    def __init__(self, dag: DAG | Plan, single: bool, executor: str, settings: dict,
                 profile: GilProfile, sampler: GilSampler, writers: set,
                 events: EventBus | None = None, name: str = "", sample: bool = True):
        super().__init__(dag, single, executor, settings, events, name)
        plan = self.plan
        # A value seen by more than one party (consumers, the caller) is guarded.
        self.shared = self.shared_flags()
        self.captured = (list(plan.args), list(plan.kwargs))  # as the user passed them
        # Captured arguments other than plain data are guarded when their task
        # first runs (an inline run calls most tasks without them).
        self.unguarded = plan.simple.translate(_NOT)
        self.inputs = _Inputs(self.values, self.shared, guarded)
        self.profile, self.sampler, self.writers = profile, sampler, writers
        # Asked before each task: a worker's future for it, or None to run it here.
        self.offload: Offload | None = None
        self.sampling = threading.Lock()  # held while this run keeps the sampler on
        self.sample = sample = sample and profile.wants_samples(plan.tasks)
        if sample:
            self.sampling.acquire()
            self.sampler.enter()

    def shared_flags(self) -> bytearray:
        """Per task, 1 if its value has more than one reader (see ``counts``)."""
        return bytearray(map((1).__lt__, self.uses_left))

    def call(self, i: int) -> tuple[Any, int]:
        if self.offload is not None:
            remote = self.offload(self, i)
            if remote is not None:
                return self._remote_result(remote), 1
        func = self.plan.tasks[i].func
        cpu, held, start = time.thread_time(), self.sampler.held, time.perf_counter()
        result = self.guarded_call(i)
        wall = time.perf_counter() - start
        self.profile.record(func, wall, self.sampler.held - held if self.sample else None,
                            time.thread_time() - cpu)
        return result

    def mean_task_s(self) -> float | None:
        """This run's mean task time so far; before its first task ends, the profile's
        (each task's function's typical run), so that the first tasks are handed
        to the pool in batches sized for them, not as one share per thread:
        16 pandas groupbys of ~8 ms split 8 and 8 left a thread that another
        process slowed with half the graph while the other idled."""
        measured = super().mean_task_s()
        if measured is not None:
            return measured
        return self.profile.mean_typical_s(self.plan.tasks)

    @staticmethod
    def _remote_result(remote: RunFuture) -> Any:
        """The value of a task sent to a worker process (its profile is the worker's to record)."""
        try:
            return wait_for(remote)
        except TaskError as exc:  # reported again, under this run, as the task's own error
            raise (exc.__cause__ or exc) from None

    def guarded_call(self, i: int) -> tuple[Any, int]:
        """Task ``i`` on guarded inputs, or on private copies if its function writes into them."""
        plan = self.plan
        func = plan.tasks[i].func
        if function_key(func) in self.writers:
            return self._call_private(i)
        self.guard_arguments(i)
        try:
            return execute(self.plan, i, self.inputs)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it wrote a guarded input
            if not wrote_read_only(exc):
                raise
            self.writers.add(function_key(func))
            return self._call_private(i)

    def guard_arguments(self, i: int) -> None:
        """Replace task ``i``'s captured arguments by guarded ones, the first time it needs them."""
        if self.unguarded[i]:
            self.unguarded[i] = 0
            own_arguments(self.plan, i)  # as a worker process does

    def _call_private(self, i: int) -> tuple[Any, int]:
        """Run task ``i`` on private copies of every input, as a worker process would."""
        plan = self.plan
        args, kwargs = plan.args[i], plan.kwargs[i]
        plan.args[i] = private(self.captured[0][i]) if args is not None else None
        plan.kwargs[i] = private(self.captured[1][i]) if kwargs else kwargs
        try:
            return execute(plan, i, _Inputs(self.values, bytearray(b"\1") * len(plan), private))
        finally:
            plan.args[i], plan.kwargs[i] = args, kwargs

    def _stop_sampling(self) -> None:
        if self.sampling.locked():
            try:
                self.sampling.release()
            except RuntimeError:  # another thread released it first
                return
            self.sampler.exit()

    def finish(self) -> None:
        self._stop_sampling()
        for o in self.plan.outputs:
            self.values[o] = writeable(self.values[o])
        super().finish()

    def fail(self, exc: BaseException) -> None:
        self._stop_sampling()
        super().fail(exc)


class GuardedThreads(ThreadExecutor):
    """A thread pool whose runs are ``GuardedRun``s sharing one profile and sampler."""

    name = "local"

    def __init__(self, workers: int, profile: GilProfile, settings: Callable[[], dict],
                 events: EventBus | None = None):
        super().__init__(workers)
        self.events = events  # the owning LocalExecutor's: its subscribers see these runs
        self.profile = profile
        self.sampler = GilSampler()
        self.writers: set = set()  # functions seen writing into their inputs
        self._settings = settings

    def _bus(self) -> EventBus:
        """The owning LocalExecutor's event bus, or this pool's own when it stands alone."""
        return self.events if self.events is not None else self.event_bus

    def new_run(self, dag: DAG | Plan, single: bool, name: str = "",
                offload: Offload | None = None) -> InProcessRun:
        settings = dict(self._settings(), placement="threads")
        run = GuardedRun(dag, single, self.name, settings, self.profile, self.sampler,
                         self.writers, self._bus(), name)
        run.offload = offload
        return run

    def run_inline(self, dag: DAG | Plan, single: bool, name: str, run_class: type) -> RunFuture:
        """Run a graph of tiny tasks in this thread, in one pass; its resolved future.

        ``run_class`` is the placement's one-pass run (``inline.InlineRun``,
        a ``GuardedRun``), given by the caller so that this module, which
        that class extends, does not import it. Its tasks reach subscribers
        as one ``TaskBatch`` when it ends (expanded into per-task events for
        plain subscribers): a run placed here lasts a few milliseconds, and
        reporting each task as it goes cost a plain subscriber six times the
        run itself on a 4,096-task tree.
        """
        settings = dict(self._settings(), placement="inline")
        # The collector paused: tiny tasks allocate fast, and every pass of it
        # would walk the graph's thousands of live Nodes (it halved the tree's run).
        with gc_paused():
            run = run_class(dag, single, self.name, settings, self.profile, self.sampler,
                            self.writers, self._bus(), name)
            run.run()
        return run.future
