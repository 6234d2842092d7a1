"""Which fastdag tasks share one engine task: tiny tasks grouped, as WUKONG clusters them.

::

    earlier runs' records ──TaskCosts.learn──> per function: mean run time, largest output
    Plan ──TaskCosts.tiny──> per task: predicted seconds if tiny, else None
         ──group──> clusters: lists of task indices, each run by one engine task,
                     its last task (the root) the only one whose value leaves it

Why: Ray and Dask spend about a millisecond of scheduling on every task
(measured here: 4,095 two-int additions take 3.9 s as Ray remote functions,
8.8 s through ``client.compute``), a thousand times what such a task
computes. Run by fastdag's runner inside one engine task, the same tasks
cost microseconds each, and the engine moves one value per cluster.

Policy:

1. A task is tiny when its function was seen before on an engine with
   inputs of about the size predicted for it (its producers' outputs seen;
   within a factor of 64),
   taking under ``TINY_TASK_S`` on average and never returning more than
   ``SMALL_OUTPUT`` bytes. A function never seen is not tiny (its first
   run, task by task, measures it); a task that returned a large value
   stays an engine task of its own, so large results still travel as the
   engine's objects (Ray's ObjectRefs, Dask's worker memory) between
   clusters.
2. Tasks are visited consumers first (reverse topological order). A tiny
   task that the caller does not want joins the cluster of its consumers
   when all of them are in one cluster of tiny tasks and there is room for
   it: its own subtree of tiny tasks if that fits in what the cluster has
   left, or the task alone if its subtree could never fit in one cluster
   anyway. Otherwise it starts a cluster. So every task but a cluster's
   root has all its consumers inside the cluster, and the clusters form a
   DAG ordered by their roots' indices.
3. A cluster holds at most ``CLUSTER_S`` of predicted work (the planner's
   batch size, ``TARGET_BATCH_SECONDS``), so that a graph of many tiny
   tasks still has clusters enough for every engine worker.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence

from ..core.gil import function_key
from ..core.plan import TARGET_BATCH_SECONDS, Plan
from ..core.records import END, INDEX, INPUT_BYTES, OUTPUT_BYTES, RAW_WIDTH, START

TINY_TASK_S = 0.001        # under the engines' own cost of one task (about 1 ms here)
SMALL_OUTPUT = 64 * 1024   # bytes: as store/shm.py's INLINE_THRESHOLD, what travels inline
CLUSTER_S = TARGET_BATCH_SECONDS
SIZE_STEP_BITS = 3         # input size classes: sizes within a factor of 8 share one
PER_TASK_S = 5e-6          # the cluster runner's own cost per task (records, argument lookup)


class TaskCosts:
    """What each function cost on the engines, by size of input: learnt from run records.

    Keyed by function and input size (``SIZE_STEP_BITS``): the
    same ``add`` is tiny on two ints and not on two large arrays.
    """

    def __init__(self) -> None:
        # (function key, input size class) -> [tasks seen, their seconds, largest output bytes]
        self._seen: dict[tuple[Hashable, int], list[float]] = {}
        self._lock = threading.Lock()

    def learn(self, plan: Plan, rows: Sequence[tuple[str, Sequence[float]]]) -> None:
        """Add a run's records, ``(worker, RAW_FIELDS...)`` rows (several records flat)."""
        tasks = plan.tasks
        with self._lock:
            for _worker, flat in rows:
                for k in range(0, len(flat), RAW_WIDTH):
                    record = flat[k:k + RAW_WIDTH]
                    key = (function_key(tasks[int(record[INDEX])].func),
                           _size_class(record[INPUT_BYTES]))
                    entry = self._seen.setdefault(key, [0, 0.0, 0.0])
                    entry[0] += 1
                    entry[1] += record[END] - record[START]
                    entry[2] = max(entry[2], record[OUTPUT_BYTES])

    def tiny(self, plan: Plan, extra_bytes: Sequence[int] | None = None) -> list[float | None]:
        """Per task of ``plan``: its predicted seconds if it is tiny (policy 1), else None.

        A task's input bytes are predicted from its producers' largest outputs
        seen (plus ``extra_bytes``, per task: arrays it reads besides its
        inputs); a task with a producer never measured is not tiny.
        """
        n = len(plan)
        tiny: list[float | None] = [None] * n
        out: list[float | None] = [None] * n  # predicted output bytes, if measured
        keys = [function_key(t.func) for t in plan.tasks]
        with self._lock:
            for i, deps in enumerate(plan.deps):
                sizes = [out[d] for d in deps]
                if None in sizes:
                    continue
                size = sum(sizes) + (extra_bytes[i] if extra_bytes else 0)  # type: ignore[arg-type]
                seen = self._near(keys[i], _size_class(size))
                if seen is None:
                    continue
                out[i], mean = seen[2], seen[1] / seen[0]
                if mean < TINY_TASK_S and seen[2] <= SMALL_OUTPUT:
                    tiny[i] = mean
        return tiny


    def _near(self, key: Hashable, size_class: int) -> list[float] | None:
        """What ``key`` cost on inputs of ``size_class``, or of the next class down or up:
        sizes are predicted from the largest outputs seen, so they drift by a class."""
        seen = self._seen
        return seen.get((key, size_class)) or seen.get((key, size_class - 1)) or \
            seen.get((key, size_class + 1))


def _size_class(nbytes: float) -> int:
    """The class of an input size: one per ``SIZE_STEP_BITS`` bits of it."""
    return int(nbytes).bit_length() // SIZE_STEP_BITS


def group(plan: Plan, tiny: Sequence[float | None], budget: float = CLUSTER_S) -> list[list[int]]:
    """The clusters of ``plan`` (policy 2 and 3): task indices ascending, in root order.

    ``tiny``: per task, its predicted seconds, or None for a task that must be
    an engine task of its own.
    """
    subtree = _subtree_seconds(plan, tiny)
    owner = [0] * len(plan)
    members: list[list[int]] = []
    room: list[float] = []  # per cluster: seconds it can still take (-1: a task of its own)
    # A task whose subtree of tiny tasks was counted into its cluster's work already:
    # the producers of that subtree join it without being counted again.
    paid = bytearray(len(plan))
    dependents, wanted = plan.dependents, plan.wanted
    for i in range(len(plan) - 1, -1, -1):
        cost, users = tiny[i], dependents[i]
        c = -1
        if cost is not None and users and not wanted[i]:
            c = owner[users[0]]
            if any(owner[u] != c for u in users) or not _take(room, c, i, cost, subtree, paid,
                                                                budget):
                c = -1
        if c < 0:
            c = len(members)
            members.append([])
            room.append(-1.0 if cost is None else budget)
            if cost is not None:
                _take(room, c, i, cost, subtree, paid, budget)
        owner[i] = c
        members[c].append(i)
        if paid[i]:
            for d in plan.deps[i]:
                if subtree[d] and all(u == i for u in dependents[d]):
                    paid[d] = 1
    return [m[::-1] for m in reversed(members)]


def _take(room: list[float], c: int, i: int, cost: float, subtree: list[float],
          paid: bytearray, budget: float) -> bool:
    """Count task ``i`` into cluster ``c``'s work if there is room: its whole subtree
    (then ``paid``), or itself alone when its subtree could not fit any cluster."""
    if paid[i]:
        return True
    if room[c] >= subtree[i]:
        room[c] -= subtree[i]
        paid[i] = 1
        return True
    if subtree[i] > budget and room[c] >= cost + PER_TASK_S:
        room[c] -= cost + PER_TASK_S
        return True
    return False


def _subtree_seconds(plan: Plan, tiny: Sequence[float | None]) -> list[float]:
    """Per tiny task: its seconds plus those of the tiny producers that feed only it (an
    estimate of the work a cluster rooted there would hold; 0 for other tasks)."""
    seconds = [0.0] * len(plan)
    dependents = plan.dependents
    for i, deps in enumerate(plan.deps):
        cost = tiny[i]
        if cost is None:
            continue
        total = cost + PER_TASK_S
        for d in set(deps):
            if tiny[d] is not None and all(u == i for u in dependents[d]):
                total += seconds[d]
        seconds[i] = total
    return seconds
