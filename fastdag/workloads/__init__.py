"""The classic DAG workloads of the serverless literature, as graph builders.

Tests, benchmarks, the CLI (``fastdag run``) and the README all use these
definitions, so a number in one place means the same work in another.
``WORKLOADS`` maps each name to a :class:`Workload` record; the modules
themselves have the natural Python builders (``gemm.build(a, b, block=...)``).

Everything here is imported on first use, so ``import fastdag.workloads``
(and so ``fastdag --help``) does not pay for numpy and Pillow.

    from fastdag.workloads import get
    wl = get("gemm")
    params = wl.params("n=1024,block=256")
    c = wl.build(params).compute()
    print(wl.check(c, wl.reference(params)))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Workload

_MODULES = ("base", "tree_reduction", "gemm", "wordcount", "image_transform", "svd1", "svd2")
_FROM_BASE = ("Check", "Params", "Workload", "parse_count", "spans", "tree_reduce")


def _registry() -> dict[str, Workload]:
    from . import gemm, image_transform, svd1, svd2, tree_reduction, wordcount
    from .base import Workload

    workloads = [
        Workload.of(tree_reduction, "pairwise add over N leaves: N-1 tiny tasks",
                    "leaves=1024", "leaves=4096"),
        Workload.of(gemm, "blocked C = A·B: one task per block product and per block sum",
                    "n=1024,block=256", "n=4096,block=1024"),
        Workload.of(wordcount, "chunk text on word boundaries, tokenize, count, tree-merge",
                    "size=8MB,chunk=1MB", "size=64MB,chunk=4MB",
                    input_kind="a text file (UTF-8; chunk= sets the bytes per chunk)",
                    generated_keys=("size",)),
        Workload.of(image_transform,
                    "tiles through grayscale, blur, edge enhance, border; then rebuilt",
                    "width=2048,height=2048,tile=512", "width=8192,height=8192,tile=1024",
                    input_kind="an image file Pillow can open (tile= sets the tile size)",
                    generated_keys=("width", "height")),
        Workload.of(svd1, "SVD of a tall-and-skinny matrix (Gram or Householder TSQR by conditioning)",
                    "rows=100000,cols=100,block=12500", "rows=400000,cols=100,block=25000",
                    input_kind="a .npy file holding a tall 2-D array", generated_keys=("rows", "cols")),
        Workload.of(svd2, "randomized SVD (top k) of a square matrix",
                    "n=2000,block=500,k=10", "n=6000,block=1000,k=20",
                    input_kind="a .npy file holding a 2-D array", generated_keys=("n",)),
    ]
    return {w.name: w for w in workloads}


def get(name: str) -> Workload:
    """The workload called ``name`` (dashes accepted for underscores), or a ValueError listing them."""
    workloads = globals().get("WORKLOADS") or __getattr__("WORKLOADS")
    key = name.strip().lower().replace("-", "_")
    if key not in workloads:
        raise ValueError(f"unknown workload {name!r}: choose from {', '.join(workloads)}")
    return workloads[key]


def __getattr__(name: str) -> Any:
    if name == "WORKLOADS":
        value: Any = _registry()
    elif name in _FROM_BASE:
        value = getattr(importlib.import_module(".base", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["WORKLOADS", "Workload", "Check", "Params", "get", "parse_count", "spans",
           "tree_reduce", "tree_reduction", "gemm", "wordcount", "image_transform", "svd1", "svd2"]
