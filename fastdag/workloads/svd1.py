"""SVD1: SVD of a tall-and-skinny matrix, one row block per task.

A (m×n, m >> n) is split into row blocks. Everything that touches A runs
per block at matrix-multiply (BLAS-3) speed; only n×n matrices cross
between the fan-ins and the fan-outs, so the work scales with m while the
communication does not.

1. Gram: each block computes Aᵢᵀ·Aᵢ (numpy hands ``a.T @ a`` to SYRK); the
   fan-in sums them into G = AᵀA and picks a method from G's condition
   number (see :func:`first_pass`).
2. Well-conditioned A (κ(A) ≤ 10), the common case: the eigendecomposition
   G = V·Λ·Vᵀ is the SVD already, S = √Λ, and each block of U is
   Aᵢ·V·Λ^-½, one GEMM per block. The loss of orthogonality is about
   κ(A)²·u, at most a few times Householder's here.
3. Up to κ(A·D⁻¹) ≤ 1e6, D the column norms: two Gram passes, SVQB
   (Stathopoulos and Wu, SIAM J. Sci. Comput. 2002) on the column-scaled
   Gram then a Cholesky pass, as in CholeskyQR2 (Yamamoto et al. 2015): the
   first basis Q1 = A·W1 is within far less than 1 of orthonormal, so the
   second pass makes it orthonormal to rounding. Scaling makes badly scaled
   columns cost nothing in accuracy.
4. Anything worse (κ beyond 1e6, zero columns, rank deficiency, NaN): the
   Householder TSQR this workload used before, which never loses
   orthogonality: per-block QR, QR of the stacked R factors, SVD of the
   final R.

The graph has the same shape whichever method the data needs (a graph is
built before its data exist): the second per-block pass does nothing for a
well-conditioned A, and the method is chosen inside the fan-in tasks. The
last per-block task is always one GEMM, U_i = basis_i · W_i, with basis_i
the block itself, its Q1 or its Householder Q. Flops, in units of m·n²:
1 + 2 for the one-pass case, 1 + 2 + 1 + 2 for two passes, against about
6 to 8 at panel-limited (below GEMM) speed for Householder TSQR.

:func:`tsqr` (plain Householder TSQR, used by SVD2 to orthonormalize thin
sketches) and its tasks are kept for that workload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import fastdag as fd

from .base import SvdExpected as Expected, Check, Params, as_matrix, rng, size_parser, spans, stack

# The largest κ(A)² = κ(G) for which one Gram pass is accurate to rounding:
# U's loss of orthogonality is about κ(G)·u (measured: 6e-15 at κ(A) = 10,
# against 2e-15 for Householder, and 3e-13 at κ(A) = 100).
ONE_PASS_MAX_COND = 1e2
# The largest κ(G) of the column-scaled Gram for which two passes are. The
# first pass leaves ‖Q1ᵀQ1 - I‖ ≈ κ·u (1e-5 at 1e12, measured); two passes
# still work up to about 1e16 (‖Q1ᵀQ1 - I‖ = 0.6 there), so this leaves a
# margin of 1e4 for larger and less friendly matrices than those tried.
TWO_PASS_MAX_COND = 1e12
# After the first of two passes, Q1ᵀQ1 must be this close to I (max entry)
# for the Cholesky pass to finish the job; the thresholds above make a
# larger value impossible in practice, and it is checked, not assumed.
MAX_FIRST_PASS_DRIFT = 0.5


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
    return stack(blocks)


def tsqr(blocks: list) -> tuple[list[fd.Node], fd.Node]:
    """Q per row block and the final R, as Nodes (Householder TSQR, used by SVD2).

    ``blocks`` are row blocks (arrays or Nodes) with the same column count.
    SVD2's sketches are thin (k + oversampling columns), so the Gram
    methods of :func:`build` would gain it little there.
    """
    firsts = [block_qr(b) for b in blocks]
    pieces, r = stacked_qr([f[1] for f in firsts])
    return [chain_product(f[0], pieces[i]) for i, f in enumerate(firsts)], r


# -- the Gram-based SVD of build() ------------------------------------------------------
ONE_PASS, TWO_PASSES, HOUSEHOLDER = "one Gram pass", "two Gram passes", "Householder TSQR"


@dataclass(frozen=True)
class FirstPass:
    """What the first fan-in decided, for the per-block tasks after it.

    ``method`` is one of ONE_PASS, TWO_PASSES, HOUSEHOLDER. ONE_PASS: the
    SVD is done, U_i = A_i·``w``, with ``s`` and ``v``. TWO_PASSES: the
    first basis is Q1_i = A_i·``w`` and A = Q1·``b``. HOUSEHOLDER: no
    matrices; the per-block tasks factor their blocks themselves.
    """

    method: str
    w: np.ndarray | None = None
    b: np.ndarray | None = None
    s: np.ndarray | None = None
    v: np.ndarray | None = None


@fd.task
def gram(block: np.ndarray) -> np.ndarray:
    """Aᵢᵀ·Aᵢ (n×n): one BLAS SYRK, half the flops of a GEMM of the same size."""
    return block.T @ block


def _summed(matrices: list[np.ndarray]) -> np.ndarray:
    """The sum of the blocks' n×n matrices, in a fresh array."""
    out = matrices[0].copy()
    for x in matrices[1:]:
        out += x
    return out


def _descending_eigh(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) and eigenvectors of a symmetric matrix."""
    lam, vec = np.linalg.eigh(g)
    return lam[::-1], vec[:, ::-1]


def _conditioned(lam: np.ndarray, max_cond: float) -> bool:
    """True if eigenvalues ``lam`` (largest first) are positive with λ1/λn ≤ ``max_cond``."""
    return bool(lam[-1] > 0 and lam[0] <= max_cond * lam[-1])


@fd.task
def first_pass(grams: list[np.ndarray]) -> FirstPass:
    """Sum the blocks' Gram matrices and choose the method from the condition number.

    The eigendecomposition of G itself decides the one-pass case and is its
    answer. Otherwise the Gram of the column-scaled matrix A·D⁻¹ (unit
    diagonal) is decomposed: its condition number is the one the two-pass
    method's accuracy depends on, often far below κ(A) for data whose
    columns have different units.
    """
    g = _summed(grams)
    if not np.all(np.isfinite(g)):
        return FirstPass(HOUSEHOLDER)
    lam, vec = _descending_eigh(g)
    if _conditioned(lam, ONE_PASS_MAX_COND):
        s = np.sqrt(lam)
        return FirstPass(ONE_PASS, w=vec / s, s=s, v=np.ascontiguousarray(vec))
    d = np.sqrt(np.diag(g))
    if not np.all(d > 0):  # a zero column: A is rank-deficient
        return FirstPass(HOUSEHOLDER)
    lam, vec = _descending_eigh(g / np.outer(d, d))
    if not _conditioned(lam, TWO_PASS_MAX_COND):
        return FirstPass(HOUSEHOLDER)
    # A·D⁻¹ = Q1·Λ^½·Vᵀ, so Q1 = A·(D⁻¹·V·Λ^-½) and A = Q1·(Λ^½·Vᵀ·D).
    root = np.sqrt(lam)
    return FirstPass(TWO_PASSES, w=vec / d[:, None] / root, b=root[:, None] * vec.T * d)


@fd.task(nout=2)
def second_pass(block: np.ndarray, first: FirstPass) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A block's basis and the small matrix the second fan-in needs, by method.

    TWO_PASSES: Q1_i = A_i·W1 and its Gram Q1_iᵀ·Q1_i. HOUSEHOLDER: the
    block's Q and R. ONE_PASS: nothing (None, None); the block is its own
    basis.
    """
    if first.method == TWO_PASSES:
        q = block @ first.w
        return q, q.T @ q
    if first.method == HOUSEHOLDER:
        return block_qr.func(block)
    return None, None


@fd.task(nout=3)
def finish(smalls: list[np.ndarray | None],
           first: FirstPass) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per-block right factors W_i (U_i = basis_i·W_i), S and V.

    TWO_PASSES: G2 = Q1ᵀQ1 = R2ᵀR2 (Cholesky), so Q = Q1·R2⁻¹ is orthonormal
    to rounding and A = Q·(R2·B1); the SVD of that n×n product gives S, V
    and U = Q1·(R2⁻¹·U_r). HOUSEHOLDER: the stacked QR of the blocks' R
    factors, then W_i = its slice i · U_r. Every block of the one-matrix
    methods shares one W (pickled once).
    """
    if first.method == ONE_PASS:
        return [first.w] * len(smalls), first.s, first.v
    if first.method == HOUSEHOLDER:
        pieces, r = stacked_qr.func(smalls)
        u_r, s, v = small_svd.func(r)
        return [piece @ u_r for piece in pieces], s, v
    g2 = _summed(smalls)
    drift = float(np.max(np.abs(g2 - np.eye(len(g2)))))
    if not drift <= MAX_FIRST_PASS_DRIFT:  # also catches NaN
        raise np.linalg.LinAlgError(
            f"SVD1: the first Gram pass left |Q1ᵀQ1 - I| = {drift:.2e} (limit "
            f"{MAX_FIRST_PASS_DRIFT}); the matrix is more ill-conditioned than its Gram showed")
    r2 = np.linalg.cholesky(g2).T
    u_r, s, v = small_svd.func(r2 @ first.b)
    return [np.linalg.solve(r2, u_r)] * len(smalls), s, v


@fd.task
def u_block(block: np.ndarray, basis: np.ndarray | None, transforms: list[np.ndarray],
            index: int) -> np.ndarray:
    """Block ``index`` of U: its basis (the block itself if None) times its W."""
    left, w = (block if basis is None else basis), transforms[index]
    out = fd.result_array((left.shape[0], w.shape[1]), np.result_type(left, w))
    return np.matmul(left, w, out=out)


def build(a: np.ndarray | tuple[int, int], block: int, seed: int = 0) -> tuple[fd.Node, fd.Node, fd.Node]:
    """Nodes (U, S, V) of the thin SVD of ``a``: an array, or (rows, cols) to generate one.

    ``block`` is the number of rows per block; a short last block is fine.
    Each block is one object shared by its three tasks, so a given array is
    shipped once, not three times.
    """
    blocks, (m, n) = _row_blocks(a, block, seed)
    first = first_pass([gram(b) for b in blocks])
    seconds = [second_pass(b, first) for b in blocks]
    transforms, s, v = finish([x[1] for x in seconds], first)
    u = stack_rows([u_block(b, x[0], transforms, i) for i, (b, x) in enumerate(zip(blocks, seconds))])
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
        raise ValueError(f"SVD1 needs a tall matrix (rows >= columns), got {m}x{n}")


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
           "tsqr", "FirstPass", "ONE_PASS", "TWO_PASSES", "HOUSEHOLDER", "gram", "first_pass",
           "second_pass", "finish", "u_block", "build", "generated_matrix", "Expected", "reference",
           "check", "parse_size"]
