"""Which tasks one stream message makes a worker run: WUKONG-style clustering over Redis.

A message hands a worker a batch of ready tasks. The worker then owns a
growing *cluster* of tasks it will run itself, without asking Redis:

* every task of the batch, and every consumer it *claimed* (the worker whose
  completion brought a fan-in's counter to its input count runs the fan-in);
* the first single-input consumer of a member (a chain continues here; the
  other single-input consumers of a fan-out are queued for other workers);
* any consumer all of whose inputs are members (a fan-in fed only from here,
  e.g. a whole reduction subtree whose leaves came in one batch).

Membership is decided from the Plan and from claims alone, so a message
re-run after its worker died rebuilds the same cluster. Counters in Redis
are touched only on the edges that leave the cluster, and a result goes to
Redis only if such an edge, a queued consumer or the caller needs it
(delayed I/O): everything else stays in this worker's memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.plan import Plan


@dataclass
class Completion:
    """What finishing one member means for its consumers."""

    local_ready: list[int]                 # members whose inputs are now all here
    external: list[tuple[int, int]]        # (consumer, its input count): counter path
    queued: list[int]                      # single-input consumers for other workers


@dataclass
class Cluster:
    """The tasks this worker runs for one message, and which inputs it holds."""

    plan: Plan
    members: set[int] = field(default_factory=set)
    waiting: dict[int, int] = field(default_factory=dict)   # member -> inputs not done here
    done: set[int] = field(default_factory=set)
    member_uses: dict[int, int] = field(default_factory=dict)  # task -> member consumers to run

    def admit(self, tasks: list[int]) -> None:
        """Add ready tasks (the batch, or claimed fan-ins) and everything they pull in."""
        work = []
        for t in tasks:
            if t not in self.members:
                self._join(t, ready=True)
                work.append(t)
        self._extend(work)

    def _join(self, t: int, ready: bool = False) -> None:
        self.members.add(t)
        deps = self.plan.deps[t]
        # A ready task's inputs are all done (some elsewhere, read from Redis);
        # a pulled-in member waits for the inputs this worker has yet to make.
        self.waiting[t] = 0 if ready else sum(1 for d in deps if d not in self.done)
        for d in deps:
            self.member_uses[d] = self.member_uses.get(d, 0) + 1

    def _extend(self, work: list[int]) -> None:
        plan = self.plan
        deps, dependents, members = plan.deps, plan.dependents, self.members
        while work:
            t = work.pop()
            first_single = True
            for c in dependents[t]:
                if c in members:
                    if len(deps[c]) == 1:
                        first_single = False
                    continue
                if len(deps[c]) == 1:
                    if first_single:
                        first_single = False
                        self._join(c)
                        work.append(c)
                elif all(d in members for d in deps[c]):
                    self._join(c)
                    work.append(c)

    def completed(self, t: int) -> Completion:
        """Record that member ``t`` ran here; sort its consumers."""
        plan = self.plan
        self.done.add(t)
        local_ready, external, queued = [], [], []
        deps = plan.deps
        for c in plan.dependents[t]:
            if c in self.members:
                self.waiting[c] -= 1
                if not self.waiting[c]:
                    local_ready.append(c)
            elif len(deps[c]) == 1:
                queued.append(c)
            else:
                external.append((c, len(deps[c])))
        return Completion(local_ready, external, queued)

    def release(self, t: int) -> list[int]:
        """After member ``t`` ran: inputs that no member still needs (drop them locally)."""
        out = []
        for d in self.plan.deps[t]:
            n = self.member_uses.get(d, 0) - 1
            self.member_uses[d] = n
            if n <= 0:
                out.append(d)
        return out
