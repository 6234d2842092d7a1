"""What the local scheduler knows about one run's tasks, without processes or pipes.

    submit ──> SchedulerState(plan): tasks with no inputs are ready
    idle worker W <── take(W, n) ─────── W's own queue, the shared one, others'
    W's report ───> report(W, completed, boundary, claimed, final)
                      consumers of ``boundary`` whose inputs are all done
                      become ready: in W's queue after a final report (the
                      fan-in runs where its last input is), else shared
    stored results ─> count_readers(results) / read(results) -> those to free now
    W died ───────> give_back(W, batch): its batch and claims, shared again
    W gave back ──> returned(W, tasks): tasks of its batch not started, for an idle worker

The verbs follow ``graphlib.TopologicalSorter`` (``get_ready``/``done``/
``is_active``), with what a process pool adds: batches taken by a worker,
continuations a worker claims, and reference counts of stored results. The
LocalExecutor's ``RunState`` is this state plus the run's future, stores
and records; ``executors/local.py`` turns messages into these calls.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.plan import Plan


@dataclass(kw_only=True)
class SchedulerState:
    """Readiness and reader counts of one run's tasks (see the module docstring)."""

    plan: Plan
    remaining: list[int] = field(init=False)   # per task: inputs not reported done yet
    done: bytearray = field(init=False)        # per task: reported done
    ndone: int = 0
    ready: collections.deque = field(default_factory=collections.deque)  # shared queue
    local: dict[int, collections.deque] = field(default_factory=dict)    # worker -> its queue
    claims: dict[int, int] = field(default_factory=dict)     # task -> worker continuing it
    refcount: dict[int, int] = field(default_factory=dict)   # stored result -> readers left

    def __post_init__(self) -> None:
        deps = self.plan.deps
        self.remaining = [len(d) for d in deps]
        self.done = bytearray(len(deps))
        self.ready.extend(i for i, d in enumerate(deps) if not d)

    def is_active(self) -> bool:
        """Whether some task has not been reported done."""
        return self.ndone < len(self.done)

    def ready_count(self) -> int:
        """Tasks ready and not yet taken, in every queue."""
        return len(self.ready) + sum(len(q) for q in self.local.values())

    def take(self, worker: int, n: int) -> list[int]:
        """Up to ``n`` ready tasks for ``worker``: its own queue first, then the
        shared queue, then other workers' queues. Taken tasks leave the queues."""
        queues = [self.local.get(worker), self.ready,
                  *(q for w, q in self.local.items() if w != worker)]
        tasks: list[int] = []
        for q in queues:
            while q and len(tasks) < n:
                tasks.append(q.popleft())
        return tasks

    def report(self, worker: int, completed: Iterable[int], boundary: Iterable[int],
               claimed: Iterable[int], final: bool) -> None:
        """``worker`` ran ``completed``; ``boundary`` are those with a consumer not run
        there (only their consumers' counts move), ``claimed`` the consumers it
        will run itself (never handed out). A consumer whose inputs are now all
        done, and not claimed, becomes ready: in ``worker``'s queue if the report
        is ``final`` (its batch is over), else in the shared queue."""
        done, remaining, claims = self.done, self.remaining, self.claims
        count = 0
        for t in completed:
            done[t] = 1
            count += 1
        self.ndone += count
        if claims:
            for t in [t for t in claims if done[t]]:
                del claims[t]
        for t in claimed:
            claims[t] = worker
        dest = self.local.setdefault(worker, collections.deque()) if final else self.ready
        dependents = self.plan.dependents
        for t in boundary:
            for c in dependents[t]:
                remaining[c] -= 1
                if not remaining[c] and not done[c] and c not in claims:
                    dest.append(c)

    def count_readers(self, results: Iterable[int]) -> list[int]:
        """Start counting the readers of newly stored ``results``: their consumers not
        done yet, +1 if the caller wants the value. Returns those nobody will read
        (free them now)."""
        wanted, dependents, done, refcount = \
            self.plan.wanted, self.plan.dependents, self.done, self.refcount
        unread = []
        for d in results:
            left = wanted[d]
            for c in dependents[d]:
                if not done[c]:
                    left += 1
            if left:
                refcount[d] = left
            else:
                refcount.pop(d, None)
                unread.append(d)
        return unread

    def read(self, results: Iterable[int]) -> list[int]:
        """One read of each of ``results`` (a repeat is another read); returns those
        read for the last time (free them now). A result not counted is ignored."""
        refcount = self.refcount
        unread = []
        for d in results:
            if d in refcount:
                refcount[d] -= 1
                if not refcount[d]:
                    del refcount[d]
                    unread.append(d)
        return unread

    def give_back(self, worker: int, batch: Iterable[int]) -> None:
        """``worker`` died: the tasks of its ``batch`` not done, and the ready ones it
        had claimed, go back to the shared queue."""
        batch = list(batch)
        for t in batch:
            if not self.done[t]:
                self.ready.append(t)
        taken = set(batch)
        for t, w in list(self.claims.items()):
            if w == worker:
                del self.claims[t]
                if not self.done[t] and not self.remaining[t] and t not in taken:
                    self.ready.append(t)

    def returned(self, worker: int, tasks: list[int]) -> None:
        """``worker`` handed back ``tasks`` of its batch, not started (a steal
        request): no longer its claims, first in the shared queue."""
        claims = self.claims
        for t in tasks:
            if claims.get(t) == worker:
                del claims[t]
        self.ready.extendleft(reversed(tasks))

    def clear(self) -> None:
        """Drop every queue: the run is over, nothing more is handed out."""
        self.ready.clear()
        self.local.clear()
