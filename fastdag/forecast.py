"""Predicted makespan of a graph on N workers: a list-scheduling simulation.

Flow::

    nodes --build_plan--> Plan (the executors' own: deps, consumers, wanted)
                            |   + CostModel (history.py) per task:
                            |     input bytes = predicted outputs of its inputs
                            v     time, output bytes = the function's fit
                    simulate(plan, costs, workers)
                            |
                            v
                    Forecast: makespan, one Slot per task (worker, start, end)

The simulation follows the local executor's policy (``executors/local.py``),
so that the plan it shows is the one that would run:

* Ready tasks without a place wait in a shared FIFO queue; an idle worker
  takes from its own queue first, then a batch of ``plan.batch_size`` tasks
  from the shared queue, then steals from the fullest other queue.
* A worker's own queue is a stack: when a task ends, the first consumer it
  made ready continues on the same worker (chains and subtrees stay in one
  worker), the others go to the shared queue (a fan-out is spread).
* A task costs its function's ``gap_s`` (the engine's idle time before it:
  bookkeeping, scheduler round trips) + its predicted execution time, +
  storing its
  output (``output bytes / store_bytes_per_s``) when the caller wants it or
  several tasks consume it, + storing each input held by another worker
  that was not stored yet (the producer stores it when the consumer is
  elsewhere; charged to the consumer, which waits for it).
* The makespan adds ``per_run_s`` (submit to first task, last task to result).

What the model leaves out, and so what a prediction assumes: a task takes
the time history measured, whatever else runs beside it (no contention for
cores, memory bandwidth or the scheduler thread); a worker count beyond the
cores of the machine that recorded the history is taken as that many cores;
the shared-memory store costs the same per byte at any size.
"""

from __future__ import annotations

import heapq
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .graph import DAG, Node
from .history import CostModel
from .plan import Plan, batch_size, build_plan


@dataclass(frozen=True)
class TaskCost:
    """What the model predicts for one task of the graph."""

    function: str
    time_s: float
    gap_s: float
    input_bytes: float
    output_bytes: float
    known: bool  # False: the function was never seen, its cost is the default


@dataclass(frozen=True)
class Slot:
    """Where and when the simulation ran task ``index``."""

    index: int
    worker: int
    start: float
    end: float


@dataclass
class Forecast:
    """A predicted run: makespan (seconds, with ``per_run_s``) and every task's slot."""

    workers: int
    makespan: float
    slots: list[Slot]
    costs: list[TaskCost]
    plan: Plan = field(repr=False)
    model: CostModel = field(repr=False)

    def worker_busy(self) -> list[float]:
        """Seconds of work each worker was given."""
        busy = [0.0] * self.workers
        for s in self.slots:
            busy[s.worker] += s.end - s.start
        return busy

    def unknown_functions(self) -> list[str]:
        """Functions of the graph that history never saw (costed by the default)."""
        return sorted({c.function for c in self.costs if not c.known})

    def critical_path_s(self) -> float:
        """The longest chain of predicted task times: no worker count can beat it."""
        longest = [0.0] * len(self.costs)
        for i, deps in enumerate(self.plan.deps):
            longest[i] = self.costs[i].time_s + max((longest[d] for d in deps), default=0.0)
        return max(longest, default=0.0)


def task_costs(plan: Plan, model: CostModel) -> list[TaskCost]:
    """Each task's predicted time and sizes, inputs first (the plan is topological)."""
    costs: list[TaskCost] = []
    for i, function in enumerate(plan.functions()):
        f = model.of(function)
        inputs = sum(costs[d].output_bytes for d in plan.deps[i])
        costs.append(TaskCost(function, f.time_s(inputs), model.gap_s(function), inputs,
                              f.output_bytes(inputs), model.known(function)))
    return costs


class _Simulation:
    """One run of the list scheduler: the state ``simulate`` steps through."""

    def __init__(self, plan: Plan, costs: list[TaskCost], model: CostModel, workers: int):
        self.plan, self.costs, self.workers = plan, costs, workers
        self.over = model.overheads
        self.remaining = [len(d) for d in plan.deps]
        self.shared: deque[int] = deque(i for i, r in enumerate(self.remaining) if r == 0)
        self.own: list[list[int]] = [[] for _ in range(workers)]
        self.where = [-1] * len(plan)
        self.stored = bytearray(len(plan))
        self.slots: list[Slot] = []
        self.events: list[tuple[float, int, int]] = []  # (end, task, worker)
        self.mean_s = statistics.fmean(c.time_s for c in costs) if costs else None

    def take(self, w: int) -> int | None:
        """The next task for idle worker ``w``, by the executor's order of queues."""
        own = self.own[w]
        if not own and self.shared:
            share = batch_size(len(self.shared), self.workers, self.mean_s)
            batch = [self.shared.popleft() for _ in range(min(share, len(self.shared)))]
            own.extend(reversed(batch))  # a stack: the batch's first task runs first
        if not own:
            fullest = max(range(self.workers), key=lambda v: len(self.own[v]))
            if not self.own[fullest]:
                return None
            return self.own[fullest].pop(0)  # the bottom of the stack: work not yet near
        return own.pop()

    def duration(self, i: int, w: int) -> float:
        cost, over = self.costs[i], self.over
        seconds = cost.gap_s + cost.time_s
        for d in self.plan.deps[i]:
            if self.where[d] != w and not self.stored[d]:
                self.stored[d] = 1
                seconds += self.costs[d].output_bytes / over.store_bytes_per_s
        if self.plan.wanted[i] or len(self.plan.dependents[i]) > 1:
            self.stored[i] = 1
            seconds += cost.output_bytes / over.store_bytes_per_s
        return seconds

    def start(self, w: int, now: float) -> bool:
        i = self.take(w)
        if i is None:
            return False
        end = now + self.duration(i, w)
        self.where[i] = w
        self.slots.append(Slot(i, w, now, end))
        heapq.heappush(self.events, (end, i, w))
        return True

    def finish(self, i: int, w: int) -> None:
        kept = False
        for c in self.plan.dependents[i]:
            self.remaining[c] -= 1
            if self.remaining[c] == 0:
                if kept:
                    self.shared.append(c)
                else:
                    self.own[w].append(c)
                    kept = True

    def run(self) -> float:
        idle = list(range(self.workers))
        now = 0.0
        while True:
            idle = [w for w in idle if not self.start(w, now)]
            if not self.events:
                return now
            now, i, w = heapq.heappop(self.events)
            self.finish(i, w)
            idle.append(w)
            while self.events and self.events[0][0] == now:  # ends at the same instant
                _, i, w = heapq.heappop(self.events)
                self.finish(i, w)
                idle.append(w)
            idle.sort()


def simulate(plan: Plan, model: CostModel, workers: int) -> Forecast:
    """The predicted run of ``plan`` on ``workers`` workers under ``model``."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    costs = task_costs(plan, model)
    sim = _Simulation(plan, costs, model, workers)
    span = sim.run()
    return Forecast(workers=workers, makespan=span + model.overheads.per_run_s,
                    slots=sorted(sim.slots, key=lambda s: (s.worker, s.start)),
                    costs=costs, plan=plan, model=model)


def forecast(nodes: Node | Iterable[Node] | DAG, workers: int,
             history: Any = None) -> Forecast:
    """Predict a run of ``nodes`` on ``workers`` workers from ``history``.

    ``history``: a metrics path or Redis URL, a list of RunReports, a
    fitted ``CostModel``, or None (every function then costs the default).
    """
    from .history import fit, load_history
    dag = nodes if isinstance(nodes, DAG) else DAG(nodes)
    model = history if isinstance(history, CostModel) else fit(load_history(history), workers)
    return simulate(build_plan(dag), model, workers)


def by_worker(slots: Sequence[Slot], workers: int) -> list[list[Slot]]:
    """The slots of each worker, in start order."""
    out: list[list[Slot]] = [[] for _ in range(workers)]
    for s in sorted(slots, key=lambda s: s.start):
        out[s.worker].append(s)
    return out
