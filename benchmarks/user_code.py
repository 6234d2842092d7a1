"""User-style workloads, written once against a ``delayed`` function.

Each workload is a function ``graph(delayed, data)`` written the way a user
writes a ``dask.delayed`` program: plain functions, wrapped at each call
(``delayed(f)(x)``), no fastdag helpers. Passing ``fd.task`` builds a
fastdag graph, ``dask.delayed`` a Dask one, and ``direct`` (which returns the
function unchanged) runs the same code serially, so every engine runs the
very same user code.
"""

from __future__ import annotations

import hashlib
import json
import operator
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


ENGINES = ("fastdag-local", "serial", "dask-sync", "dask-threads", "dask-processes")


def runner(engine: str, workload: UserWorkload, data: Any) -> Callable[[], Any]:
    """A no-argument function that builds the workload's graph and computes it on ``engine``.

    ``fastdag-local`` is ``fd.compute(node)`` on the default executor, what a
    user's script does; ``serial`` runs the same code eagerly.
    """
    if engine == "serial":
        return lambda: workload.graph(direct, data)
    if engine == "fastdag-local":
        import fastdag as fd
        return lambda: fd.compute(workload.graph(fd.task, data))[0]
    import dask
    scheduler = engine.removeprefix("dask-")
    return lambda: dask.compute(workload.graph(dask.delayed, data), scheduler=scheduler)[0]


def direct(func: Callable) -> Callable:
    """The serial "delayed": the function itself, so the graph code runs eagerly."""
    return func


@dataclass(frozen=True)
class UserWorkload:
    """One workload: its input, its graph code and how to compare results."""

    name: str
    make_input: Callable[[], Any]
    graph: Callable[[Callable, Any], Any]
    same: Callable[[Any, Any], bool]


def _pairwise(delayed: Callable, func: Callable, items: list) -> Any:
    """Reduce ``items`` by a balanced tree of ``delayed(func)(a, b)`` calls."""
    while len(items) > 1:
        items = [delayed(func)(items[k], items[k + 1]) if k + 1 < len(items) else items[k]
                 for k in range(0, len(items), 2)]
    return items[0]


# -- numpy -------------------------------------------------------------------------
def normalize(block: np.ndarray) -> np.ndarray:
    return (block - block.mean(axis=0)) / block.std(axis=0)


def column_sums(block: np.ndarray) -> np.ndarray:
    return block.sum(axis=0)


def add(a: Any, b: Any) -> Any:
    return a + b


def numpy_input() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((4000, 500)) for _ in range(8)]


def numpy_graph(delayed: Callable, blocks: list[np.ndarray]) -> Any:
    sums = [delayed(column_sums)(delayed(normalize)(b)) for b in blocks]
    return _pairwise(delayed, add, sums)


# -- pandas ------------------------------------------------------------------------
def pandas_input() -> tuple[list, Any]:
    import pandas as pd
    rng = np.random.default_rng(1)
    frames = [pd.DataFrame({"key": rng.integers(0, 1000, 500_000),
                            "value": rng.standard_normal(500_000),
                            "weight": rng.random(500_000)}) for _ in range(16)]
    names = pd.DataFrame({"key": np.arange(1000), "group": np.arange(1000) % 7})
    return frames, names


def aggregate(frame: Any) -> Any:
    return frame.groupby("key").agg(total=("value", "sum"), weight=("weight", "sum"))


def combine(parts: list) -> Any:
    import pandas as pd
    return pd.concat(parts).groupby(level=0).sum()


def label(totals: Any, names: Any) -> Any:
    return totals.reset_index().merge(names, on="key").sort_values("key").reset_index(drop=True)


def pandas_graph(delayed: Callable, data: tuple) -> Any:
    frames, names = data
    parts = [delayed(aggregate)(f) for f in frames]
    return delayed(label)(delayed(combine)(parts), names)


def _frames_equal(a: Any, b: Any) -> bool:
    import pandas as pd
    pd.testing.assert_frame_equal(a, b, check_exact=False)
    return True


# -- Pillow ------------------------------------------------------------------------
TILE = (512, 1024)  # 8 x 4 = 32 tiles of a 4096 x 4096 image


def image_input() -> Any:
    from PIL import Image
    rng = np.random.default_rng(2)
    small = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((4096, 4096), Image.BILINEAR)


def gray(tile: Any) -> Any:
    return tile.convert("L")


def blur(tile: Any) -> Any:
    from PIL import ImageFilter
    return tile.filter(ImageFilter.GaussianBlur(2))


def edges(tile: Any) -> Any:
    from PIL import ImageFilter
    return tile.filter(ImageFilter.FIND_EDGES)


def paste(tiles: list, boxes: list, size: tuple[int, int]) -> Any:
    from PIL import Image
    out = Image.new("L", size)
    for tile, box in zip(tiles, boxes):
        out.paste(tile, box[:2])
    return out


def image_graph(delayed: Callable, image: Any) -> Any:
    w, h = TILE
    boxes = [(x, y, x + w, y + h) for y in range(0, image.height, h) for x in range(0, image.width, w)]
    tiles = [delayed(edges)(delayed(blur)(delayed(gray)(image.crop(box)))) for box in boxes]
    return delayed(paste)(tiles, boxes, image.size)


def _images_equal(a: Any, b: Any) -> bool:
    return a.size == b.size and a.tobytes() == b.tobytes()


# -- pure Python: JSON -------------------------------------------------------------
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def json_input() -> list[str]:
    rng = random.Random(3)
    texts = []
    for _ in range(32):
        records = [{"id": i, "tags": rng.sample(WORDS, 3), "text": " ".join(rng.choices(WORDS, k=12)),
                    "score": rng.random()} for i in range(4000)]
        texts.append(json.dumps(records))
    return texts


def count_words(text: str) -> Counter:
    counts: Counter = Counter()
    for record in json.loads(text):
        for word in record["text"].split():
            counts[word] += 1
        for tag in record["tags"]:
            counts["#" + tag] += 1
    return counts


def json_graph(delayed: Callable, texts: list[str]) -> Any:
    return _pairwise(delayed, add, [delayed(count_words)(t) for t in texts])


# -- bytes and str results ---------------------------------------------------------
def render(i: int) -> str:
    return "\n".join(f"{i},{k},{k * k % 9973}" for k in range(150_000))


def encode(text: str) -> bytes:
    return text.encode()


def digest(blobs: list[bytes]) -> str:
    h = hashlib.sha256()
    for blob in blobs:
        h.update(blob)
    return h.hexdigest()


def bytes_graph(delayed: Callable, n: int) -> Any:
    return delayed(digest)([delayed(encode)(delayed(render)(i)) for i in range(n)])


# -- tree of 4,096 tiny tasks, wrapped four ways -----------------------------------
LEAVES = 4096


def tree_graph(delayed: Callable, leaves: list[int], func: Callable = add) -> Any:
    return _pairwise(delayed, func, list(leaves))


def tree_lambda_graph(delayed: Callable, leaves: list[int]) -> Any:
    """A lambda written at each call, as ``delayed(lambda a, b: a + b)(x, y)``."""
    items: list = list(leaves)
    while len(items) > 1:
        items = [delayed(lambda a, b: a + b)(items[k], items[k + 1]) for k in range(0, len(items), 2)]
    return items[0]


def tree_once_graph(delayed: Callable, leaves: list[int]) -> Any:
    """The function wrapped once, the wrapper called at each node."""
    wrapped = delayed(add)
    return _pairwise(lambda _func: wrapped, add, list(leaves))


def tree_sum_graph(delayed: Callable, leaves: list[int]) -> Any:
    """The builtin ``sum`` over a list of two Nodes at each node."""
    items: list = list(leaves)
    while len(items) > 1:
        items = [delayed(sum)([items[k], items[k + 1]]) for k in range(0, len(items), 2)]
    return items[0]


WORKLOADS: dict[str, UserWorkload] = {w.name: w for w in [
    UserWorkload("numpy", numpy_input, numpy_graph, lambda a, b: np.allclose(a, b)),
    UserWorkload("pandas", pandas_input, pandas_graph, _frames_equal),
    UserWorkload("pillow", image_input, image_graph, _images_equal),
    UserWorkload("json", json_input, json_graph, operator.eq),
    UserWorkload("bytes_str", lambda: 16, bytes_graph, operator.eq),
    UserWorkload("tree_add", lambda: list(range(LEAVES)), tree_graph, operator.eq),
    UserWorkload("tree_builtin", lambda: list(range(LEAVES)),
                 lambda d, x: tree_graph(d, x, operator.add), operator.eq),
    UserWorkload("tree_once", lambda: list(range(LEAVES)), tree_once_graph, operator.eq),
    UserWorkload("tree_sum", lambda: list(range(LEAVES)), tree_sum_graph, operator.eq),
    UserWorkload("tree_lambda", lambda: list(range(LEAVES)), tree_lambda_graph, operator.eq),
]}
