"""A big run summarised by (level, function) and by time bins, for the page.

Past ``model.AGGREGATE_OVER`` tasks the page stops drawing one mark per task: a
million boxes neither fit on a screen nor in a browser's memory as JSON.
It asks for this summary instead, a few kilobytes whatever the run's size:

    groups   one per (level, function): how many tasks, and per time-bin edge
             how many had started and how many had ended by then, so the page
             finds the state at any t by looking up one bin
    lanes    per worker and function, the busy fraction of each time bin

Computed with numpy from the run's task columns (``RunView.columns``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 400


def levels(deps: list[tuple[int, ...]]) -> np.ndarray:
    """Longest path from an input-free task; plans number inputs before their consumers."""
    level = np.zeros(len(deps), dtype=np.int32)
    for i, ds in enumerate(deps):
        if ds:
            level[i] = 1 + max(level[d] for d in ds)
    return level


def aggregate(view: Any, t1: float, bins: int = BINS) -> dict[str, Any]:
    """The summary of ``view`` (a ``model.RunView``) over [view.start, t1] in ``bins`` bins."""
    cols = {c: np.frombuffer(view.columns[c], dtype=np.float64) for c in
            ("task", "worker", "start", "end")}
    task = cols["task"].astype(np.int64)
    fnames = list(dict.fromkeys(view.functions))
    fid = {f: k for k, f in enumerate(fnames)}
    func_of = np.fromiter((fid[f] for f in view.functions), dtype=np.int32,
                          count=len(view.functions))
    level = view.levels()
    edges = np.linspace(view.start, max(t1, view.start + 1e-6), bins + 1)
    keys = level.astype(np.int64) * len(fnames) + func_of
    groups = []
    row_key = keys[task]
    for key in np.unique(keys):
        rows = row_key == key
        groups.append({
            "level": int(key // len(fnames)), "function": fnames[int(key % len(fnames))],
            "count": int(np.count_nonzero(keys == key)),
            "started": np.searchsorted(np.sort(cols["start"][rows]), edges, "right").tolist(),
            "ended": np.searchsorted(np.sort(cols["end"][rows]), edges, "right").tolist(),
        })
    return {"aggregated": True, "t0": view.start, "t1": float(edges[-1]), "bins": bins,
            "functions": fnames, "depth": int(level.max()) + 1 if len(level) else 0,
            "groups": groups, "lanes": _lanes(cols, func_of[task], len(view.workers),
                                              len(fnames), edges)}


def _lanes(cols: dict[str, np.ndarray], func: np.ndarray, workers: int, functions: int,
           edges: np.ndarray) -> list[list[list[float]]]:
    """busy[worker][function][bin]: the fraction of the bin the worker spent on it."""
    width = edges[1] - edges[0]
    busy = np.zeros((max(workers, 1), functions, len(edges) - 1))
    first = np.clip(((cols["start"] - edges[0]) // width).astype(np.int64), 0, len(edges) - 2)
    last = np.clip(((cols["end"] - edges[0]) // width).astype(np.int64), 0, len(edges) - 2)
    worker = cols["worker"].astype(np.int64)
    one = first == last  # the bulk: tasks shorter than a bin
    np.add.at(busy, (worker[one], func[one], first[one]),
              (cols["end"] - cols["start"])[one] / width)
    for k in np.flatnonzero(~one):  # tasks across bin edges: their share of each bin
        w, f, a, b = worker[k], func[k], first[k], last[k]
        busy[w, f, a] += (edges[a + 1] - cols["start"][k]) / width
        busy[w, f, a + 1:b] += 1.0
        busy[w, f, b] += (cols["end"][k] - edges[b]) / width
    total = busy.sum(axis=1, keepdims=True)  # a worker is at most fully busy
    busy = np.where(total > 1.0, busy / np.maximum(total, 1e-12), busy)
    return np.round(busy, 3).tolist()
