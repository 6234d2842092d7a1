"""What the workloads share: the registry record, size strings, ragged blocks, seeds.

Each workload module exposes a natural builder (``build(...)``) that returns
Nodes, a serial ``reference(...)`` computed without fastdag, and a
``check(result, expected)``. The :class:`Workload` record wraps them behind
one calling convention (a ``params`` dict) so that the CLI, the tests and the
benchmarks drive every workload the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..store.arena import result_array

Params = dict[str, Any]


@dataclass(frozen=True)
class Check:
    """The verdict of comparing a result with its serial reference."""

    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'OK' if self.ok else 'FAILED'}: {self.detail}"


@dataclass(frozen=True)
class Workload:
    """One registered workload.

    ``build(params)`` returns the sink Node(s); ``reference(params)`` the
    serial result for the same input; ``check(result, expected)`` compares
    them. ``params`` is what ``parse_size`` returns plus ``seed`` and
    ``input`` (a user file, or None to generate the input from the seed).
    """

    name: str
    summary: str
    build: Callable[[Params], Any]
    reference: Callable[[Params], Any]
    check: Callable[[Any, Any], Check]
    default_size: str
    large_size: str
    parse_size: Callable[[str], Params]
    input_kind: str | None = None  # what --input accepts, None if nothing
    generated_keys: tuple[str, ...] = ()  # size keys that only shape generated input

    @classmethod
    def of(cls, module: Any, summary: str, default_size: str, large_size: str,
           **extra: Any) -> Workload:
        """The workload a module defines by convention: its name, ``build_params``,
        ``reference_params``, ``check`` and ``parse_size``."""
        return cls(name=module.__name__.rsplit(".", 1)[-1], summary=summary,
                   build=module.build_params, reference=module.reference_params,
                   check=module.check, parse_size=module.parse_size,
                   default_size=default_size, large_size=large_size, **extra)

    def params(self, size: str | None = None, seed: int = 0, input: str | None = None) -> Params:
        """The full parameter dict for a size string (the default size if None)."""
        params = self.parse_size(self.default_size if size is None else size)
        params["seed"] = seed
        params["input"] = input
        return params


_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_NUMBER = re.compile(r"^(\d+)\s*([kmg]?)(?:i?b)?$", re.IGNORECASE)


def parse_count(text: str, what: str = "size") -> int:
    """A positive integer, with an optional binary suffix: ``4096``, ``4k``, ``8MB``, ``1_000``."""
    match = _NUMBER.match(text.strip().replace("_", ""))
    if not match:
        raise ValueError(f"{what}: expected a positive integer such as 4096, 4k or 8MB, got {text!r}")
    value = int(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {text!r}")
    return value


def size_parser(primary: str, keys: tuple[str, ...], fill: Callable[[Params], Params],
                zero_ok: tuple[str, ...] = ()) -> Callable[[str], Params]:
    """A parser for size strings such as ``"2048"`` or ``"n=2048,block=512"``.

    A bare number sets ``primary``; ``key=value`` pairs (comma-separated) set
    any of ``keys``. ``fill`` completes the missing keys from the given ones,
    so ``n=4096`` alone picks a sensible block size instead of a fixed one.
    Keys in ``zero_ok`` are counts that may be 0 (``power_iters=0``).
    """
    def parse(text: str) -> Params:
        params: Params = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                key, value = primary, part
            key = key.strip()
            if key not in keys:
                raise ValueError(f"unknown size key {key!r}: expected one of {', '.join(keys)}")
            if key in params:
                raise ValueError(f"size key {key!r} given twice in {text!r}")
            params[key] = _nonneg(value, key) if key in zero_ok else parse_count(value, key)
        if not params:
            raise ValueError(f"empty size string: give e.g. {primary}=1024")
        return fill(params)
    parse.__doc__ = f"Parse a size such as '1024' ({primary}) or '{'=..,'.join(keys)}=..'."
    return parse


def _nonneg(text: str, what: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"{what} must be a non-negative integer, got {text!r}")
    return int(text)


def spans(total: int, block: int, what: str = "block") -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of ``block`` covering ``total``; the last may be short.

    Ragged blocks are accepted rather than rejected so that any size works
    with any block size; a block larger than the whole gives one block.
    """
    if not isinstance(block, (int, np.integer)) or block <= 0:
        raise ValueError(f"{what} size must be a positive integer, got {block!r}")
    if total <= 0:
        raise ValueError(f"cannot split an empty dimension (size {total}) into {what}s")
    return [(start, min(start + block, total)) for start in range(0, total, block)]


def assemble_grid(grid: list[list[np.ndarray]]) -> np.ndarray:
    """``np.block`` of a 2-D grid of arrays, written straight into ``fd.result_array``.

    The assembled output is what the caller receives: born in shared memory
    on ``LocalExecutor``, it reaches the caller without a copy.
    """
    heights = [row[0].shape[0] for row in grid]
    widths = [b.shape[1] for b in grid[0]]
    for row, h in zip(grid, heights):
        if len(row) != len(widths) or any(b.shape[:2] != (h, w) for b, w in zip(row, widths)):
            raise ValueError("blocks of a grid row must share a height, of a column a width")
    trailing = grid[0][0].shape[2:]
    out = result_array((sum(heights), sum(widths), *trailing),
                       np.result_type(*[b for row in grid for b in row]))
    y = 0
    for row, h in zip(grid, heights):
        x = 0
        for b, w in zip(row, widths):
            out[y:y + h, x:x + w] = b
            x += w
        y += h
    return out


def stack(blocks: list[np.ndarray]) -> np.ndarray:
    """``np.vstack`` of row blocks into ``fd.result_array`` (see ``assemble_grid``)."""
    out = result_array((sum(b.shape[0] for b in blocks), *blocks[0].shape[1:]),
                       np.result_type(*blocks))
    return np.concatenate(blocks, axis=0, out=out)


def rng(seed: int, *key: int) -> np.random.Generator:
    """A generator determined by ``seed`` and a block's coordinates.

    Every block of generated input gets its own stream, so a task can make
    its block alone and the serial reference can make the same numbers.
    """
    return np.random.default_rng([seed, *key])


def as_matrix(value: Any, what: str = "matrix") -> np.ndarray:
    """A 2-D floating-point array from an array or a ``.npy`` path, with a clear error."""
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        try:
            value = np.load(value, allow_pickle=False)
        except FileNotFoundError:
            raise ValueError(f"{what} file not found: {value}") from None
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {what} from {value}: {exc}") from None
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def tree_reduce(items: list[Any], combine: Callable[[Any, Any], Any]) -> Any:
    """Combine ``items`` pairwise, level by level, until one is left.

    With a task as ``combine`` this builds a balanced reduction tree
    (len(items) - 1 tasks, depth ceil(log2 n)); with a plain function it is
    the serial reference in the very same order. An odd item out at any
    level moves up unchanged.
    """
    if not items:
        raise ValueError("nothing to reduce")
    level = list(items)
    while len(level) > 1:
        nxt = [combine(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@dataclass(frozen=True)
class SvdExpected:
    """The serial reference of an SVD workload: the input and numpy's singular values."""

    a: np.ndarray
    s: np.ndarray

