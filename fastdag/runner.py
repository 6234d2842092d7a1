"""Running one task of a Plan: argument substitution, retries, failures, sizes.

Shared by every executor (in the caller's thread, in pool threads, in worker
processes), so a task behaves the same wherever it runs.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .graph import map_nested
from .plan import Plan, Ref


@dataclass
class Failure:
    """A task that raised after its retries: what a worker sends back."""

    index: int
    exc: BaseException
    traceback: str
    attempts: int


def call_task(plan: Plan, i: int, values: Mapping[int, Any] | Sequence[Any]) -> Any:
    """Call task ``i`` with its Node arguments replaced from ``values``."""
    func = plan.tasks[i].func
    mode = plan.modes[i]
    if mode == 3:
        return func(*[values[d] for d in plan.deps[i]])
    args = plan.args[i]
    kwargs = plan.kwargs[i]
    if mode == 1:
        args = [values[a.i] if type(a) is Ref else a for a in args]
        if kwargs:
            kwargs = {k: values[v.i] if type(v) is Ref else v for k, v in kwargs.items()}
    elif mode == 2:
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


def nbytes(value: Any) -> int:
    """A cheap size estimate of a value: buffer sizes where known, else getsizeof.

    Called for every task's output, so scalars take a dict lookup and no more.
    """
    size = FIXED_SIZES.get(type(value))
    if size is not None:
        return size
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, (list, tuple)) and value and len(value) <= 64:
        return sys.getsizeof(value) + sum(nbytes(v) for v in value)
    try:
        return sys.getsizeof(value)
    except TypeError:
        return 0
