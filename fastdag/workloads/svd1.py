"""SVD1: SVD of a tall-and-skinny matrix by TSQR.

A (m×n, m >> n) is split into row blocks. Each block is QR-factored on its
own; the small R factors are stacked and factored once more; the SVD of that
last n×n R gives S and V, and each block's piece of U is its Q times its
slice of the second Q times R's left singular vectors. Only n×n matrices
cross between the fan-in and the fan-out, so the work scales with m while
the communication does not.

The second QR returns its Q already cut into one slice per block: a task
whose list result feeds a separate downstream task per item.
"""

from __future__ import annotations

import math

import numpy as np

import fastdag as fd

from .base import SvdExpected as Expected, Check, Params, as_matrix, rng, size_parser, spans


@fd.task
def random_rows(seed: int, index: int, rows: int, cols: int) -> np.ndarray:
    """Row block ``index`` of the seeded test matrix (standard normal)."""
    return rng(seed, index).standard_normal((rows, cols))


@fd.task(nout=2)
def block_qr(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reduced QR of one row block: Q (r×k) and R (k×n), k = min(r, n)."""
    q, r = np.linalg.qr(block)
    return q, r


@fd.task(nout=2)
def stacked_qr(rs: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """QR of the stacked R factors; Q comes back cut into one slice per block."""
    q, r = np.linalg.qr(np.vstack(rs))
    cuts = np.cumsum([x.shape[0] for x in rs])[:-1]
    return [np.ascontiguousarray(piece) for piece in np.split(q, cuts)], r


@fd.task(nout=3)
def small_svd(r: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SVD of a small matrix: (U, S, V) with V = Vᵀ transposed, top ``k`` if given."""
    u, s, vt = np.linalg.svd(r, full_matrices=False)
    if k is not None:
        u, s, vt = u[:, :k], s[:k], vt[:k]
    return u, s, np.ascontiguousarray(vt.T)


@fd.task
def chain_product(q: np.ndarray, piece: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
    """``q @ piece`` (then ``@ u``): one block of the orthonormal factor."""
    out = q @ piece
    return out if u is None else out @ u


@fd.task
def stack_rows(blocks: list[np.ndarray]) -> np.ndarray:
    return np.vstack(blocks)


def tsqr(blocks: list) -> tuple[list[fd.Node], fd.Node]:
    """Q per row block and the final R, as Nodes (shared with SVD2).

    ``blocks`` are row blocks (arrays or Nodes) with the same column count.
    """
    firsts = [block_qr(b) for b in blocks]
    pieces, r = stacked_qr([f[1] for f in firsts])
    return [chain_product(f[0], pieces[i]) for i, f in enumerate(firsts)], r


def build(a: np.ndarray | tuple[int, int], block: int, seed: int = 0) -> tuple[fd.Node, fd.Node, fd.Node]:
    """Nodes (U, S, V) of the thin SVD of ``a``: an array, or (rows, cols) to generate one.

    ``block`` is the number of rows per block; a short last block is fine.
    """
    blocks, (m, n) = _row_blocks(a, block, seed)
    firsts = [block_qr(b) for b in blocks]
    pieces, r = stacked_qr([f[1] for f in firsts])
    u_r, s, v = small_svd(r)
    u = stack_rows([chain_product(f[0], pieces[i], u_r) for i, f in enumerate(firsts)])
    return u, s, v


def _row_blocks(a, block: int, seed: int) -> tuple[list, tuple[int, int]]:
    if isinstance(a, tuple):
        m, n = a
        _check_shape(m, n)
        return [random_rows(seed, i, r1 - r0, n)
                for i, (r0, r1) in enumerate(spans(m, block, "row block"))], (m, n)
    a = as_matrix(a)
    m, n = a.shape
    _check_shape(m, n)
    return [a[r0:r1] for r0, r1 in spans(m, block, "row block")], (m, n)


def _check_shape(m: int, n: int) -> None:
    if m <= 0 or n <= 0:
        raise ValueError(f"matrix dimensions must be positive, got {m}x{n}")
    if m < n:
        raise ValueError(f"TSQR needs a tall matrix (rows >= columns), got {m}x{n}")


def generated_matrix(rows: int, cols: int, block: int, seed: int = 0) -> np.ndarray:
    """The matrix ``build((rows, cols), block, seed)`` generates, made serially."""
    return np.vstack([random_rows.func(seed, i, r1 - r0, cols)
                      for i, (r0, r1) in enumerate(spans(rows, block, "row block"))])


def reference(a: np.ndarray) -> Expected:
    """LAPACK's SVD of the whole matrix in one call."""
    return Expected(a, np.linalg.svd(a, compute_uv=False))


def check(result: tuple[np.ndarray, np.ndarray, np.ndarray], expected: Expected,
          rtol: float = 1e-8) -> Check:
    """Singular values match numpy's, U·diag(S)·Vᵀ rebuilds A, U has orthonormal columns."""
    u, s, v = result
    a = expected.a
    k = len(s)
    if u.shape != (a.shape[0], k) or v.shape != (a.shape[1], k):
        return Check(False, f"shapes U {u.shape}, S {s.shape}, V {v.shape} do not fit A {a.shape}")
    scale = max(float(expected.s[0]), 1e-300)
    s_err = float(np.max(np.abs(s - expected.s[:k]))) / scale
    rec_err = float(np.linalg.norm(u * s @ v.T - a)) / max(float(np.linalg.norm(a)), 1e-300)
    orth_err = float(np.max(np.abs(u.T @ u - np.eye(k))))
    ok = s_err <= rtol and rec_err <= rtol * math.sqrt(k) * 10 and orth_err <= 1e-8
    return Check(ok, f"{a.shape[0]}x{a.shape[1]}: max S error {s_err:.2e} (relative), "
                     f"|USVᵀ-A|/|A| {rec_err:.2e}, |UᵀU-I| {orth_err:.2e}")


def _fill(params: Params) -> Params:
    params.setdefault("rows", 100_000)
    params.setdefault("cols", 100)
    params.setdefault("block", max(params["cols"], math.ceil(params["rows"] / 8)))
    return params


parse_size = size_parser("rows", ("rows", "cols", "block"), _fill)


def build_params(params: Params) -> tuple[fd.Node, fd.Node, fd.Node]:
    source = params["input"] or (params["rows"], params["cols"])
    return build(source, params["block"], params["seed"])


def reference_params(params: Params) -> Expected:
    if params.get("input"):
        return reference(as_matrix(params["input"]))
    return reference(generated_matrix(params["rows"], params["cols"], params["block"], params["seed"]))


__all__ = ["random_rows", "block_qr", "stacked_qr", "small_svd", "chain_product", "stack_rows",
           "tsqr", "build", "generated_matrix", "Expected", "reference", "check", "parse_size"]
