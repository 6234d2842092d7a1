"""Small tasks shared by the test modules (importable, so they pickle by reference)."""

from __future__ import annotations

import fastdag as fd


@fd.task
def add(x, y):
    return x + y


@fd.task
def inc(x):
    return x + 1


@fd.task
def total(xs):
    return sum(xs)


@fd.task
def imported(module: str) -> bool:
    """Whether the process running it has imported ``module``."""
    import sys
    return module in sys.modules
