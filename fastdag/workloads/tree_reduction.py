"""Tree reduction: pairwise ``add`` over N leaves, N - 1 tasks, depth log2(N).

The smallest possible tasks in a wide-then-narrow shape: it measures the
per-task overhead of a scheduler far more than any computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import fastdag as fd

from .base import Check, Params, rng, size_parser, tree_reduce


@fd.task
def add(x: Any, y: Any) -> Any:
    """One internal node of the tree."""
    return x + y


def leaves(n: int, seed: int = 0) -> list[int]:
    """``n`` pseudo-random small ints, so the sum is not a closed formula."""
    if n < 1:
        raise ValueError(f"a tree reduction needs at least one leaf, got {n}")
    return [int(v) for v in rng(seed, 0).integers(0, 1000, size=n)]


def build(values: int | Sequence[Any], seed: int = 0) -> fd.Node:
    """The root of a pairwise reduction of ``values`` (or of ``leaves(values, seed)``).

    Leaves are plain values captured in the first level of tasks, so N leaves
    make exactly N - 1 ``add`` tasks; an odd element at any level is carried
    up unchanged.
    """
    level: list[Any] = leaves(values, seed) if isinstance(values, int) else list(values)
    if len(level) < 2:
        raise ValueError(f"a tree reduction needs at least two leaves, got {len(level)}")
    return tree_reduce(level, add)


def reference(values: int | Sequence[Any], seed: int = 0) -> Any:
    """The same sum, serially, in the same pairwise order (exact for floats too)."""
    level: list[Any] = leaves(values, seed) if isinstance(values, int) else list(values)
    return tree_reduce(level, add.func)


def check(result: Any, expected: Any) -> Check:
    ok = bool(result == expected)
    return Check(ok, f"sum {result} {'==' if ok else '!='} serial {expected}")


def _fill(params: Params) -> Params:
    return params


parse_size = size_parser("leaves", ("leaves",), _fill)


def build_params(params: Params) -> fd.Node:
    if params.get("input"):
        raise ValueError("tree_reduction generates its leaves; it takes no --input")
    return build(params["leaves"], params["seed"])


def reference_params(params: Params) -> Any:
    return reference(params["leaves"], params["seed"])


__all__ = ["add", "leaves", "build", "reference", "check", "parse_size"]
