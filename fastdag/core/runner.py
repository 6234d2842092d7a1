"""Running one task of a Plan: argument substitution, retries, failures, sizes.

Shared by every executor (in the caller's thread, in pool threads, in worker
processes), so a task behaves the same wherever it runs.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import TaskError, describe_exception, task_failure
from .graph import ARGS_ARE_DEPS, NESTED, TOP_LEVEL, map_nested
from .plan import Plan, Ref
from .portable import dumps_exception


# What a task may raise and still be only that task's failure: sys.exit() and a
# KeyboardInterrupt raised by the task's own code must not stop the worker.
TASK_EXCEPTIONS = (Exception, SystemExit, KeyboardInterrupt)


@dataclass
class Failure:
    """A task that raised after its retries: what a worker sends back."""

    index: int
    exc: BaseException
    traceback: str
    attempts: int


@dataclass
class SentFailure:
    """A Failure on its way to the client, the exception pickled apart from the rest.

    The index, type name and traceback text are plain data that always load.
    The exception itself may not: its ``__reduce__`` may name what the client
    lacks, or raise. The client then still learns what failed and where.
    """

    index: int
    type_name: str
    traceback: str
    attempts: int
    exc: bytes   # the pickled exception; b"" if it would not pickle


def send_failure(failure: Failure) -> SentFailure:
    """``failure`` in a form that pickles, and loads, whatever its exception is
    (rebuilt field by field if need be, its cause and context kept: ``core/portable.py``)."""
    return SentFailure(index=failure.index, type_name=type(failure.exc).__qualname__,
                       traceback=failure.traceback, attempts=failure.attempts,
                       exc=dumps_exception(failure.exc))


def received_error(task: str, sent: SentFailure) -> TaskError:
    """The TaskError for a failure a worker sent: rebuilt if possible, described if not."""
    problem = "it could not be pickled in the worker"
    exc = None
    if sent.exc:
        try:
            exc = pickle.loads(sent.exc)
        except Exception as err:  # noqa: BLE001 - any failure to rebuild is reported the same
            problem = f"rebuilding it here raised {describe_exception(err)}"
        else:
            if not isinstance(exc, BaseException):
                problem, exc = f"it was rebuilt as a {type(exc).__name__}, not an exception", None
    if isinstance(exc, TaskError):
        return exc
    if exc is not None:
        return task_failure(task, exc, sent.traceback)
    message = f"task {task!r} raised {sent.type_name} (not rebuilt here: {problem})"
    if sent.traceback:
        message += "\n\nTraceback in the worker:\n" + sent.traceback.rstrip()
    return TaskError(message, task=task, remote_traceback=sent.traceback)


def call_task(plan: Plan, i: int, values: Mapping[int, Any] | Sequence[Any]) -> Any:
    """Call task ``i`` with its Node arguments replaced from ``values``."""
    func = plan.tasks[i].func
    mode = plan.modes[i]
    if mode == ARGS_ARE_DEPS:
        return func(*[values[d] for d in plan.deps[i]])
    args = plan.args[i]
    kwargs = plan.kwargs[i]
    if mode == TOP_LEVEL:
        args = [values[a.i] if type(a) is Ref else a for a in args]
        if kwargs:
            kwargs = {k: values[v.i] if type(v) is Ref else v for k, v in kwargs.items()}
    elif mode == NESTED:
        def lookup(ref: Ref) -> Any:
            return values[ref.i]
        args = map_nested(args, Ref, lookup)
        if kwargs:
            kwargs = map_nested(kwargs, Ref, lookup)
    return func(*args, **kwargs) if kwargs else func(*args)


def execute(plan: Plan, i: int, values: Mapping[int, Any] | Sequence[Any],
            failed: int = 0) -> tuple[Any, int]:
    """Run task ``i`` with its retries; return (value, attempts) or raise the last error.

    ``failed`` counts attempts the caller already made (a fast path that
    called the function directly), so the retry budget is not reset.
    """
    retries = plan.tasks[i].retries
    attempt = failed
    while True:
        attempt += 1
        try:
            return call_task(plan, i, values), attempt
        except Exception:
            if attempt > retries:
                raise


INTERNAL_FILES = {__file__}  # executors add theirs: frames users need not read


def describe_failure(i: int, exc: BaseException, attempts: int) -> Failure:
    """Capture ``exc`` with its traceback text, dropping fastdag's own outer frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in INTERNAL_FILES:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return Failure(index=i, exc=exc, traceback=text, attempts=attempts)


FIXED_SIZES = {int: sys.getsizeof(0), float: sys.getsizeof(0.0), bool: sys.getsizeof(True),
                type(None): sys.getsizeof(None)}


def nbytes(value: Any, depth: int = 3) -> int:
    """A cheap size estimate of a value: buffer sizes where known, else getsizeof.

    Called for every task's output, so scalars take a dict lookup and no more.
    Short lists and tuples are looked into ``depth`` levels deep, not more: a
    list that holds itself (``xs.append(xs)``) is a valid result.
    """
    size = FIXED_SIZES.get(type(value))
    if size is not None:
        return size
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, (list, tuple)) and value and len(value) <= 64 and depth:
        return sys.getsizeof(value) + sum(nbytes(v, depth - 1) for v in value)
    if type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas"):
        return _frame_nbytes(value)
    try:
        return sys.getsizeof(value)
    except TypeError:
        return 0


def _frame_nbytes(frame: Any) -> int:
    """A pandas DataFrame's index and column buffers, as ``Series.nbytes`` counts them.

    Not ``sys.getsizeof``: pandas answers it with ``memory_usage(deep=True)``,
    ~0.7 ms a frame even for numbers only, paid for every task's output (a
    Dask dataframe's groupby: ~10 ms a run of 17 tasks). Nor a Series per
    column (``frame.items()``, 35-85 us a frame, pandas code that on threads
    waits for the GIL behind the tasks): the frame's blocks hold the same
    buffers, summed in well under a microsecond.
    """
    blocks = getattr(getattr(frame, "_mgr", None), "blocks", None)
    if blocks is None:  # a pandas without block managers
        return int(frame.index.nbytes) + sum([int(column.nbytes) for _, column in frame.items()])
    return int(frame.index.nbytes) + sum([int(block.values.nbytes) for block in blocks])
