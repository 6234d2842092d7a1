"""SVD2: randomized SVD (Halko, Martinsson and Tropp) of a large matrix, top k.

Sketch the range of A with a random projection Y = A·Ω (k + oversampling
columns), optionally sharpen it with power iterations, orthonormalize it
with TSQR, project A onto that basis (B = Qᵀ·A, small), and take the SVD of
B. Every step that touches A works on one row block per task, so A is read
block by block and never gathered; only thin matrices are summed or stacked.

Power iterations re-orthonormalize after every product with A and with Aᵀ:
without that, the small singular directions drown in rounding error.

The generated test matrix has a decaying spectrum (Gaussian rows times
column weights 0.7^j), the case where a randomized SVD is accurate: with
two power iterations its top ten singular values match LAPACK's to about
1e-14, with none to about 1e-3.
"""

from __future__ import annotations

import math

import numpy as np

import fastdag as fd

from .base import SvdExpected as Expected, Check, Params, as_matrix, rng, size_parser, spans
from .svd1 import chain_product, small_svd, stack_rows, tsqr

DECAY = 0.7


@fd.task
def decaying_rows(seed: int, index: int, rows: int, cols: int) -> np.ndarray:
    """Row block ``index`` of the seeded test matrix: Gaussian, column j scaled by DECAY^j."""
    return rng(seed, index).standard_normal((rows, cols)) * DECAY ** np.arange(cols)


@fd.task
def gaussian(seed: int, rows: int, cols: int) -> np.ndarray:
    """The random test matrix Ω of the projection."""
    return rng(seed, 1 << 30).standard_normal((rows, cols))


@fd.task
def times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b


@fd.task
def transposed_times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """aᵀ·b without materializing aᵀ."""
    return a.T @ b


@fd.task
def total(parts: list[np.ndarray]) -> np.ndarray:
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


@fd.task
def orthonormalize(z: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns of a thin matrix (Q of its QR)."""
    return np.linalg.qr(z)[0]


def build(a: np.ndarray | int | tuple[int, int], k: int, block: int, oversample: int = 10,
          power_iters: int = 2, seed: int = 0) -> tuple[fd.Node, fd.Node, fd.Node]:
    """Nodes (U, S, V) of an approximate top-``k`` SVD of ``a``.

    ``a`` is an array, an int n (generate n×n) or (rows, cols); ``block`` is
    the rows per block (a short last block is fine). The sketch has
    ``k + oversample`` columns, capped at the smaller dimension.
    """
    blocks, (m, n) = _row_blocks(a, block, seed)
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > min(m, n):
        raise ValueError(f"k={k} is larger than the matrix allows: a {m}x{n} matrix has "
                         f"at most {min(m, n)} singular values")
    if oversample < 0 or power_iters < 0:
        raise ValueError("oversample and power_iters must be non-negative")
    width = min(k + oversample, m, n)

    omega = gaussian(seed, n, width)
    qs, _ = tsqr([times(b, omega) for b in blocks])
    for _ in range(power_iters):
        z = orthonormalize(total([transposed_times(b, q) for b, q in zip(blocks, qs)]))
        qs, _ = tsqr([times(b, z) for b in blocks])
    small = total([transposed_times(q, b) for q, b in zip(qs, blocks)])  # Qᵀ·A, width × n
    u_small, s, v = small_svd(small, k)
    u = stack_rows([chain_product(q, u_small) for q in qs])
    return u, s, v


def _row_blocks(a, block: int, seed: int) -> tuple[list, tuple[int, int]]:
    if isinstance(a, (int, np.integer)):
        a = (int(a), int(a))
    if isinstance(a, tuple):
        m, n = a
        if m <= 0 or n <= 0:
            raise ValueError(f"matrix dimensions must be positive, got {m}x{n}")
        return [decaying_rows(seed, i, r1 - r0, n)
                for i, (r0, r1) in enumerate(spans(m, block, "row block"))], (m, n)
    a = as_matrix(a)
    return [a[r0:r1] for r0, r1 in spans(a.shape[0], block, "row block")], a.shape


def generated_matrix(rows: int, cols: int, block: int, seed: int = 0) -> np.ndarray:
    """The matrix ``build((rows, cols), ...)`` generates, made serially."""
    return np.vstack([decaying_rows.func(seed, i, r1 - r0, cols)
                      for i, (r0, r1) in enumerate(spans(rows, block, "row block"))])


def reference(a: np.ndarray, k: int) -> Expected:
    """The exact top-k singular values from LAPACK's full SVD."""
    return Expected(a, np.linalg.svd(a, compute_uv=False)[:k])


def check(result: tuple[np.ndarray, np.ndarray, np.ndarray], expected: Expected,
          rtol: float = 1e-3) -> Check:
    """Top-k singular values within ``rtol`` of numpy's; U and V orthonormal; A·V ≈ U·S.

    The method is approximate by design, so the default tolerance accepts a
    sketch without power iterations on a decaying spectrum; tests that run
    power iterations pass a much tighter ``rtol``.
    """
    u, s, v = result
    a, k = expected.a, len(expected.s)
    if u.shape != (a.shape[0], k) or s.shape != (k,) or v.shape != (a.shape[1], k):
        return Check(False, f"shapes U {u.shape}, S {s.shape}, V {v.shape} do not fit "
                            f"A {a.shape} and k={k}")
    s_err = float(np.max(np.abs(s - expected.s) / np.maximum(expected.s, 1e-300)))
    orth = max(float(np.max(np.abs(u.T @ u - np.eye(k)))), float(np.max(np.abs(v.T @ v - np.eye(k)))))
    # A·v_i = s_i·u_i holds for every exact singular triple.
    pair = float(np.linalg.norm(a @ v - u * s)) / max(float(expected.s[0]), 1e-300)
    ok = s_err <= rtol and orth <= 1e-8 and pair <= math.sqrt(rtol)
    return Check(ok, f"top {k} of {a.shape[0]}x{a.shape[1]}: max relative S error {s_err:.2e}, "
                     f"orthonormality {orth:.2e}, |AV-US|/s1 {pair:.2e}")


def _fill(params: Params) -> Params:
    params.setdefault("n", 2000)
    params.setdefault("block", max(1, math.ceil(params["n"] / 4)))
    params.setdefault("k", 10)
    params.setdefault("oversample", 10)
    params.setdefault("power_iters", 2)
    return params


parse_size = size_parser("n", ("n", "block", "k", "oversample", "power_iters"), _fill,
                         zero_ok=("oversample", "power_iters"))


def build_params(params: Params) -> tuple[fd.Node, fd.Node, fd.Node]:
    source = params["input"] or params["n"]
    return build(source, params["k"], params["block"], params["oversample"],
                 params["power_iters"], params["seed"])


def reference_params(params: Params) -> Expected:
    if params.get("input"):
        a = as_matrix(params["input"])
    else:
        a = generated_matrix(params["n"], params["n"], params["block"], params["seed"])
    if params["k"] > min(a.shape):
        raise ValueError(f"k={params['k']} is larger than the {a.shape[0]}x{a.shape[1]} matrix allows")
    return reference(a, params["k"])


__all__ = ["decaying_rows", "gaussian", "times", "transposed_times", "total", "orthonormalize",
           "build", "generated_matrix", "Expected", "reference", "check", "parse_size"]
