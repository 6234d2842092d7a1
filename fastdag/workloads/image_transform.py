"""Image transform: fixed tiles, a chain of Pillow filters per tile, one fan-in.

Each tile goes through four separate tasks (grayscale, blur, edge
enhancement, border), then a single task pastes the bordered tiles back into
one image. Filters see only their own tile, so the result is defined as the
same four steps applied tile by tile; ``reference`` does exactly that
serially and the check demands equality to the last pixel.

Tiles are passed between tasks as numpy arrays (the buffers travel through
shared memory untouched); each task wraps its array in a Pillow image.
The input is a procedurally generated RGB image (made per tile inside the
graph from a seed) or any image file Pillow can open.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

import fastdag as fd

from .base import Check, Params, assemble_grid, spans, size_parser

BLUR_RADIUS = 2
BORDER = 4

Box = tuple[int, int, int, int]  # left, top, right, bottom


# -- tasks -------------------------------------------------------------------
@fd.task
def generate_tile(seed: int, box: Box, width: int, height: int) -> np.ndarray:
    """The pixels of ``box`` in the seeded procedural image (see :func:`procedural`)."""
    return procedural(seed, box, width, height)


@fd.task
def grayscale(tile: np.ndarray) -> np.ndarray:
    return np.asarray(ImageOps.grayscale(Image.fromarray(tile)))


@fd.task
def blur(tile: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(tile).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))


@fd.task
def edge_enhance(tile: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(tile).filter(ImageFilter.EDGE_ENHANCE_MORE))


@fd.task
def add_border(tile: np.ndarray) -> np.ndarray:
    return np.asarray(ImageOps.expand(Image.fromarray(tile), border=BORDER, fill=255))


@fd.task
def assemble(tiles: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of bordered tiles, side by side: the output image as an array."""
    return assemble_grid(tiles)


PIPELINE = (grayscale, blur, edge_enhance, add_border)


# -- input ----------------------------------------------------------------------
def procedural(seed: int, box: Box, width: int, height: int) -> np.ndarray:
    """RGB pixels of a seeded pattern (waves, rings and noise) over ``box``.

    Defined pixel by pixel from global coordinates, so any tile can be made
    on its own and tiles fit together seamlessly.
    """
    left, top, right, bottom = box
    y, x = np.mgrid[top:bottom, left:right].astype(np.float64)
    phase = (seed * 0.6180339887) % 1.0 * 2 * np.pi
    fx, fy = x / max(width, 1), y / max(height, 1)
    r = 127.5 * (1 + np.sin(2 * np.pi * 5 * fx + phase))
    g = 127.5 * (1 + np.cos(2 * np.pi * 3 * fy - phase))
    rings = np.hypot(fx - 0.5, fy - 0.5)
    b = 127.5 * (1 + np.sin(2 * np.pi * 12 * rings + 2 * phase))
    # Hash-like noise from the coordinates and seed: deterministic per pixel.
    noise = (x.astype(np.int64) * 73856093 ^ y.astype(np.int64) * 19349663 ^ seed * 83492791) % 61
    rgb = np.stack([r, g, b], axis=-1) + (noise[..., None] - 30)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as an RGB array, with a one-line error for anything Pillow cannot read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"image file not found: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"not a regular file: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"Pillow cannot open {path} as an image: {exc}") from None


def _tile_boxes(width: int, height: int, tile: int) -> list[list[Box]]:
    return [[(x0, y0, x1, y1) for x0, x1 in spans(width, tile, "tile")]
            for y0, y1 in spans(height, tile, "tile")]


# -- builders -------------------------------------------------------------------
def _pipeline(first) -> fd.Node:
    node = first
    for step in PIPELINE:
        node = step(node)
    return node


def build(image: np.ndarray | str | os.PathLike, tile: int = 256) -> fd.Node:
    """The transformed image from a given array (H×W×3 or H×W, uint8) or image file.

    Tile views of the array go straight into the first filter task: there is
    no separate split task.
    """
    array = _as_image_array(image)
    height, width = array.shape[:2]
    boxes = _tile_boxes(width, height, tile)
    return assemble([[_pipeline(array[t:b, l:r]) for (l, t, r, b) in row] for row in boxes])


def build_generated(width: int, height: int, tile: int = 256, seed: int = 0) -> fd.Node:
    """The transformed image of a ``width``×``height`` procedural image made tile by tile."""
    boxes = _tile_boxes(width, height, tile)
    return assemble([[_pipeline(generate_tile(seed, box, width, height)) for box in row]
                     for row in boxes])


def _as_image_array(image) -> np.ndarray:
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        return load_image(image)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    channels_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    if array.dtype != np.uint8 or not channels_ok:
        raise ValueError(f"expected an H×W or H×W×3 uint8 image, got {array.dtype} {array.shape}")
    return array


def reference(image: np.ndarray | str | os.PathLike, tile: int = 256) -> np.ndarray:
    """The same steps, tile after tile, in this process."""
    array = _as_image_array(image)
    height, width = array.shape[:2]
    rows = []
    for row in _tile_boxes(width, height, tile):
        out = []
        for (l, t, r, b) in row:
            value = array[t:b, l:r]
            for step in PIPELINE:
                value = step.func(value)
            out.append(value)
        rows.append(out)
    return assemble.func(rows)


def generated_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """The whole procedural image, for references and for saving to a file."""
    return procedural(seed, (0, 0, width, height), width, height)


def output_shape(width: int, height: int, tile: int) -> tuple[int, int]:
    """(height, width) of the result: every tile gains a border on each side."""
    cols, rows = math.ceil(width / tile), math.ceil(height / tile)
    return height + 2 * BORDER * rows, width + 2 * BORDER * cols


def check(result: np.ndarray, expected: np.ndarray) -> Check:
    if result.shape != expected.shape:
        return Check(False, f"shape {result.shape} != serial {expected.shape}")
    diff = int(np.count_nonzero(result != expected))
    if diff:
        return Check(False, f"{diff} of {expected.size} pixels differ from the serial tile-by-tile run")
    return Check(True, f"{expected.shape[1]}x{expected.shape[0]} image identical to the serial run")


def _fill(params: Params) -> Params:
    params.setdefault("width", params.get("height", 2048))
    params.setdefault("height", params["width"])
    params.setdefault("tile", max(1, math.ceil(max(params["width"], params["height"]) / 4)))
    return params


parse_size = size_parser("width", ("width", "height", "tile"), _fill)


def build_params(params: Params) -> fd.Node:
    if params.get("input"):
        return build(params["input"], params["tile"])
    return build_generated(params["width"], params["height"], params["tile"], params["seed"])


def reference_params(params: Params) -> np.ndarray:
    if params.get("input"):
        return reference(params["input"], params["tile"])
    return reference(generated_image(params["width"], params["height"], params["seed"]), params["tile"])


__all__ = ["generate_tile", "grayscale", "blur", "edge_enhance", "add_border", "assemble",
           "PIPELINE", "procedural", "load_image", "build", "build_generated", "reference",
           "generated_image", "output_shape", "check", "parse_size"]
