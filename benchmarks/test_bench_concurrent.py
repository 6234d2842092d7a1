"""Three independent workflows on one LocalExecutor: together vs one after another.

Word count, image transform and GEMM are submitted with ``compute_async``
at once (the executor interleaves their tasks on its workers), or computed
one at a time, each waiting for the previous. With idle gaps in each
workflow (fan-ins, the tail of a reduction) running them together should
finish sooner. Every round checks the results, so a fast wrong answer
cannot win.

    pytest benchmarks/test_bench_concurrent.py --benchmark-only
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastdag as fd
from fastdag.workloads import gemm, image_transform, wordcount

WORKERS = min(4, os.cpu_count() or 1)
WORDS = dict(total_bytes=8 << 20, chunk_bytes=1 << 20, seed=1)
IMAGE = dict(width=2048, height=2048, tile=512, seed=2)
GEMM = dict(n=1024, block=256, seed=3)


@pytest.fixture(scope="module")
def executor():
    with fd.LocalExecutor(workers=WORKERS) as ex:
        yield ex


@pytest.fixture(scope="module")
def workflows() -> list[fd.Node]:
    """The three graphs, built once: a graph can be computed any number of times."""
    return [
        wordcount.build_generated(**WORDS),
        image_transform.build_generated(**IMAGE),
        gemm.build(GEMM["n"], block=GEMM["block"], seed=GEMM["seed"]),
    ]


@pytest.fixture(scope="module")
def expected() -> list:
    a, b = gemm.generated_input(GEMM["n"], GEMM["block"], GEMM["seed"])
    image = image_transform.generated_image(IMAGE["width"], IMAGE["height"], IMAGE["seed"])
    return [
        wordcount.reference_text(wordcount.generated_text(**WORDS)),
        image_transform.reference(image, IMAGE["tile"]),
        a @ b,
    ]


def together(ex: fd.LocalExecutor, nodes: list[fd.Node]) -> list:
    futures = [node.compute_async(executor=ex) for node in nodes]
    return [f.result() for f in futures]


def one_after_another(ex: fd.LocalExecutor, nodes: list[fd.Node]) -> list:
    return [node.compute(executor=ex) for node in nodes]


def assert_correct(results: list, expected: list) -> None:
    assert results[0] == expected[0]
    np.testing.assert_array_equal(results[1], expected[1])
    np.testing.assert_allclose(results[2], expected[2], rtol=1e-12)


@pytest.mark.benchmark(group="three-workflows")
@pytest.mark.parametrize("mode", [together, one_after_another], ids=lambda f: f.__name__)
def test_three_workflows(benchmark, executor, workflows, expected, mode):
    results = benchmark.pedantic(mode, args=(executor, workflows), rounds=3, iterations=1,
                                 warmup_rounds=1)
    assert_correct(results, expected)
