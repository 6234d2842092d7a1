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
from typing import Any, NamedTuple

from ..events import EventBus
from ..graph import DAG, Task
from ..gil import GilProfile
from ..metrics import RAW_WIDTH
from ..plan import Plan
from .base import RunFuture
from .guarded import GuardedThreads


INLINE, THREADS, PROCESSES = "inline", "threads", "processes"

# What handing a graph to the pool or the workers costs at least, measured
# on the 4,096-leaf tree (2 cores): a fixed part and a part per task.
HANDOFF_FIXED_S = 0.002
HANDOFF_PER_TASK_S = 2e-6


class Expected(NamedTuple):
    """A graph's predicted run, from the profile: summed task seconds and GIL-held seconds."""

    work: float
    held: float
    alone: float          # summed task seconds when no task waits for the GIL (typical_s)
    known: bool           # every function measured (the prediction covers the whole graph)
    measured: bool        # every function not declared gil=False measured
    declared_free: bool   # some function declared gil=False


def _threads_win(expected: Expected, workers: int) -> bool:
    """Threads when the GIL-bound part takes no longer than the whole would on every core."""
    if not expected.measured:
        return False
    if expected.work == 0.0:
        return expected.declared_free
    return expected.held <= expected.work / workers


class Placement:
    """Per-graph choice between worker processes and threads, learned per function."""

    def __init__(self, workers: int, settings: Callable[[], dict], events: EventBus | None = None):
        self.workers = workers
        self.profile = GilProfile()
        self.threads = GuardedThreads(workers, self.profile, settings, events)
        self._up: set[int] = set()
        self.ready = threading.Event()

    def on_threads(self, graph: DAG | Plan) -> bool:
        """Whether to run ``graph`` in this process (inline or on threads), not on the workers."""
        return self.where(graph) != PROCESSES

    def where(self, graph: DAG | Plan) -> str:
        """``INLINE``, ``THREADS`` or ``PROCESSES``: the rules of the module docstring.

        A Plan is a graph built without Nodes (a Dask graph, see bridges): its
        tasks are judged by the same rules, per function.
        """
        tasks = graph.tasks if isinstance(graph, Plan) else [n.task for n in graph.nodes]
        expected = self.expected(tasks)
        if expected.known and expected.alone * (1 - 1 / self.workers) <= \
                HANDOFF_FIXED_S + len(tasks) * HANDOFF_PER_TASK_S:
            return INLINE
        if not self.ready.is_set() or _threads_win(expected, self.workers):
            return THREADS
        return PROCESSES

    def prefers_threads(self, graph: DAG | Plan) -> bool:
        """The threads-or-processes rule alone, from the functions' profiles."""
        tasks = graph.tasks if isinstance(graph, Plan) else [n.task for n in graph.nodes]
        return _threads_win(self.expected(tasks), self.workers)

    def expected(self, tasks: list[Task]) -> Expected:
        """What the profile predicts for these tasks (one entry per task, repeats included)."""
        counts = collections.Counter(tasks)  # Tasks hash by identity
        work = held = alone = 0.0
        known, declared_free = True, False
        for task, count in counts.items():
            gil = getattr(task, "gil", None)
            stats = None if gil else self.profile.get(task.func)
            if gil is False:
                declared_free = True
                known = known and stats is not None and stats.runs > 0
                if stats is not None:
                    work += count * stats.mean_s
                    alone += count * stats.typical_s
                continue
            if stats is None or not stats.runs:
                return Expected(work, held, alone, False, False, declared_free)
            fraction = stats.held_fraction
            work += count * stats.mean_s
            alone += count * stats.typical_s
            held += count * stats.mean_s * (1.0 if fraction is None else fraction)
        return Expected(work, held, alone, known, True, declared_free)

    def run_on_threads(self, graph: DAG | Plan, single: bool, name: str = "") -> RunFuture:
        return self.threads.start(graph, single, name)

    def run_inline(self, graph: DAG | Plan, single: bool, name: str = "") -> RunFuture:
        """Run ``graph`` to its end in this thread (see ``inline.py``); its resolved future."""
        return self.threads.run_inline(graph, single, name)

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
                    self.profile.record(task.func, block[k + 2] - block[k + 1], None)

    def shutdown(self, wait: bool = True) -> None:
        self.threads.shutdown(wait=wait)
