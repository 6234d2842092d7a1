"""A pytest-benchmark JSON file as a chart: engines side by side, per workload.

Benchmark names look like ``test_tree_reduction[fastdag-local]``: the
workload is the benchmark's ``group`` (or, without one, the test name
without ``test_``) and the engine is the parameter in brackets. Each
workload gets its own panel with its own time axis, since workloads differ
by orders of magnitude; each bar is labelled with its ratio to the fastest
engine of that workload.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from .plotting import colours, new_figure, save, time_unit

# Above this ratio between a panel's slowest and fastest bars, use a log axis.
LOG_SPREAD = 20.0

_NAME = re.compile(r"^(?P<base>[^\[]+)(?:\[(?P<param>.*)\])?$")


class BenchFileError(ValueError):
    """The file is not a pytest-benchmark JSON file with results."""


@dataclass
class BenchResult:
    """One benchmark's timing: median and quartiles, in seconds."""

    workload: str
    engine: str
    median: float
    q1: float
    q3: float
    rounds: int


def load_bench(path: str | os.PathLike[str]) -> list[BenchResult]:
    """The results in a pytest-benchmark ``--benchmark-json`` file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise BenchFileError(f"benchmark file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchFileError(f"benchmark file {str(p)!r} is not valid JSON ({exc})") from None
    benches = data.get("benchmarks") if isinstance(data, dict) else None
    if not benches:
        raise BenchFileError(f"benchmark file {str(p)!r} holds no 'benchmarks' "
                             "(written by pytest --benchmark-json?)")
    results = []
    for b in benches:
        try:
            name, stats = b["name"], b["stats"]
            match = _NAME.match(name)
            base, param = match.group("base"), match.group("param")
            workload = b.get("group") or base.removeprefix("test_")
            engine = param or base.removeprefix("test_")
            results.append(BenchResult(workload, engine, float(stats["median"]),
                                       float(stats.get("q1", stats["median"])),
                                       float(stats.get("q3", stats["median"])),
                                       int(stats.get("rounds", 0))))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BenchFileError(f"benchmark file {str(p)!r}: malformed entry "
                                 f"{b.get('name', '?') if isinstance(b, dict) else b!r} "
                                 f"({exc!r})") from None
    return results


def ratios(results: list[BenchResult]) -> dict[tuple[str, str], float]:
    """Each result's median divided by the fastest median of its workload."""
    best: dict[str, float] = {}
    for r in results:
        best[r.workload] = min(best.get(r.workload, r.median), r.median)
    return {(r.workload, r.engine): (r.median / best[r.workload] if best[r.workload] > 0
                                     else 1.0) for r in results}


def bench_figure(results: list[BenchResult], title: str = "") -> Figure:
    """One panel per workload; a bar per engine (median, IQR whiskers), ratio on top."""
    by_workload: dict[str, list[BenchResult]] = defaultdict(list)
    for r in results:
        by_workload[r.workload].append(r)
    engines = sorted({r.engine for r in results})
    colour = colours(engines)
    ratio = ratios(results)
    n = len(by_workload)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig = new_figure(4.2 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (workload, rs) in zip(axes, sorted(by_workload.items())):
        rs = sorted(rs, key=lambda r: engines.index(r.engine))
        unit, scale = time_unit(max(r.q3 for r in rs))
        xs = range(len(rs))
        heights = [r.median / scale for r in rs]
        err = [[max(0.0, (r.median - r.q1) / scale) for r in rs],
               [max(0.0, (r.q3 - r.median) / scale) for r in rs]]
        ax.bar(xs, heights, yerr=err, capsize=3, color=[colour[r.engine] for r in rs])
        if max(heights) > LOG_SPREAD * max(min(heights), 1e-12):
            ax.set_yscale("log")  # else the fast engines' bars would be invisible
        for x, r in zip(xs, rs):
            k = ratio[(workload, r.engine)]
            ax.annotate("fastest" if k == 1.0 else f"{k:.2f}×", (x, r.q3 / scale), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8,
                        fontweight="bold" if k == 1.0 else "normal")
        ax.set_xticks(list(xs), [r.engine for r in rs], rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(f"median time ({unit}{', log scale' if ax.get_yscale() == 'log' else ''})")
        ax.set_title(workload)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(title or "Benchmarks: median time per engine (whiskers: quartiles; "
                          "labels: time / fastest)")
    return fig


def write_bench_chart(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Chart ``path`` into ``out_dir/<file stem>.png``; return the PNG path."""
    results = load_bench(path)
    return save(bench_figure(results), Path(out_dir) / f"{Path(path).stem}.png")
