"""The task step both worker kinds take: run with retries, fail as data, record.

    inputs (shared memory here | Redis there)
        -> run_task, or the worker's own first call then retry_task
                                   the function, retried from fresh inputs
        -> value, attempts         the worker keeps or stores it, continues
        -> or TaskFailed           carries a runner.Failure (traceback trimmed
                                   to the user's frames); the worker sends it
                                   as send_bytes / runner.send_failure

``engine/worker.py`` (LocalExecutor's processes) and
``distributed/worker.py`` (``fastdag worker``) differ only in where inputs
come from and results go; what a task run *is* (its retries, what a failure
holds, why a result that will not pickle fails its task, which captured
arguments it may change) is defined once, here. A metrics record is
``core.records.RAW_FIELDS``, whose positions ``core.records`` names
(``START``, ``OUTPUT_BYTES``...).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import SerializationError
from ..core.guard import guarded, private, wrote_read_only
from ..core.plan import Plan
from ..core.runner import (INTERNAL_FILES, TASK_EXCEPTIONS, Failure, call_task, describe_failure,
                      execute, send_failure)
from ..core.serialize import describe_unpicklable

INTERNAL_FILES.add(__file__)

Values = Mapping[int, Any] | Sequence[Any]


class TaskFailed(Exception):
    """A task step failed; ``failure`` is what the worker reports."""

    def __init__(self, failure: Failure):
        super().__init__(failure.index)
        self.failure = failure


def run_task(plan: Plan, i: int, source: Values, fresh: Values | None = None) -> tuple[Any, int]:
    """Run task ``i`` on the values in ``source``; return (value, attempts).

    A retry reads its inputs from ``fresh`` (default: ``source``), which
    hands out new copies where ``source`` may hold ones the failed attempt
    modified. Raises TaskFailed after the last attempt.
    """
    try:
        return call_task(plan, i, source), 1
    except TASK_EXCEPTIONS as exc:
        return retry_task(plan, i, source if fresh is None else fresh, exc)


def own_arguments(plan: Plan, i: int, copy: Any = guarded) -> None:
    """Give task ``i`` its own copy of its captured arguments (``guard.guarded``).

    A worker loads the plan once per run, so tasks that captured the same
    list or array (``f(xs)`` called four times) would share one object and
    see each other's writes; copied, each sees the value it was called with,
    as on threads. Arrays become read-only views: a task that writes into
    one is called again on private copies (``retry_task``), and one that
    returns one returns a copy (``guard.writeable``, the worker's call).
    """
    if plan.args[i] is not None:
        plan.args[i] = copy(plan.args[i])
    if plan.kwargs[i]:
        plan.kwargs[i] = copy(plan.kwargs[i])


class _Private:
    """A task's inputs as private copies: for a task that wrote into a read-only one."""

    __slots__ = ("source",)

    def __init__(self, source: Values):
        self.source = source

    def __getitem__(self, d: int) -> Any:
        return private(self.source[d])


def own_inputs(plan: Plan, i: int, inputs: dict[int, Any]) -> None:
    """Before task ``i`` runs on values a worker holds in memory (``fastdag worker``):
    its captured arguments and every input another task or the caller also sees,
    guarded, so that what it writes into them no one else sees."""
    if not plan.simple[i]:
        own_arguments(plan, i)
    for d in inputs:
        if plan.wanted[d] or len(plan.dependents[d]) > 1:
            inputs[d] = guarded(inputs[d])


def retry_task(plan: Plan, i: int, fresh: Values, exc: BaseException) -> tuple[Any, int]:
    """After task ``i``'s first attempt raised ``exc``: retry it from ``fresh`` values
    if its retries allow, return (value, attempts); else raise TaskFailed.

    A worker that made the first call itself (its fast path for ``f(a, b)``)
    hands the failure here, so the retry budget and the failure are the same
    whichever way the task was first called.
    """
    if wrote_read_only(exc):  # into a guarded captured argument, or a view of one passed on
        own_arguments(plan, i, private)
        try:
            return call_task(plan, i, _Private(fresh)), 1
        except TASK_EXCEPTIONS as again:  # noqa: BLE001 - its own failure, retried below
            again.__context__ = None
            exc = again
    retries = plan.tasks[i].retries
    if retries and isinstance(exc, Exception):
        try:
            return execute(plan, i, fresh, failed=1)
        except TASK_EXCEPTIONS as again:  # noqa: BLE001 - becomes the caller's TaskError
            if again.__context__ is exc:
                # Retried while the caller handled ``exc``: the first attempt's
                # error is not the cause of the last one, and the traceback
                # (or pickling, if it will not pickle) must not drag it along.
                again.__context__ = None
            exc = again
    raise TaskFailed(describe_failure(i, exc, retries + 1)) from None


def unsendable(plan: Plan, i: int, value: Any, exc: BaseException, where: str) -> TaskFailed:
    """The failure of task ``i`` whose result could not be stored ``where`` (it will
    not pickle, say): the task's own failure, named for the user, not the worker's."""
    name = plan.name(i)
    hint = ""
    if "is a lazy fd.Node" in str(exc):
        hint = ("; a task that calls an @fd.task function gets a Node back: call .compute() "
                "on it there, or call the plain function (f.func(...))")
    err = SerializationError(f"the result of task {name!r} cannot be sent {where}: "
                             f"{describe_unpicklable(value, exc)}{hint}", task=name)
    err.__cause__ = exc
    return TaskFailed(describe_failure(i, err, 1))


def failure_bytes(failure: Failure) -> bytes:
    """``failure`` pickled so the client can always load it (``runner.SentFailure``),
    whether or not its exception pickles."""
    return pickle.dumps(send_failure(failure), protocol=5)
