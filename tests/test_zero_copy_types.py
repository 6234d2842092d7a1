"""Large bytes, bytearray, str, memoryview and PIL images travel out of band (through /dev/shm)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fastdag as fd
from fastdag.core.serialize import OUT_OF_BAND_MIN, dumps
from fastdag.store.shm import SharedMemoryStore

BIG = 4 * OUT_OF_BAND_MIN


def _image(mode: str) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 255, (300, 400), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    image.info["dpi"] = (72, 72)
    return image


VALUES = {
    "bytes": b"x" * BIG,
    "bytearray": bytearray(b"y" * BIG),
    "str": "z\u00e9\U0001f600" * BIG,
    "memoryview": memoryview(np.arange(BIG, dtype=np.float64)).cast("B").cast("d", (BIG // 2, 2)),
    "list of bytes": [b"a" * BIG, 3],
    "dict of str": {"k": "q" * BIG},
    "image L": _image("L"),
    "image RGB": _image("RGB"),
    "image F": _image("F"),
}


def _same(a, b) -> bool:
    if isinstance(a, Image.Image):
        return (a.mode, a.size, a.info, a.tobytes()) == (b.mode, b.size, b.info, b.tobytes())
    if isinstance(a, memoryview):
        return (a.format, a.shape, a.tobytes()) == (b.format, b.shape, b.tobytes())
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", list(VALUES))
def test_large_values_go_out_of_band_and_come_back_equal(name, tmp_path):
    value = VALUES[name]
    payload = dumps(value)
    assert len(payload.header) < 1024 and sum(b.nbytes for b in payload.buffers) >= BIG // 4
    store = SharedMemoryStore("fastdag-test-zc", directory=str(tmp_path))
    back = store.get(store.put("v", value))
    assert _same(value, back)


def test_small_values_stay_in_band():
    assert dumps(b"x" * 100).buffers == []
    assert dumps(Image.new("L", (8, 8))).buffers == []


def _paste(image):
    image.paste(255, (0, 0, 10, 10))
    return image.getpixel((0, 0))


def _corner(image):
    return image.getpixel((0, 0))


def _darken(image):
    return image.point(lambda v: v // 2)


def test_images_read_by_workers_are_private_and_results_writeable():
    image = _image("L")
    with fd.LocalExecutor(workers=2) as ex:
        shared = fd.task(_darken)(image)
        pasted, corner, result = ex.compute(fd.task(_paste)(shared), fd.task(_corner)(shared), shared)
    assert pasted == 255 and corner == image.getpixel((0, 0)) // 2
    result.load()[0, 0] = 7  # pixel access works: the result is writeable
    assert result.getpixel((0, 0)) == 7
