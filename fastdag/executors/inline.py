"""Graphs of tiny tasks, run in the caller's thread: no pool, no worker, no message.

::

    compute(graph) ──> Placement.where(graph) == "inline"
                       (every function measured, the whole graph expected to take
                        less than handing it to threads or processes would cost)
          │
          ▼
    InlineRun.run(): plan order, one loop in this thread
        task i: inputs guarded where someone else sees them ──> func(*args)
                stamps (start, end) and output size into flat arrays
          │
          ▼
    one metrics block for the run, one profile update per function,
    writeable outputs ──> the future, resolved before compute() waits on it

Why: a tree of 4,096 additions takes about half a millisecond as plain
calls, but 4 to 6 microseconds a task on a pool or on worker processes
(locks, messages, a record tuple, a clock and a profile update each). For
such a graph no parallel speed-up can repay that, so the default executor
runs it here, paying per task only the call, two clock reads and the
bookkeeping of the copy-on-write guarantee (``guard.py``): a value someone
else may see is handed over guarded, unless it is immutable.

Anything unusual (a task that raised, a function known to write into its
inputs, arguments nested in containers) goes through ``GuardedRun``'s own
per-task path, so retries, private copies and error reports are the same as
on threads.
"""

from __future__ import annotations

import itertools
import operator
import time
from array import array
from typing import Any

import numpy as np

from .. import events as ev
from ..core.errors import TaskError, task_failure
from ..core.guard import IMMUTABLE, guarded, wrote_read_only
from ..core.gil import function_key
from ..core.graph import ARGS_ARE_DEPS, NESTED, NO_NODES
from ..core.records import (ATTEMPTS, END, INDEX, INPUT_BYTES, OUTPUT_BYTES, RAW_WIDTH, READY,
                            START)
from ..core.plan import Ref
from ..core.runner import (FIXED_SIZES, INTERNAL_FILES, TASK_EXCEPTIONS, describe_failure,
                           execute, nbytes)
from .guarded import GuardedRun
from .inprocess import _worker_name

INTERNAL_FILES.add(__file__)  # a task's traceback starts at the user's function

# How often (in tasks) the loop looks whether the run was cancelled.
_CANCEL_CHECK = 1024
_FUNC = operator.attrgetter("func")



class InlineRun(GuardedRun):
    """A ``GuardedRun`` executed in one pass in the calling thread (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, sample=False, **kwargs)
        self.attempts: dict[int, int] = {}  # tasks that took more than one attempt

    def counts(self) -> tuple[list[int], list[int]]:
        """Only the readers left: one pass in plan order never asks which inputs are
        missing. Counted column-wise from every task's inputs, which ``_direct``
        (``fan_in``: how many) and ``_block`` (``inputs``: which) read again.
        """
        plan, n = self.plan, len(self.plan)
        self.fan_in = _lengths(plan.deps)
        self.inputs_flat = np.fromiter(itertools.chain.from_iterable(plan.deps), dtype=np.int64,
                                       count=int(self.fan_in.sum()))
        self.readers = np.bincount(self.inputs_flat, minlength=n) + np.frombuffer(
            plan.wanted, dtype=np.uint8)
        return [], self.readers.tolist()

    def shared_flags(self) -> bytearray:
        """``GuardedRun.shared`` from the readers counted column-wise above."""
        return bytearray((self.readers > 1).tobytes())

    def run(self) -> None:
        """Run every task in plan order; resolve the future (with the first error, if any)."""
        n = len(self.plan)
        ends, sizes = array("d", bytes(8 * n)), self.sizes
        started = time.time()
        try:
            if not self._loop(ends):
                return  # cancelled
        except TaskError as exc:
            self.fail(exc)
            return
        self.ran = n
        self.future.tasks_done = n
        starts = array("d", [started]) + ends[:-1]  # each task starts as the one before ends
        self.bus.emit(ev.TaskBatch(self.future.run_id, time.time(), _worker_name(),
                                   _block(starts, ends, sizes, self.fan_in, self.inputs_flat,
                                          self.attempts)))
        self._learn(starts, ends)
        self.finish()

    def _loop(self, ends: array) -> bool:
        """The pass over the plan, each task's end time into ``ends``; False if cancelled.

        One clock read per task: a task starts when the one before it ends,
        so the loop's own few hundred nanoseconds are counted in the next task.

        ``needs_guard`` marks stored values someone else may also see that a
        task could change (``shared`` and not immutable): while there are
        none, as in a tree of numbers, inputs are passed with no check.
        """
        plan = self.plan
        funcs, deps, args = list(map(_FUNC, plan.tasks)), plan.deps, plan.args
        direct, repeats = self._direct()
        values, shared, uses, sizes = self.values, self.shared, self.uses_left, self.sizes
        needs_guard = bytearray(len(funcs))
        needing = 0
        future, clock, immutable, fixed = self.future, time.time, IMMUTABLE, FIXED_SIZES.get
        for i, mine in enumerate(deps):
            if not i % _CANCEL_CHECK and future.done():
                return False
            kind = direct[i]
            if kind == 4 and not needing:  # f(a, b) of two Nodes, nothing to guard: the bulk
                try:
                    value = funcs[i](values[mine[0]], values[mine[1]])
                except TASK_EXCEPTIONS as exc:  # noqa: BLE001 - its own path decides
                    value = self._after_error(i, exc)
            elif kind:
                if kind == 1:
                    call_args = args[i]
                elif kind == 5:
                    call_args = guarded(args[i])
                else:
                    order = repeats.get(i, mine) if kind == 3 else mine
                    call_args = [values[d] for d in order]
                    if needing:
                        call_args = [guarded(v) if needs_guard[d] else v
                                     for d, v in zip(order, call_args)]
                    if kind == 3:
                        call_args = (call_args,)
                try:
                    value = funcs[i](*call_args)
                except TASK_EXCEPTIONS as exc:  # noqa: BLE001 - its own path decides
                    value = self._after_error(i, exc)
            else:
                value = self._call_slow(i)
            ends[i] = clock()
            values[i] = value
            sizes[i] = fixed(type(value)) or nbytes(value)
            if shared[i] and type(value) not in immutable:
                needs_guard[i] = 1
                needing += 1
            for d in mine:
                uses[d] -= 1
                if not uses[d]:
                    values[d] = None
        return True

    def _direct(self) -> tuple[bytearray, dict[int, list[int]]]:
        """Per task: 1 to call with its plain captured arguments (5 with other captured
        arguments, guarded: ``f([0, 1])``, arrays), 2 with its inputs in
        order (``f(x, y, z)`` of Nodes; 4 when there are two), 3 with one list of inputs
        (``f([a, b])``), 0 for ``GuardedRun``'s path (other nesting, keywords, captured
        objects, a function known to write into its inputs). Worked out column-wise:
        a Python pass over 4,096 tasks cost as much as running them.

        With the kinds, the input order of the kind-3 tasks whose list names
        a Node twice (``f([a, a])``); the others' list is their ``deps``.
        """
        plan, n = self.plan, len(self.plan)
        modes = np.frombuffer(bytes(plan.modes), dtype=np.uint8)
        inputs = self.fan_in
        keywords = (np.zeros(n, dtype=bool) if plan.kwargs.count(None) == n else
                    np.fromiter(map(bool, plan.kwargs), dtype=bool, count=n))
        simple = np.frombuffer(plan.simple, dtype=np.uint8).astype(bool)
        kinds = np.where(modes == ARGS_ARE_DEPS, np.where(inputs == 2, 4, 2),
                         np.where(modes == NO_NODES, np.where(simple, 1, 5), 0)).astype(np.uint8)
        kinds[keywords] = 0
        repeats: dict[int, list[int]] = {}
        for i in np.flatnonzero((modes == NESTED) & ~keywords).tolist():
            if _one_list_of_refs(plan.args[i]):
                kinds[i] = 3
                if len(plan.args[i][0]) != len(plan.deps[i]):
                    repeats[i] = [r.i for r in plan.args[i][0]]
        if self.writers:
            for i, task in enumerate(plan.tasks):
                if function_key(task.func) in self.writers:
                    kinds[i] = 0
        return bytearray(kinds.tobytes()), repeats

    def _call_slow(self, i: int) -> Any:
        """Task ``i`` by ``GuardedRun.guarded_call``, a failure turned into the run's TaskError."""
        try:
            value, attempts = self.guarded_call(i)
        except TASK_EXCEPTIONS as exc:  # noqa: BLE001
            raise self._failure(i, exc, self.plan.tasks[i].retries + 1) from exc
        if attempts != 1:
            self.attempts[i] = attempts
        return value

    def _after_error(self, i: int, exc: BaseException) -> Any:
        """What a run on threads does after a first attempt raised: private copies, retries, failure."""
        task = self.plan.tasks[i]
        if wrote_read_only(exc):
            self.writers.add(function_key(task.func))
            return self._call_slow(i)
        if task.retries:
            self.guard_arguments(i)  # the retry must not write into the caller's objects
            try:
                value, self.attempts[i] = execute(self.plan, i, self.inputs, failed=1)
            except TASK_EXCEPTIONS as again:  # noqa: BLE001
                raise self._failure(i, again, task.retries + 1) from again
            return value
        raise self._failure(i, exc, 1) from exc

    def _failure(self, i: int, exc: BaseException, attempts: int) -> TaskError:
        failure = describe_failure(i, exc, attempts)
        error = task_failure(self.plan.name(i), exc, failure.traceback)
        ev.task_failed(self.bus, self.future.run_id, i, _worker_name(), error)
        return error

    def _learn(self, starts: array, ends: array) -> None:
        """One profile update per function, from its tasks' run times in this run."""
        self.profile.record_tasks(self.plan.tasks, np.frombuffer(ends) - np.frombuffer(starts))


def _lengths(deps: list[tuple[int, ...]]) -> np.ndarray:
    """``len`` of every task's inputs, as an array: through ``bytes`` while each is below
    256 (half the time of ``np.fromiter``, which converts int by int)."""
    try:
        return np.frombuffer(bytes(map(len, deps)), dtype=np.uint8).astype(np.int64)
    except ValueError:  # a fan-in of 256 inputs or more
        return np.fromiter(map(len, deps), dtype=np.int64, count=len(deps))


def _one_list_of_refs(template: tuple) -> bool:
    """Whether an argument template is ``([Ref, Ref, ...],)``, as ``plan`` builds for ``f([a, b])``."""
    if len(template) != 1 or type(template[0]) is not list:
        return False
    for value in template[0]:  # a loop, not all(...): no generator per task
        if type(value) is not Ref:
            return False
    return True


def _block(starts: array, ends: array, sizes: list[int], lengths: np.ndarray,
           inputs: np.ndarray, attempts: dict[int, int]) -> array:
    """The run's metrics records, flat ``RAW_FIELDS``, as one array (built column-wise).

    A task was ready when the one before it ended (the loop runs them back to back);
    ``lengths``: its number of inputs, ``inputs``: every task's, end to end.
    """
    n = len(starts)
    table = np.zeros((n, RAW_WIDTH))
    table[:, INDEX] = np.arange(n)
    table[:, START] = np.frombuffer(starts)
    table[:, END] = np.frombuffer(ends)
    out_bytes = np.array(sizes, dtype=np.float64)
    table[:, OUTPUT_BYTES] = out_bytes
    if len(inputs):
        table[:, INPUT_BYTES] = np.bincount(np.repeat(np.arange(n), lengths),
                                            weights=out_bytes[inputs], minlength=n)
    table[:, ATTEMPTS] = 1.0
    for i, count in attempts.items():
        table[i, ATTEMPTS] = count
    table[1:, READY] = table[:-1, END]
    table[0, READY] = table[0, START] if n else 0.0
    return array("d", table.tobytes())
