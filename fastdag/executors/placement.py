"""Where the default executor runs a graph: its worker processes, or threads in this process.

::

    submit(dag) or a Dask graph's Plan ──> Placement.on_threads(graph)?
                      │ workers still starting ───────────────> threads (GuardedThreads)
                      │ every function measured, GIL-held work
                      │   no more than the cores can overlap ──> threads
                      └ otherwise (a function never seen, pure
                        Python, tiny tasks, gil=True) ─────────> worker processes
    measurements:  thread runs (GuardedRun) and worker processes ("gil" messages)
                   ──> GilProfile (per function: mean run time, GIL-held fraction)

Why: numpy, pandas and Pillow release the GIL, so threads run them in
parallel and share results for free, while worker processes pay for writing
each result into fresh shared memory; pure-Python work holds the GIL and
only processes run it in parallel. Per graph, with ``W`` the expected task
time and ``H`` its GIL-held part (from the profile, mean x count per
function), threads win when ``H <= W / cores``: the GIL-bound part then
takes no longer than the whole would on every core. A function never seen
runs where it always ran, on the processes (the safe default: isolation,
parallel pure Python), which measure it for next time. Tiny tasks (too
short to sample) count as holding the GIL: the processes batch them.

``@fd.task(gil=False)`` declares a function GIL-free (threads without
measuring it); ``gil=True`` keeps every graph that uses it on processes.

Until the worker processes have started (they announce themselves with an
"up" message), every graph runs on threads, so a fresh interpreter's first
``compute()`` does not wait for workers to boot.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from ..events import EventBus
from ..core.graph import DAG
from ..core.gil import GilProfile
from ..core.records import END, RAW_WIDTH, START
from ..core.plan import Plan
from ..engine.executor import RunFuture
from .guarded import GuardedThreads


class Placement:
    """Per-graph choice between worker processes and threads, learned per function."""

    def __init__(self, workers: int, settings: Callable[[], dict], events: EventBus | None = None):
        self.workers = workers
        self.profile = GilProfile()
        self.threads = GuardedThreads(workers, self.profile, settings, events)
        self._up: set[int] = set()
        self.ready = threading.Event()

    def on_threads(self, graph: DAG | Plan) -> bool:
        """Whether to run ``graph`` on threads here rather than on the worker processes.

        A Plan is a graph built without Nodes (a Dask graph, see bridges): its
        tasks are judged by the same rule, per function.
        """
        return not self.ready.is_set() or self.prefers_threads(graph)

    def prefers_threads(self, graph: DAG | Plan) -> bool:
        """The rule of the module docstring, from the functions' profiles."""
        tasks = graph.tasks if isinstance(graph, Plan) else [n.task for n in graph.nodes]
        counts = collections.Counter(tasks)  # Tasks hash by identity
        work = held = 0.0
        declared_free = False
        for task, count in counts.items():
            gil = getattr(task, "gil", None)
            if gil is False:
                declared_free = True
                continue
            stats = None if gil else self.profile.get(task.func)
            if stats is None or not stats.runs:
                return False
            fraction = stats.held_fraction
            work += count * stats.mean_s
            held += count * stats.mean_s * (1.0 if fraction is None else fraction)
        if work == 0.0:
            return declared_free
        return held <= work / self.workers

    def run_on_threads(self, graph: DAG | Plan, single: bool, name: str = "") -> RunFuture:
        return self.threads.start(graph, single, name)

    def from_worker(self, wid: int, msg: tuple, runs: dict[int, Any]) -> None:
        """A worker's ("up",) or ("gil", run, [task, wall, held, ...]) message."""
        if msg[0] == "up":
            self._up.add(wid)
            if len(self._up) >= self.workers:
                self.ready.set()
            return
        run = runs.get(msg[1])
        if run is None:
            return
        tasks, samples = run.plan.tasks, msg[2]
        for k in range(0, len(samples), 3):
            self.profile.record(tasks[int(samples[k])].func, samples[k + 1], samples[k + 2])

    def learn_run(self, plan: Plan, records: list[tuple[str, Any]]) -> None:
        """Run times of functions no worker sampled (tiny tasks), from a finished run's records.

        Only functions the profile does not know yet are read, so a graph
        run again costs one pass over its distinct tasks.
        """
        unknown = {t for t in set(plan.tasks) if self.profile.get(t.func) is None}
        if not unknown:
            return
        tasks = plan.tasks
        for _worker, block in records:
            for k in range(0, len(block), RAW_WIDTH):
                task = tasks[int(block[k])]
                if task in unknown:
                    self.profile.record(task.func, block[k + END] - block[k + START], None)

    def shutdown(self, wait: bool = True) -> None:
        self.threads.shutdown(wait=wait)
