"""The six workloads: graph sizes, results against serial references, bad input.

Every workload runs on the three local executors through the ``executor``
fixture (one LocalExecutor serves the whole session). Sizes are small so
the file stays fast on two cores; the expected node counts are worked out
here from the graph's shape, not read back from the builders.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

import fastdag as fd
from fastdag.workloads import WORKLOADS, gemm, get, image_transform, svd1, svd2, tree_reduction, wordcount


def dag_size(*nodes: fd.Node) -> int:
    return len(fd.DAG(list(nodes)))


def independent_wordcount(text: str) -> Counter:
    """Word counts written out again without the workload's helpers."""
    return Counter(word.lower() for word in re.findall(r"\b\w+\b", text))


# -- tree reduction ---------------------------------------------------------------
@pytest.mark.parametrize("n", [1024, 4096])
def test_tree_reduction(executor, n):
    values = tree_reduction.leaves(n, seed=7)
    root = tree_reduction.build(values)
    dag = root.dag
    assert len(dag) == n - 1
    assert dag.depth == math.ceil(math.log2(n))
    assert root.compute(executor=executor) == sum(values)


def test_tree_reduction_odd_count_and_arrays(executor):
    values = [np.full(3, i, dtype=np.int64) for i in range(37)]
    root = tree_reduction.build(values)
    assert dag_size(root) == 36
    np.testing.assert_array_equal(root.compute(executor=executor), np.full(3, sum(range(37))))


def test_tree_reduction_needs_two_leaves():
    with pytest.raises(ValueError, match="at least two leaves"):
        tree_reduction.build([5])


# -- GEMM ------------------------------------------------------------------------------
@pytest.mark.parametrize("n, block", [(96, 32), (100, 32)])  # 32 does not divide 100: ragged edge
def test_gemm_generated(executor, n, block):
    c = gemm.build(n, block=block, seed=3)
    nb = math.ceil(n / block)
    # generated blocks of A and B, block products, block sums, assembly
    assert dag_size(c) == 2 * nb * nb + nb ** 3 + nb * nb + 1
    a, b = gemm.generated_input(n, block, seed=3)
    assert a.shape == b.shape == (n, n) and not np.array_equal(a, b)
    result = c.compute(executor=executor)
    np.testing.assert_allclose(result, a @ b, rtol=1e-12)
    assert gemm.check(result, a @ b).ok


def test_gemm_given_rectangular_arrays(executor):
    rng = np.random.default_rng(0)
    a, b = rng.random((50, 70)), rng.random((70, 30))
    c = gemm.build(a, b, block=32)
    # no generator tasks: 2x3 products for each of 2x1 output blocks, their sums, assembly
    assert dag_size(c) == 2 * 3 * 1 + 2 * 1 + 1
    np.testing.assert_allclose(c.compute(executor=executor), a @ b, rtol=1e-12)


def test_gemm_check_detects_a_wrong_product():
    a, b = gemm.generated_input(64, 32, seed=1)
    wrong = a @ b
    wrong[5, 7] += 1e-3
    assert not gemm.check(wrong, a @ b).ok


def test_gemm_bad_input():
    with pytest.raises(ValueError, match="block size must be a positive integer"):
        gemm.build(64, block=0)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        gemm.build(np.ones((4, 5)), np.ones((4, 5)), block=2)


# -- word count ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """About 64 KB of seeded Zipf text with accents, written to a file."""
    text = wordcount.zipf_text(64 * 1024, seed=11)
    path = tmp_path_factory.mktemp("wordcount") / "zipf.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_zipf_text_is_deterministic_and_skewed():
    a, b = wordcount.zipf_text(20_000, seed=4), wordcount.zipf_text(20_000, seed=4)
    assert a == b and a != wordcount.zipf_text(20_000, seed=5)
    counts = independent_wordcount(a).most_common()
    assert counts[0][1] > 10 * counts[50][1]  # a heavy head, as Zipf gives
    assert any(not w.isascii() for w in independent_wordcount(a))


def test_file_spans_cut_between_words(text_file):
    path, text = text_file
    data = path.read_bytes()
    spans = wordcount.file_spans(path, 4096)
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(spans, spans[1:]))
    for _, stop in spans[:-1]:
        assert re.fullmatch(rb"[^\w\x80-\xff]", data[stop:stop + 1])
    assert sum(independent_wordcount(data[a:b].decode()).total() for a, b in spans) \
        == independent_wordcount(text).total()


def test_wordcount_file(executor, text_file):
    path, text = text_file
    root = wordcount.build_file(path, chunk_bytes=4096)
    chunks = len(wordcount.file_spans(path, 4096))
    assert chunks >= 15
    assert dag_size(root) == 3 * chunks + (chunks - 1)  # read, tokenize, count; merges
    assert root.compute(executor=executor) == independent_wordcount(text)


def test_wordcount_generated_in_graph(executor):
    root = wordcount.build_generated(40_000, chunk_bytes=10_000, seed=2)
    assert dag_size(root) == 4 * 3 + 3
    expected = independent_wordcount(wordcount.generated_text(40_000, 10_000, seed=2))
    assert root.compute(executor=executor) == expected


@pytest.mark.parametrize("chunk", [1, 7, 100, 10_000])
def test_wordcount_text_does_not_depend_on_chunking(chunk):
    text = "Ὀδυσσεύς ΟΔΟΣ.Α the_end café CAFÉ naïve—naïve x1 x1 ... \n\tTHE end. ΣΊΣΥΦΟΣ"
    root = wordcount.build_text(text, chunk_chars=chunk)
    assert root.compute(executor=fd.SyncExecutor()) == wordcount.reference_text(text)
    assert wordcount.reference_text(text)["café"] == 2


def test_wordcount_missing_file():
    with pytest.raises(ValueError, match="text file not found: /no/such/file.txt"):
        wordcount.build_file("/no/such/file.txt")


def test_stdlib_corpus(tmp_path):
    path = wordcount.stdlib_corpus(tmp_path / "corpus.txt", 0.25)
    data = path.read_bytes()
    assert 0.2 * 2**20 < len(data) <= 0.25 * 2**20
    assert b"def " in data and b"import " in data
    assert wordcount.stdlib_corpus(tmp_path / "again.txt", 0.25).read_bytes() == data


# -- image transform -------------------------------------------------------------
def pillow_tile(tile: np.ndarray) -> np.ndarray:
    """The four steps written directly in Pillow, for one tile."""
    img = ImageOps.grayscale(Image.fromarray(tile))
    img = img.filter(ImageFilter.GaussianBlur(image_transform.BLUR_RADIUS))
    img = img.filter(ImageFilter.EDGE_ENHANCE_MORE)
    return np.asarray(ImageOps.expand(img, border=image_transform.BORDER, fill=255))


def test_image_transform_generated(executor):
    width, height, tile = 200, 150, 64  # 4 x 3 tiles, ragged on both edges
    root = image_transform.build_generated(width, height, tile, seed=5)
    assert dag_size(root) == 12 * (1 + 4) + 1  # generate + four steps per tile, one rebuild
    result = root.compute(executor=executor)
    image = image_transform.generated_image(width, height, seed=5)
    assert result.shape == image_transform.output_shape(width, height, tile)
    np.testing.assert_array_equal(result, image_transform.reference(image, tile))
    # The bottom-right (ragged) tile, redone by hand with Pillow.
    expected_tile = pillow_tile(image[128:150, 192:200])
    np.testing.assert_array_equal(result[-expected_tile.shape[0]:, -expected_tile.shape[1]:], expected_tile)


def test_image_transform_from_file(executor, tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(image_transform.generated_image(130, 90, seed=1)).save(path)
    root = image_transform.build(path, tile=64)
    assert dag_size(root) == 3 * 2 * 4 + 1  # no generator tasks for a given image
    np.testing.assert_array_equal(root.compute(executor=executor),
                                  image_transform.reference(path, tile=64))


def test_image_transform_bad_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="Pillow cannot open"):
        image_transform.build(bad)
    with pytest.raises(ValueError, match="image file not found"):
        image_transform.build(tmp_path / "missing.png")


# -- SVD1 (Gram passes, Householder TSQR when ill-conditioned) -------------------------
def assert_thin_svd(u, s, v, a, rtol=1e-10):
    np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), rtol=rtol, atol=rtol * s[0])
    np.testing.assert_allclose(u @ np.diag(s) @ v.T, a, atol=rtol * np.abs(a).max() * 10)
    np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-10)
    np.testing.assert_allclose(v.T @ v, np.eye(v.shape[1]), atol=1e-10)


# per block: Gram, second pass and its two items, U block; then the first fan-in,
# the second and its three items, stacking
SVD1_PER_BLOCK, SVD1_FIXED = 5, 6


def test_svd1_generated(executor):
    u, s, v = svd1.build((600, 12), block=100, seed=8)
    blocks = 6
    assert dag_size(u, s, v) == (1 + SVD1_PER_BLOCK) * blocks + SVD1_FIXED  # + generate per block
    result = fd.compute(u, s, v, executor=executor)
    a = svd1.generated_matrix(600, 12, 100, seed=8)
    assert_thin_svd(*result, a)
    assert svd1.check(result, svd1.reference(a)).ok


def test_svd1_given_ragged_blocks(executor):
    a = np.random.default_rng(1).standard_normal((530, 12))  # blocks of 100, the last of 30
    u, s, v = svd1.build(a, block=100)
    assert dag_size(u, s, v) == SVD1_PER_BLOCK * 6 + SVD1_FIXED
    assert_thin_svd(*fd.compute(u, s, v, executor=executor), a)


def with_spectrum(m: int, n: int, smallest: float, seed: int = 5) -> np.ndarray:
    """An m×n matrix whose singular values are log-spaced from 1 down to ``smallest``."""
    rng = np.random.default_rng(seed)
    left, _ = np.linalg.qr(rng.standard_normal((m, n)))
    right, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return left * np.logspace(0, math.log10(smallest), n) @ right.T


def svd1_cases() -> dict[str, tuple[np.ndarray, str]]:
    """Tall matrices for each of SVD1's methods, with the method each must get."""
    rng = np.random.default_rng(3)
    gauss = rng.standard_normal((900, 20))
    rank_deficient = gauss.copy()
    rank_deficient[:, 7] = rank_deficient[:, 3] - 2 * rank_deficient[:, 11]
    zero_column = gauss.copy()
    zero_column[:, 5] = 0
    return {
        "gaussian": (gauss, svd1.ONE_PASS),
        "cond 1e4": (with_spectrum(900, 20, 1e-4), svd1.TWO_PASSES),
        "cond 1e5, columns scaled by up to 1e8": (
            with_spectrum(900, 20, 1e-5) * np.logspace(0, 8, 20), svd1.TWO_PASSES),
        "cond 1e12": (with_spectrum(900, 20, 1e-12), svd1.HOUSEHOLDER),
        "cond 1e16": (with_spectrum(900, 20, 1e-16), svd1.HOUSEHOLDER),
        "rank-deficient": (rank_deficient, svd1.HOUSEHOLDER),
        "zero column": (zero_column, svd1.HOUSEHOLDER),
    }


@pytest.mark.parametrize("case", list(svd1_cases()))
def test_svd1_exact_whatever_the_conditioning(executor, case):
    """Each method is accurate to rounding where it is chosen, Householder included.

    The same tolerances as the well-conditioned tests (1e-10 relative to the
    largest singular value, orthonormality to 1e-10) and svd1.check's default.
    """
    a, method = svd1_cases()[case]
    assert svd1.first_pass.func([a.T @ a]).method == method
    u, s, v = svd1.build(a, block=200)  # blocks of 200 rows, the last of 100
    assert dag_size(u, s, v) == SVD1_PER_BLOCK * 5 + SVD1_FIXED  # whatever the method
    result = fd.compute(u, s, v, executor=executor)
    assert_thin_svd(*result, a)
    assert svd1.check(result, svd1.reference(a)).ok


def test_svd1_refuses_a_first_pass_that_went_wrong():
    """The two-pass method checks its first basis instead of trusting the threshold."""
    first = svd1.FirstPass(svd1.TWO_PASSES, w=np.eye(3), b=np.eye(3))
    with pytest.raises(np.linalg.LinAlgError, match="more ill-conditioned"):
        svd1.finish.func([np.eye(3), np.eye(3)], first)  # Q1ᵀQ1 = 2·I: far from I


def test_svd1_bad_input():
    with pytest.raises(ValueError, match="tall matrix"):
        svd1.build(np.ones((5, 10)), block=2)
    with pytest.raises(ValueError, match="must be 2-D"):
        svd1.build(np.ones(10), block=2)


# -- SVD2 (randomized) -------------------------------------------------------------
def test_svd2_generated(executor):
    n, block, k, q = 300, 80, 5, 1
    u, s, v = svd2.build(n, k, block, power_iters=q, seed=4)
    b = 4  # row blocks of 80, 80, 80, 60
    # generate per block; Ω; A·Ω per block; TSQR (5 per block + 2); per power iteration
    # Aᵀ·Q per block, sum, QR, A·Z per block, TSQR; Qᵀ·A per block and sum; small SVD
    # and its three items; U per block and the stack
    tsqr = 5 * b + 2
    assert dag_size(u, s, v) == b + 1 + b + tsqr + q * (2 * b + 2 + tsqr) + b + 1 + 4 + b + 1
    result = fd.compute(u, s, v, executor=executor)
    a = svd2.generated_matrix(n, n, block, seed=4)
    exact = np.linalg.svd(a, compute_uv=False)[:k]
    np.testing.assert_allclose(result[1], exact, rtol=1e-8)
    assert svd2.check(result, svd2.reference(a, k), rtol=1e-8).ok


def test_svd2_given_matrix_with_known_spectrum(executor):
    rng = np.random.default_rng(2)
    left, _ = np.linalg.qr(rng.standard_normal((200, 60)))
    right, _ = np.linalg.qr(rng.standard_normal((150, 60)))
    spectrum = 10.0 * 0.6 ** np.arange(60)
    a = left * spectrum @ right.T  # 200 x 150 with singular values `spectrum`
    u, s, v = svd2.build(a, k=8, block=64, power_iters=2)
    u, s, v = fd.compute(u, s, v, executor=executor)
    np.testing.assert_allclose(s, spectrum[:8], rtol=1e-9)
    np.testing.assert_allclose(a @ v, u * s, atol=1e-8)


def test_svd2_check_fails_for_a_poor_sketch():
    a = np.random.default_rng(3).standard_normal((120, 120))  # flat spectrum: hard for a sketch
    u, s, v = svd2.build(a, k=10, block=40, oversample=0, power_iters=0)
    result = fd.compute(u, s, v, executor=fd.SyncExecutor())
    assert not svd2.check(result, svd2.reference(a, 10)).ok


def test_svd2_k_too_large():
    with pytest.raises(ValueError, match=r"k=51 is larger than the matrix allows: a 50x50"):
        svd2.build(50, k=51, block=10)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        svd2.build(50, k=0, block=10)


# -- shapes the issue asks for ---------------------------------------------------------
@fd.task
def split_into(values: list[int], parts: int) -> list[list[int]]:
    return [values[i::parts] for i in range(parts)]


@fd.task
def sum_of_squares(values: list[int]) -> int:
    return sum(v * v for v in values)


@fd.task
def total(values: list[int]) -> int:
    return sum(values)


def test_list_items_feed_separate_tasks(executor):
    parts = split_into(list(range(100)), 4)
    branches = [sum_of_squares(parts[i]) for i in range(4)]
    root = total(branches)
    assert dag_size(root) == 1 + 4 + 4 + 1  # split, one item node per part, branches, total
    assert all(parts in b.deps[0].deps for b in branches)
    assert root.compute(executor=executor) == sum(v * v for v in range(100))


def test_three_workflows_submitted_together(executor, text_file):
    path, text = text_file
    count = wordcount.build_file(path, chunk_bytes=8192)
    image = image_transform.build_generated(160, 120, 64, seed=9)
    product = gemm.build(96, block=32, seed=6)
    futures = [node.compute_async(executor=executor) for node in (count, image, product)]
    got = [f.result(timeout=120) for f in futures]
    assert got[0] == independent_wordcount(text)
    np.testing.assert_array_equal(
        got[1], image_transform.reference(image_transform.generated_image(160, 120, seed=9), 64))
    a, b = gemm.generated_input(96, 32, seed=6)
    np.testing.assert_allclose(got[2], a @ b, rtol=1e-12)


# -- the registry ------------------------------------------------------------------------
def test_registry_names_and_sizes():
    assert set(WORKLOADS) == {"tree_reduction", "gemm", "wordcount", "image_transform", "svd1", "svd2"}
    for wl in WORKLOADS.values():
        for size in (wl.default_size, wl.large_size):
            params = wl.parse_size(size)
            assert params and all(isinstance(v, int) and v >= 0 for v in params.values())


def test_size_strings():
    assert get("gemm").parse_size("2048") == {"n": 2048, "block": 512}
    assert get("gemm").parse_size("n=2k,block=100") == {"n": 2048, "block": 100}
    assert get("wordcount").parse_size("8MB")["chunk"] == 1 << 20
    assert get("svd2").parse_size("n=100,power_iters=0")["power_iters"] == 0
    with pytest.raises(ValueError, match="unknown size key 'm'"):
        get("gemm").parse_size("m=5")
    with pytest.raises(ValueError, match="positive integer"):
        get("gemm").parse_size("n=-3")
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        get("nope")


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_registry_small_sizes_pass_their_check(name):
    small = {"tree_reduction": "100", "gemm": "n=64,block=16", "wordcount": "size=20k,chunk=4k",
             "image_transform": "width=96,height=64,tile=32", "svd1": "rows=400,cols=8,block=64",
             "svd2": "n=120,block=40,k=4"}
    wl = get(name)
    params = wl.params(small[name], seed=1)
    outputs = wl.build(params)
    nodes = outputs if isinstance(outputs, tuple) else (outputs,)
    values = fd.compute(*nodes, executor=fd.SyncExecutor())
    value = values if isinstance(outputs, tuple) else values[0]
    assert wl.check(value, wl.reference(params)).ok
