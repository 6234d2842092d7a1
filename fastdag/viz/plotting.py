"""Shared plotting helpers: headless figures, units, colours.

Figures are built with ``matplotlib.figure.Figure`` and saved through the
Agg canvas directly, never through ``pyplot``, so drawing a report neither
needs a display nor changes the backend of a notebook or GUI that imported
fastdag.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

BYTE_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1))
TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6))


def new_figure(width: float, height: float) -> Figure:
    """A Figure attached to an Agg canvas (no display, no pyplot state)."""
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Save by extension (png, svg, pdf), creating the directory."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    return p


def byte_unit(largest: float) -> tuple[str, int]:
    """The unit (name, size) that shows ``largest`` bytes as a number >= 1."""
    for name, size in BYTE_UNITS:
        if largest >= size:
            return name, size
    return "B", 1


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    name, size = byte_unit(abs(n))
    return f"{n / size:.3g} {name}" if size > 1 else f"{int(n)} B"


def time_unit(largest: float) -> tuple[str, float]:
    """The unit (name, seconds) that shows ``largest`` seconds as a number >= 1."""
    for name, size in TIME_UNITS:
        if largest >= size:
            return name, size
    return "µs", 1e-6


def human_seconds(s: float) -> str:
    """``0.0123`` -> ``'12.3 ms'``."""
    name, size = time_unit(abs(s))
    return f"{s / size:.3g} {name}"


def colours(names: Iterable[str]) -> dict[str, tuple[float, float, float, float]]:
    """A stable colour per name, never red: red marks the critical path."""
    from matplotlib import colormaps
    names = list(dict.fromkeys(names))
    cmap = colormaps["tab10" if len(names) <= 9 else "tab20"]
    reds = {3} if cmap.N == 10 else {6, 7}
    palette = [cmap(i) for i in range(cmap.N) if i not in reds]
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}
