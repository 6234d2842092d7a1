"""RayExecutor: a fastdag graph on Ray (a cluster, or a local Ray).

    submit(dag) ─> Plan ─> one Ray task per Cluster (one fastdag task, or many tiny ones),
                           two returns each: (root value ObjectRef, records ObjectRef)
    Future <── waiter thread: ray.get(output refs), ray.get(record refs)

Ray's object store carries the results between tasks (numpy arrays are read
by consumers without a copy, read-only) and large numpy arguments captured
in the graph are ``ray.put`` once. The driver keeps references only to the
outputs and to the small records, so Ray frees each intermediate result as
soon as its consumers have run. A Ray task whose worker died is retried by
Ray up to the largest ``retries`` of its fastdag tasks; after that the run
fails with ``WorkerCrashedError``.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, NamedTuple

import numpy as np

from ..core.guard import writeable
from .engine_executor import Cluster, EngineExecutor, EngineRun, RemoteFailure, run_cluster, worker_name


def run_ray_task(call: bytes | Cluster, *values: Any) -> tuple[Any, tuple]:
    """The function of every Ray task: (value, (worker, records)), returned as two objects.

    ``call`` is the Cluster, or it pickled by ``packed_call``.
    """
    cluster = pickle.loads(call) if type(call) is bytes else call
    try:
        value, records = run_cluster(cluster, *values)
    except RemoteFailure:
        if _cancelled_by_ray():
            # ray.cancel() interrupts a running task with KeyboardInterrupt, which
            # run_cluster made a task failure; Ray must see its own cancel end the
            # task (a failure reply for a task it cancelled aborts the driver:
            # "Tried to complete task that was not pending", Ray 2.60).
            raise KeyboardInterrupt from None
        raise
    return value, (worker_name(), records)


def _cancelled_by_ray() -> bool:
    import ray
    try:
        return ray.get_runtime_context().is_canceled()
    except RuntimeError:  # not in a worker (local mode), or an async actor
        return False


def packed_call(cluster: Cluster, simple: bytearray) -> bytes | Cluster:
    """A cluster for one Ray task, as bytes when the C pickler can carry it.

    Ray cloudpickles every argument that is not plain data (~12 us for a
    one-task cluster here, in the driver, per task); bytes it ships as they
    are. A cluster whose functions import by name and whose arguments are
    plain data (``simple``: ``Plan.simple``) pickles the same with
    ``pickle`` in a few microseconds; any other goes as is, for Ray's
    cloudpickle.
    """
    if cluster.plain(simple):
        return pickle.dumps(cluster, protocol=5)
    return cluster


class RayRun(NamedTuple):
    """The references a run keeps: its outputs' and every cluster's records."""

    outputs: list[Any]
    records: list[Any]


class RayExecutor(EngineExecutor):
    """Runs fastdag graphs on the Ray cluster at ``address`` (a local Ray when None).

    Connects with ``ray.init`` unless Ray is already initialised in this
    process; ``init_options`` go to ``ray.init`` (e.g. ``num_cpus=4``). A Ray
    this executor started is shut down with it.
    """

    name = "ray"

    def __init__(self, address: str | None = None, metrics: Any = None, **init_options: Any):
        import ray
        super().__init__()
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            init_options.setdefault("include_dashboard", False)
            if address is None and "runtime_env" not in init_options:
                # A local Ray's workers import tasks from where this process does,
                # as LocalExecutor's workers do (a cluster needs a working_dir).
                paths = [p or os.getcwd() for p in sys.path if os.path.isdir(p or ".")]
                init_options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
            ray.init(address=address, **init_options)
        self.metrics = metrics
        self._remote = ray.remote(num_returns=2, max_retries=0)(run_ray_task)

    def settings(self) -> dict[str, Any]:
        return {"cpus": self._ray.cluster_resources().get("CPU", 0)}

    def _put(self, array: np.ndarray) -> Any:
        return self._ray.put(array)

    def _launch(self, run: EngineRun) -> RayRun:
        graph = run.graph
        n = len(graph.plan)
        values: list[Any] = [None] * n  # by task index: its cluster's value, if it is a root
        records: list[Any] = []
        remote, simple = self._remote, graph.plan.simple
        for cluster in graph.clusters:
            args = [values[d] if d < n else graph.constants[d] for d in cluster.inputs]
            retries = max(spec.task.retries for spec in cluster.specs)
            call = remote.options(max_retries=retries) if retries else remote
            values[cluster.root], record = call.remote(packed_call(cluster, simple), *args)
            records.append(record)
        # Only the outputs stay referenced: Ray frees the rest once consumed.
        return RayRun([values[o] for o in graph.plan.outputs], records)

    def _outputs(self, run: EngineRun) -> list[Any]:
        # Ray hands out arrays as read-only views of its object store: the caller's are copies.
        return [writeable(v) for v in self._ray.get(run.handle.outputs)]

    def _records(self, run: EngineRun) -> list[tuple[str, tuple]]:
        return self._ray.get(run.handle.records)

    def _records_that_ran(self, run: EngineRun) -> list[tuple[str, tuple]]:
        # One get for all would raise with the first failed task's error.
        refs = list(run.handle.records)
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        found = []
        for ref in ready:
            try:
                found.append(self._ray.get(ref))
            except Exception:  # noqa: BLE001, S112 - the failed task and those it stopped
                continue
        return found

    def _cancel(self, run: EngineRun) -> None:
        # Every task, not only the outputs: Ray's recursive cancel follows the
        # tasks a task submitted, not its inputs. A task's records ref names it.
        if run.handle is not None:
            for ref in run.handle.records:
                self._ray.cancel(ref)

    def shutdown(self, wait: bool = True) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False
