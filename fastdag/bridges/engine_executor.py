"""What DaskExecutor and RayExecutor share: a Plan run cluster by cluster on another engine.

Data flow::

    caller                     EngineExecutor                      engine workers
    ------                     --------------                      --------------
    submit(dag) ─> Plan ─> split_plan: one-task Plans (TaskSpec),
                           large numpy arrays ─engine.put─> object store / worker memory
                           ─> clusters.group: tiny tasks together (Cluster)
                           ─launch─> one engine task per Cluster ──> run_cluster(cluster, *inputs)
                                                                     runner.execute each task (retries)
    Future <── outputs ── waiter thread <── results ──────────────── the cluster root's value
                          records <── engine-specific channel ◄───── (worker, RAW records, flat)
                          TaskCosts.learn(records): what the next submit clusters by

Each engine task gets only its own slice of the Plan (its tasks' functions,
argument templates and dependency indices), so a worker unpickles its
tasks, not the graph, and the engine moves the inputs: Dask between its
workers' memories, Ray through its object store. Most clusters are one task;
tasks measured tiny in earlier runs share one (see ``clusters``), because
the engine's cost per task dwarfs theirs. The task body is fastdag's own
runner, so retries, argument substitution and failure capture behave as on
the local executors, and every fastdag task gets its own metrics record; a
failure travels as ``RemoteFailure`` and becomes the same ``TaskError``
(original exception as ``__cause__``, the worker's traceback in the message).

Events: ``RunSubmitted`` and ``TasksReady`` (the roots) at submit; the
engine says nothing while it runs, so the records come at the end as
``TaskBatch`` events, then ``TaskFailed`` (a task's failure) and
``RunFinished``, from which the run recorder has the report.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..core.guard import guarded, private, writeable, wrote_read_only
from ..core.errors import CancelledError, TaskError, WorkerCrashedError
from ..core.graph import ARGS_ARE_DEPS, DAG, NESTED, Node, Task, map_nested
from .. import events as ev
from ..metrics.runs import HOST
from ..core.plan import Plan, Ref, build_plan
from ..core.runner import (INTERNAL_FILES, TASK_EXCEPTIONS, SentFailure, describe_failure, execute,
                           nbytes, received_error, send_failure)
from ..engine.executor import Executor, RunFuture, as_dag, new_run_id
from .clusters import TaskCosts, group

LARGE_ARRAY = 1 << 20  # bytes: numpy arguments this big go through the engine's store
COSTS = TaskCosts()
INTERNAL_FILES.add(__file__)  # a worker's traceback starts at the user's function


class TaskSpec(NamedTuple):
    """One task of a Plan, alone: what an engine worker needs to run it.

    A plain tuple, so it pickles in one C call with its function by
    reference. It reads as a one-task Plan (``tasks``, ``args``, ``modes``...
    at index 0, dependency indices those of the whole Plan), so the
    runner's ``execute`` runs it unchanged.
    """

    task: Task
    call_args: tuple | None
    call_kwargs: dict | None
    call_mode: int
    inputs: tuple[int, ...]   # dependency indices in the whole Plan
    index: int                # the task's index in the whole Plan (for records)
    name: str
    reads: tuple[int, ...]    # its inputs, then the ids of its lifted arrays (input bytes)

    @property
    def tasks(self) -> tuple[Task]:
        return (self.task,)

    @property
    def args(self) -> tuple:
        return (self.call_args,)

    @property
    def kwargs(self) -> tuple:
        return (self.call_kwargs,)

    @property
    def modes(self) -> tuple[int]:
        return (self.call_mode,)

    @property
    def deps(self) -> tuple[tuple[int, ...]]:
        return (self.inputs,)


class Cluster(NamedTuple):
    """Tasks one engine task runs in order; the value of the last, its root, is its result.

    Only the root has consumers outside the cluster (``clusters.group``), so
    the engine keeps one value per cluster.
    """

    specs: tuple[TaskSpec, ...]
    inputs: tuple[int, ...]  # what the engine hands it: other clusters' roots, constant ids
    # Copy-on-write, as between engine tasks: values more than one of its tasks read,
    # and tasks whose captured arguments (unpickled once for all) need their own copy.
    shared: frozenset[int] = frozenset()
    copied: frozenset[int] = frozenset()

    @property
    def root(self) -> int:
        return self.specs[-1].index

    def plain(self, simple: bytearray) -> bool:
        """Whether ``pickle`` alone can carry it (importable functions, plain arguments)."""
        return all(simple[s.index] and s.task.importable() for s in self.specs)


@dataclass
class EngineGraph:
    """A Plan cut into engine tasks, with the large arrays lifted out of it."""

    plan: Plan
    specs: list[TaskSpec]
    constants: dict[int, Any] = field(default_factory=dict)  # constant id -> engine reference
    lifted_bytes: list[int] = field(default_factory=list)    # per task: its lifted arrays' bytes
    clusters: list[Cluster] = field(default_factory=list)    # in an order the engine can launch


class RemoteFailure(Exception):
    """A task raised on an engine worker (after its retries); carried back to the caller.

    It holds the ``runner.SentFailure`` the local and Redis workers send too,
    so an exception that will not pickle, or not load in the caller, is
    described the same way on every executor.
    """

    def __init__(self, sent: SentFailure):
        # What the engine's own logs show: short, not the pickled exception.
        super().__init__(f"task {sent.index} raised {sent.type_name}")
        self.sent = sent

    def __reduce__(self):
        return (RemoteFailure, (self.sent,))


def split_plan(plan: Plan, put: Callable[[np.ndarray], Any]) -> EngineGraph:
    """Cut ``plan`` into TaskSpecs; numpy arguments of LARGE_ARRAY bytes or more are ``put``.

    A lifted array becomes ``Ref(id)`` with an id past the last task, and its
    task switches to the nested substitution mode, so the runner fills it in
    from the inputs like any dependency.
    """
    n = len(plan)
    graph = EngineGraph(plan, [])
    by_id: dict[int, int] = {}
    sizes: dict[int, int] = {}  # constant id -> bytes

    def lift(array: np.ndarray) -> Any:
        if array.nbytes < LARGE_ARRAY:
            return array
        ref = by_id.get(id(array))
        if ref is None:
            ref = by_id[id(array)] = n + len(by_id)
            graph.constants[ref] = put(array)
            sizes[ref] = array.nbytes
        lifted.append(ref)
        return Ref(ref)

    for i in range(n):
        args, kwargs, mode = plan.args[i], plan.kwargs[i], plan.modes[i]
        lifted: list[int] = []
        if not plan.simple[i] and mode != ARGS_ARE_DEPS:
            args = map_nested(args, np.ndarray, lift)
            kwargs = map_nested(kwargs, np.ndarray, lift) if kwargs else kwargs
            if lifted:
                mode = NESTED
        lifted = list(dict.fromkeys(lifted))
        graph.specs.append(TaskSpec(plan.tasks[i], args, kwargs, mode, plan.deps[i], i,
                                    plan.name(i), plan.deps[i] + tuple(lifted)))
        graph.lifted_bytes.append(sum(sizes[c] for c in lifted))
    return graph


def cluster_graph(graph: EngineGraph, costs: TaskCosts) -> list[Cluster]:
    """``graph.clusters``: its tasks grouped by ``clusters.group``, tiny as ``costs`` say."""
    found = []
    for members in group(graph.plan, costs.tiny(graph.plan, graph.lifted_bytes)):
        specs = tuple(graph.specs[i] for i in members)
        inside = set(members)
        inputs = dict.fromkeys(r for spec in specs for r in spec.reads if r not in inside)
        if len(specs) == 1:  # guarded: an engine worker hands its one value to each reader
            found.append(Cluster(specs, tuple(inputs), _read_by_others(graph.plan, inputs)))
            continue
        read = Counter(r for spec in specs for r in set(spec.reads))
        shared = frozenset(r for r, times in read.items() if times > 1)
        copied = frozenset(i for i in members if not graph.plan.simple[i])
        found.append(Cluster(specs, tuple(inputs), shared, copied))
    graph.clusters = found
    return found


def _read_by_others(plan: Plan, inputs: Iterable[int]) -> frozenset[int]:
    """Inputs some other task or the caller also gets: tasks' values read twice or
    wanted, and lifted constants (every reader gets the same engine object)."""
    n = len(plan)
    return frozenset(r for r in inputs
                     if r >= n or plan.wanted[r] or len(plan.dependents[r]) > 1)


def worker_name() -> str:
    return f"{HOST}:{os.getpid()}"


def run_cluster(cluster: Cluster, *values: Any) -> tuple[Any, list[float]]:
    """Run a cluster on an engine worker: (its root's value, its tasks' RAW_FIELDS records
    one after the other), or raise RemoteFailure for the first task that failed."""
    known = dict(zip(cluster.inputs, values))
    # Inside a cluster its tasks' small values are copied; a lone task's inputs are
    # guarded (arrays as read-only views, a write retried on copies in run_spec).
    copy = private if len(cluster.specs) > 1 else guarded
    reads = _Copies(known, cluster.shared, copy) if cluster.shared else known
    records: list[float] = []
    value = None
    for spec in cluster.specs:
        if spec.index in cluster.copied:
            spec = spec._replace(call_args=private(spec.call_args),
                                 call_kwargs=private(spec.call_kwargs))
        value = known[spec.index] = run_spec(spec, known, records, reads)
    return value, records


class _Copies:
    """A cluster's values as its tasks read them: a private copy of those several read."""

    __slots__ = ("known", "shared", "copy")

    def __init__(self, known: dict[int, Any], shared: frozenset[int],
                 copy: Callable[[Any], Any] = private):
        self.known, self.shared, self.copy = known, shared, copy

    def __getitem__(self, i: int) -> Any:
        value = self.known[i]
        return self.copy(value) if i in self.shared else value


def run_spec(spec: TaskSpec, known: dict[int, Any], records: list[float],
             reads: Any = None) -> Any:
    """Run one task with its inputs from ``known`` (read through ``reads`` if given);
    append its record to ``records``."""
    start = time.time()
    try:
        try:
            value, attempts = execute(spec, 0, known if reads is None else reads)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            if not wrote_read_only(exc):  # into a guarded input, or Ray's read-only array:
                raise
            own = _Copies(known, frozenset(spec.reads))  # again on private copies
            value, attempts = execute(spec, 0, own)  # type: ignore[arg-type]
        if reads is not None:  # a guarded input returned as it is: the caller's to write
            value = writeable(value)
    except TASK_EXCEPTIONS as exc:  # noqa: BLE001 - sys.exit() too: that task's failure
        sent = send_failure(describe_failure(spec.index, exc, spec.task.retries + 1))
    else:
        sent = None
    if sent is not None:
        # Raised outside the except block: the engine pickles an exception with
        # its __context__, and the task's own exception may not pickle.
        raise RemoteFailure(sent)
    end = time.time()
    in_bytes = sum([nbytes(known[r]) for r in spec.reads])
    records += (spec.index, start, end, 0.0, 0.0, in_bytes, nbytes(value), attempts, start)
    return value


def remote_error(plan: Plan, exc: BaseException) -> BaseException:
    """The error ``compute()`` raises for an engine's exception ``exc``."""
    failure = _remote_failure(exc)
    if failure is not None:
        return received_error(plan.name(failure.sent.index), failure.sent)
    if isinstance(exc, (TaskError, CancelledError)):
        return exc
    what = f"{type(exc).__name__}: {exc}"
    if any(word in type(exc).__name__ for word in CRASH_WORDS):  # KilledWorker, WorkerCrashedError...
        return WorkerCrashedError(f"a worker died while running the graph: {what}")
    error = TaskError(f"the engine could not run a task: {what}")
    error.__cause__ = exc
    return error


CRASH_WORDS = ("Killed", "Crash", "Died", "Lost", "Unavailable")


def _remote_failure(exc: BaseException) -> RemoteFailure | None:
    """The task failure inside an engine's exception, if it is one."""
    failure = getattr(exc, "cause", exc)  # Ray wraps task exceptions in RayTaskError
    return failure if isinstance(failure, RemoteFailure) else None


@dataclass
class EngineRun:
    """One run on an engine: its graph, Future, and whatever the engine tracks it by."""

    graph: EngineGraph
    future: RunFuture
    start: float
    handle: Any = None  # the engine's own references to the run's tasks


class EngineExecutor(Executor):
    """submit/compute over an engine; subclasses say how to put, launch, wait and cancel."""

    def __init__(self) -> None:
        # What each function cost on an engine, so which tasks to cluster: shared by
        # every engine executor of the process, so a new one starts with what the
        # others measured (a function costs the same on Dask as on Ray).
        self.costs = COSTS

    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        dag, single = as_dag(dag_or_nodes)
        plan = build_plan(dag)
        graph = split_plan(plan, self._put)
        cluster_graph(graph, self.costs)
        run = EngineRun(graph, RunFuture(new_run_id(), single, events=self.event_bus), time.time())
        run.future._on_cancel = lambda: self._cancel(run)
        run.future.tasks_total = len(plan)
        self._track(run.future, options)
        run_id, bus = run.future.run_id, self.event_bus
        ev.run_submitted(bus, run_id, self.name, plan, options.get("name", ""), self.settings())
        try:
            run.handle = self._launch(run)
        except BaseException as exc:
            self._release(run)
            ev.run_finished(bus, run_id, run.start, exc)
            run.future.fail_unstarted(exc)
            raise
        if run.future.cancelled():  # cancelled while launching
            self._cancel(run)
        else:  # the engine schedules from here on: the roots are ready, on any of its workers
            ev.tasks_ready(bus, run_id, [i for i, deps in enumerate(plan.deps) if not deps], "")
        threading.Thread(target=self._wait_run, args=(run,), daemon=True,
                         name=f"fastdag-{self.name}-wait").start()
        return run.future

    def _wait_run(self, run: EngineRun) -> None:
        """The waiter thread: outputs or the error, then the events, then the Future.

        The engine tells nothing while tasks run, so their records arrive at
        the end, as ``TaskBatch`` events (each task's start, retries and end),
        before ``TaskFailed`` and ``RunFinished``.
        """
        plan, run_id, bus = run.graph.plan, run.future.run_id, self.event_bus
        try:
            outputs = self._outputs(run)
        except BaseException as exc:  # noqa: BLE001 - the caller must hear of it
            error = CancelledError("the run was cancelled") if run.future.cancelled() \
                else remote_error(plan, exc)
            try:
                ev.record_rows(bus, run_id, self._records_that_ran(run))
            except Exception:  # noqa: BLE001, S110 - a lost worker cannot be asked
                pass
            self._release(run)
            failure = _remote_failure(exc)
            if failure is not None:
                ev.task_failed(bus, run_id, failure.sent.index, "", error)
            ev.run_finished(bus, run_id, run.start, error)
            run.future.fail(error)
            return
        rows = self._records(run)
        ev.record_rows(bus, run_id, rows)
        self.costs.learn(plan, rows)
        self._release(run)
        run.future.tasks_done = len(plan)
        ev.run_finished(bus, run_id, run.start, None)  # the run recorder makes the report
        run.future.finish(outputs)

    @abstractmethod
    def _put(self, array: np.ndarray) -> Any:
        """Store a large array in the engine; return what a task argument refers to it by."""

    @abstractmethod
    def _launch(self, run: EngineRun) -> Any:
        """Hand every cluster of ``run.graph`` to the engine; return the engine's handle."""

    @abstractmethod
    def _outputs(self, run: EngineRun) -> list[Any]:
        """Block until the outputs (``plan.outputs`` order) are computed; raise on failure."""

    @abstractmethod
    def _records(self, run: EngineRun) -> list[tuple[str, tuple]]:
        """The run's records: (worker, RAW records flat) pairs, from ``run_cluster``."""

    def _records_that_ran(self, run: EngineRun) -> list[tuple[str, tuple]]:
        """The records of the tasks that finished, in a run that failed."""
        return self._records(run)

    @abstractmethod
    def _cancel(self, run: EngineRun) -> None:
        """Stop the run's tasks (called when the Future is cancelled)."""

    def _release(self, run: EngineRun) -> None:
        """Let the engine free the run's data (constants included)."""
        run.graph.constants.clear()
        run.handle = None
