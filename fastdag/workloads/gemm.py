"""GEMM: blocked matrix multiply C = A·B.

Every block product A[i,l]·B[l,j] is its own task and every output block's
sum over l is another, so the graph has the wide fan-out then fan-in shape of
the serverless literature rather than one big BLAS call. Inputs are either
given arrays (their blocks go straight into the product tasks) or generated
block by block inside the graph from a seed.
"""

from __future__ import annotations

import math

import numpy as np

import fastdag as fd

from .base import Check, Params, assemble_grid, rng, size_parser, spans


@fd.task
def random_block(seed: int, which: int, i: int, j: int, rows: int, cols: int) -> np.ndarray:
    """Block (i, j) of generated matrix ``which`` (0 for A, 1 for B), uniform in [0, 1)."""
    return rng(seed, which, i, j).random((rows, cols))


@fd.task
def block_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b


@fd.task
def block_sum(parts: list[np.ndarray]) -> np.ndarray:
    """One output block: the sum of its block products (first one reused in place)."""
    total = parts[0].copy() if len(parts) > 1 else parts[0]
    for part in parts[1:]:
        total += part
    return total


@fd.task
def assemble(grid: list[list[np.ndarray]]) -> np.ndarray:
    return assemble_grid(grid)


def _grid(spec: np.ndarray | tuple[int, int], row_spans: list, col_spans: list,
          seed: int, which: int) -> list[list]:
    """Blocks of one input: views of a given array, or generator tasks."""
    if isinstance(spec, np.ndarray):
        return [[spec[r0:r1, c0:c1] for c0, c1 in col_spans] for r0, r1 in row_spans]
    return [[random_block(seed, which, i, j, r1 - r0, c1 - c0)
             for j, (c0, c1) in enumerate(col_spans)]
            for i, (r0, r1) in enumerate(row_spans)]


def build(a: np.ndarray | int, b: np.ndarray | int | None = None, block: int = 256,
          seed: int = 0) -> fd.Node:
    """A Node for C = A·B computed block by block.

    ``a`` and ``b`` are arrays, or ``a`` is an int n and both inputs are
    generated n×n matrices. Blocks are ``block``×``block``; sizes that
    ``block`` does not divide give smaller blocks at the edges.
    """
    shape_a, shape_b = _shapes(a, b)
    if shape_a[1] != shape_b[0]:
        raise ValueError(f"cannot multiply a {shape_a[0]}x{shape_a[1]} matrix by a "
                         f"{shape_b[0]}x{shape_b[1]} one: inner dimensions differ")
    rows, inner, cols = spans(shape_a[0], block), spans(shape_a[1], block), spans(shape_b[1], block)
    a_spec = a if isinstance(a, np.ndarray) else shape_a
    b_spec = b if isinstance(b, np.ndarray) else shape_b
    ga = _grid(a_spec, rows, inner, seed, 0)
    gb = _grid(b_spec, inner, cols, seed, 1)
    out = [[block_sum([block_product(ga[i][l], gb[l][j]) for l in range(len(inner))])
            for j in range(len(cols))] for i in range(len(rows))]
    return assemble(out)


def _shapes(a, b) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(a, (int, np.integer)):
        if b is not None:
            raise ValueError("give two arrays, or one int n to generate both inputs")
        if a <= 0:
            raise ValueError(f"matrix size must be positive, got {a}")
        return (int(a), int(a)), (int(a), int(a))
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        raise ValueError("gemm.build takes two numpy arrays, or one int n")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm inputs must be 2-D, got shapes {a.shape} and {b.shape}")
    return a.shape, b.shape


def generated_input(n: int, block: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The A and B that ``build(n, block=block, seed=seed)`` generates, made serially."""
    s = spans(n, block)
    mats = []
    for which in (0, 1):
        mats.append(np.block([[random_block.func(seed, which, i, j, r1 - r0, c1 - c0)
                               for j, (c0, c1) in enumerate(s)]
                              for i, (r0, r1) in enumerate(s)]))
    return mats[0], mats[1]


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One BLAS call on the whole matrices."""
    return a @ b


def check(result: np.ndarray, expected: np.ndarray) -> Check:
    if result.shape != expected.shape:
        return Check(False, f"shape {result.shape} != serial {expected.shape}")
    err = float(np.max(np.abs(result - expected))) if result.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    # Blocking changes the order of the additions, so allow rounding error:
    # a thousand ulps of the largest entry is far below any real mistake.
    eps = float(np.finfo(np.result_type(result.dtype, np.float32)).eps)
    ok = err <= 1000 * eps * max(scale, 1.0)
    return Check(ok, f"C {result.shape[0]}x{result.shape[1]}, max |C - A@B| = {err:.3g}")


def _fill(params: Params) -> Params:
    params.setdefault("n", 1024)
    params.setdefault("block", max(1, math.ceil(params["n"] / 4)))
    return params


parse_size = size_parser("n", ("n", "block"), _fill)


def build_params(params: Params) -> fd.Node:
    if params.get("input"):
        raise ValueError("gemm generates its matrices from --seed; it takes no --input")
    return build(params["n"], block=params["block"], seed=params["seed"])


def reference_params(params: Params) -> np.ndarray:
    return reference(*generated_input(params["n"], params["block"], params["seed"]))


__all__ = ["random_block", "block_product", "block_sum", "assemble", "build",
           "generated_input", "reference", "check", "parse_size"]
