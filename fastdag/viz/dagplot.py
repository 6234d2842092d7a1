"""Draw a DAG with matplotlib when Graphviz is not installed.

Layered layout: a node's row is its level (longest distance from a root),
roots at the top; within a row, nodes are ordered by the mean position of
their inputs (one barycentre sweep), which untangles trees and most
pipelines without a layout engine.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import TYPE_CHECKING

from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from .plotting import colours, new_figure, save

if TYPE_CHECKING:
    from ..core.graph import DAG

_LABEL_LIMIT = 60  # more nodes than this: dots without names


def layout(dag: DAG) -> list[tuple[float, int]]:
    """(x, level) per node index; x in [0, 1] within each level."""
    levels = dag.levels()
    index = dag.index
    rows: dict[int, list[int]] = defaultdict(list)
    for i, lv in enumerate(levels):
        rows[lv].append(i)
    x = [0.0] * len(dag.nodes)
    for lv in sorted(rows):
        members = rows[lv]
        if lv:
            def centre(i: int) -> float:
                deps = dag.nodes[i].deps
                return sum(x[index[id(d)]] for d in deps) / len(deps) if deps else 0.5
            members.sort(key=centre)
        n = len(members)
        for k, i in enumerate(members):
            x[i] = (k + 0.5) / n
    return [(x[i], levels[i]) for i in range(len(dag.nodes))]


def draw_dag(dag: DAG, path: str | os.PathLike[str]) -> None:
    """Draw ``dag`` to ``path`` (.png, .svg or .pdf), nodes coloured by function."""
    pos = layout(dag)
    depth = max(lv for _, lv in pos) + 1
    widest = max(sum(1 for _, lv in pos if lv == d) for d in range(depth))
    labelled = len(dag.nodes) <= _LABEL_LIMIT
    width = min(30.0, max(4.0, widest * (1.6 if labelled else 0.08)))
    height = min(30.0, max(2.5, depth * (0.9 if labelled else 0.35)))
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    index = dag.index
    segments = [[pos[index[id(d)]], pos[i]] for i, n in enumerate(dag.nodes) for d in n.deps]
    ax.add_collection(LineCollection(segments, colors="#888888", linewidths=0.7, zorder=1))
    names = [n.task.name for n in dag.nodes]
    colour = colours(names)
    outputs = {id(n) for n in dag.outputs}
    if labelled:
        for i, n in enumerate(dag.nodes):
            ax.annotate(n.name, pos[i], ha="center", va="center", fontsize=8, zorder=3,
                        bbox={"boxstyle": "round,pad=0.3", "fc": colour[names[i]],
                              "ec": "black", "lw": 2 if id(n) in outputs else 0.5,
                              "alpha": 0.9})
    else:
        ax.scatter([p[0] for p in pos], [p[1] for p in pos], s=12, zorder=3,
                   c=[colour[nm] for nm in names], edgecolors="none")
        handles = [Line2D([], [], marker="o", linestyle="", color=c, label=nm)
                   for nm, c in list(colour.items())[:20]]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                  frameon=False, title="function")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(depth - 0.5, -0.5)  # roots at the top, arrows flow downwards
    ax.set_axis_off()
    ax.set_title(f"{len(dag.nodes)} tasks, depth {depth} (outputs at the bottom)", fontsize=9)
    save(fig, path)
