"""The figures of one run's metrics: timeline, time breakdown, sizes, critical path, summary.

Each ``*_figure`` function takes a RunReport and returns a matplotlib
Figure, so callers (the ``fastdag report`` command, notebooks, tests)
choose where it goes; ``write_report`` saves them all as PNG files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..metrics.runs import RunReport, TaskRecord
from .plotting import (byte_unit, colours, human_bytes, human_seconds, new_figure, save,
                       time_unit)

# Figures written by ``write_report``, in order, without the extension.
FIGURES = ("timeline", "breakdown", "sizes", "critical_path", "summary")

# Width of the drawing area in pixels; bars narrower than one pixel are
# widened to one so that thousands of tiny tasks still show up.
_TIMELINE_PIXELS = 1100
_MAX_LEGEND = 14


def _short_workers(workers: list[str]) -> dict[str, str]:
    """Drop the host from ``host:pid[:thread]`` labels when every worker shares it."""
    hosts = {w.split(":", 1)[0] for w in workers}
    if len(hosts) == 1:
        return {w: (w.split(":", 1)[1] if ":" in w else w) for w in workers}
    return {w: w for w in workers}


def _title(report: RunReport, what: str) -> str:
    run = report.run
    label = run.workflow or f"run {run.run_id}"
    return f"{what} — {label} ({run.executor}, {run.tasks} tasks)"


def _function_order(tasks: list[TaskRecord]) -> list[str]:
    """Functions by total busy time, heaviest first."""
    busy: dict[str, float] = defaultdict(float)
    for t in tasks:
        busy[t.function] += t.end - t.start
    return sorted(busy, key=lambda f: -busy[f])


def timeline_figure(report: RunReport) -> Figure:
    """Per-worker Gantt chart, bars coloured by function, critical path outlined in red."""
    tasks = report.tasks
    t0 = report.run.start
    workers = sorted({t.worker for t in tasks})
    labels = _short_workers(workers)
    row = {w: i for i, w in enumerate(workers)}
    functions = _function_order(tasks)
    colour = colours(functions)
    span = max([report.run.makespan] + [t.end - t0 for t in tasks]) or 1e-3
    unit, scale = time_unit(span)
    min_w = span / _TIMELINE_PIXELS / scale

    fig = new_figure(11, 1.6 + 0.45 * max(1, len(workers)))
    ax = fig.add_subplot()
    bars: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for t in tasks:
        bars[(t.worker, t.function)].append(((t.start - t0) / scale,
                                             max(min_w, (t.end - t.start) / scale)))
    for (worker, function), spans in bars.items():
        ax.broken_barh(spans, (row[worker] - 0.4, 0.8), facecolors=colour[function],
                       linewidth=0)
    if tasks:
        # Time the workers spent waiting for the first task and after the last:
        # planning and shipping the graph, then collecting the results.
        first = min(t.start for t in tasks) - t0
        last = max(t.end for t in tasks) - t0
        ax.axvspan(0, first / scale, color=_STARTUP, zorder=0)
        ax.axvspan(last / scale, span / scale, color=_AFTER, zorder=0)
        if first > 0.08 * span:
            ax.text(first / scale / 2, (len(workers) - 1) / 2, "start-up", ha="center",
                    va="center", rotation=90 if first < 0.2 * span else 0, color="#777777",
                    fontsize=9)
    path = report.critical_path()
    if path:
        for t in path:
            ax.broken_barh([((t.start - t0) / scale, max(min_w, (t.end - t.start) / scale))],
                           (row[t.worker] - 0.45, 0.9), facecolors="none",
                           edgecolors="red", linewidth=1.5)
    ax.set_yticks(range(len(workers)), [labels[w] for w in workers])
    ax.set_ylim(-0.6, len(workers) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, span / scale)
    ax.set_xlabel(f"time since the run started ({unit})")
    ax.set_ylabel("worker")
    ax.set_title(_title(report, "Task timeline") + f", makespan {human_seconds(span)}")
    handles = [Patch(color=colour[f], label=f) for f in functions[:_MAX_LEGEND]]
    if len(functions) > _MAX_LEGEND:
        handles.append(Patch(color="white", label=f"… {len(functions) - _MAX_LEGEND} more"))
    if path:
        handles.append(Patch(facecolor="none", edgecolor="red", label="critical path"))
    handles.append(Patch(color=_STARTUP, label="start-up: workers starting,\ngraph sent"))
    handles.append(Patch(color=_AFTER, label="after the last task:\nresults collected"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
              title="function", frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


_STARTUP, _AFTER = "#e4e4e4", "#f3f3f3"

_PARTS = (("exec_s", "execute", "#4c72b0"), ("fetch_s", "fetch inputs", "#dd8452"),
          ("store_s", "store output", "#55a868"), ("queued_s", "queued", "#c7c7c7"))


def breakdown_figure(report: RunReport) -> Figure:
    """Per function: execute / fetch inputs / store output / queued, total and per task."""
    tasks = report.tasks
    functions = _function_order(tasks)[::-1]  # heaviest at the top of a barh
    count: dict[str, int] = defaultdict(int)
    sums = {attr: defaultdict(float) for attr, _, _ in _PARTS}
    for t in tasks:
        count[t.function] += 1
        for attr, _, _ in _PARTS:
            sums[attr][t.function] += getattr(t, attr)
    fig = new_figure(11, 1.8 + 0.4 * max(1, len(functions)))
    ax_total, ax_mean = fig.subplots(1, 2, sharey=True)
    ylabels = [f"{f} (×{count[f]})" for f in functions]
    for ax, per_task in ((ax_total, False), (ax_mean, True)):
        totals = [sum(sums[a][f] / (count[f] if per_task else 1) for a, _, _ in _PARTS)
                  for f in functions]
        unit, scale = time_unit(max(totals, default=0.0) or 1e-6)
        left = [0.0] * len(functions)
        for attr, label, col in _PARTS:
            widths = [sums[attr][f] / (count[f] if per_task else 1) / scale for f in functions]
            ax.barh(range(len(functions)), widths, left=left, color=col, label=label)
            left = [a + b for a, b in zip(left, widths)]
        ax.set_xlabel(f"{'mean per task' if per_task else 'total over all tasks'} ({unit})")
        ax.grid(axis="x", alpha=0.3)
    ax_total.set_yticks(range(len(functions)), ylabels)
    ax_total.set_ylabel("function")
    ax_total.legend(loc="lower right", fontsize=8)
    fig.suptitle(_title(report, "Where the time went"))
    return fig


def sizes_figure(report: RunReport) -> Figure:
    """Per function: total input and output bytes (and the mean per task in the labels)."""
    tasks = report.tasks
    functions = _function_order(tasks)[::-1]
    count: dict[str, int] = defaultdict(int)
    inb: dict[str, int] = defaultdict(int)
    outb: dict[str, int] = defaultdict(int)
    for t in tasks:
        count[t.function] += 1
        inb[t.function] += t.input_bytes
        outb[t.function] += t.output_bytes
    largest = max([inb[f] for f in functions] + [outb[f] for f in functions] + [1])
    unit, scale = byte_unit(largest)
    fig = new_figure(11, 1.8 + 0.5 * max(1, len(functions)))
    ax = fig.add_subplot()
    y = range(len(functions))
    h = 0.38
    ax.barh([i + h / 2 for i in y], [inb[f] / scale for f in functions], h,
            color="#4c72b0", label="input")
    ax.barh([i - h / 2 for i in y], [outb[f] / scale for f in functions], h,
            color="#dd8452", label="output")
    for i, f in enumerate(functions):
        ax.annotate(f"in {human_bytes(inb[f] / count[f])}/task, "
                    f"out {human_bytes(outb[f] / count[f])}/task",
                    (max(inb[f], outb[f]) / scale, i), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(list(y), [f"{f} (×{count[f]})" for f in functions])
    ax.set_xlabel(f"total bytes over all tasks ({unit})")
    ax.set_ylabel("function")
    ax.margins(x=0.35)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(_title(report, "Data in and out of tasks"))
    return fig


def critical_path_figure(report: RunReport) -> Figure:
    """The chain of tasks that set the makespan, each on its own row, gaps visible."""
    path = report.critical_path()
    t0 = report.run.start
    span = report.run.makespan or 1e-3
    fig = new_figure(11, 1.8 + 0.32 * max(3, min(len(path), 40)))
    ax = fig.add_subplot()
    if not path:
        ax.text(0.5, 0.5, "no dependency information in these metrics:\n"
                "the critical path cannot be computed", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(_title(report, "Critical path"))
        return fig
    # Zoom on the path: a run's first moments may be spent starting workers.
    lo, hi = path[0].start - t0, path[-1].end - t0
    window = max(hi - lo, 1e-6)
    lo, hi = max(0.0, lo - 0.02 * window), hi + 0.02 * window
    unit, scale = time_unit(hi)
    colour = colours(_function_order(report.tasks))
    min_w = (hi - lo) / _TIMELINE_PIXELS / scale
    for k, t in enumerate(path):
        ax.barh(k, max(min_w, (t.end - t.start) / scale), left=(t.start - t0) / scale,
                color=colour[t.function], edgecolor="red", linewidth=1)
        if k and t.start > path[k - 1].end:  # waiting for this task to start
            ax.barh(k, (t.start - path[k - 1].end) / scale, left=(path[k - 1].end - t0) / scale,
                    color="#dddddd", hatch="///", edgecolor="#aaaaaa", linewidth=0)
    busy = sum(t.end - t.start for t in path)
    waits = sum(max(0.0, t.start - p.end) for p, t in zip(path, path[1:]))
    labelled = len(path) <= 40
    if labelled:
        ax.set_yticks(range(len(path)),
                      [f"{t.task_key} ({human_seconds(t.end - t.start)})" for t in path],
                      fontsize=8)
    else:
        ax.set_ylabel(f"step along the path (1…{len(path)})")
    ax.invert_yaxis()
    ax.set_xlim(lo / scale, hi / scale)
    ax.set_xlabel(f"time since the run started ({unit})")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(_title(report, "Chain of inputs that ended last")
                 + f"\n{len(path)} tasks: busy {human_seconds(busy)}, waiting "
                 f"{human_seconds(waits)} between them (hatched), "
                 f"{human_seconds(path[0].start - t0)} before the first; "
                 f"makespan {human_seconds(span)}", fontsize=10)
    return fig


def summary_rows(report: RunReport) -> list[tuple[str, str]]:
    """The summary table as (label, value) text pairs."""
    s = report.summary()
    run = report.run
    path = report.critical_path()
    started = dt.datetime.fromtimestamp(run.start, dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")
    return [
        ("run id", _cut(run.run_id, 48)),
        ("workflow", _cut(run.workflow or "(unnamed)", 48)),
        ("executor", run.executor),
        *([] if run.state == "done" else [("state", _cut(f"{run.state}: {run.error}", 48))]),
        *_setting_rows(run.settings),
        ("started", started),
        ("makespan", human_seconds(s["makespan_s"])),
        ("tasks", f"{s['tasks']}" + (f" ({s['retries']} retries)" if s["retries"] else "")),
        ("workers seen", str(s["workers"])),
        ("busy time (all workers)", human_seconds(s["busy_s"])),
        ("utilisation", f"{s['utilisation']:.1%} of workers × makespan"),
        ("task input bytes", human_bytes(s["input_bytes"])),
        ("task output bytes", human_bytes(s["output_bytes"])),
        ("bytes moved through the store", human_bytes(s["bytes_moved"])),
        ("peak memory of workers (RSS)", human_bytes(s["peak_memory"])),
        ("critical path", f"{len(path)} tasks, {human_seconds(sum(t.end - t.start for t in path))}"
         if path else "not recorded"),
    ]


def _setting_rows(settings: dict) -> list[tuple[str, str]]:
    """One row per executor setting, sizes in human units, long values cut."""
    if not settings:
        return [("settings", "(none recorded)")]
    rows = []
    for key, value in sorted(settings.items()):
        if isinstance(value, int) and not isinstance(value, bool) and \
                any(w in key for w in ("threshold", "cache", "bytes", "memory")):
            text = human_bytes(value)
        else:
            text = value if isinstance(value, str) else json.dumps(value)
        rows.append((f"setting: {key.replace('_', ' ')}", _cut(text, 48)))
    return rows


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def summary_figure(report: RunReport) -> Figure:
    """The summary table (makespan, tasks, bytes, utilisation...) as an image."""
    rows = summary_rows(report)
    fig = new_figure(8, 0.5 + 0.3 * len(rows))
    ax = fig.add_subplot()
    ax.set_axis_off()
    table = ax.table(cellText=[[k, v] for k, v in rows], colLabels=["", "value"],
                     loc="center", cellLoc="left", colLoc="left", colWidths=[0.4, 0.6])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.25)
    ax.set_title(_title(report, "Run summary"))
    return fig


_BUILDERS = {
    "timeline": timeline_figure,
    "breakdown": breakdown_figure,
    "sizes": sizes_figure,
    "critical_path": critical_path_figure,
    "summary": summary_figure,
}


def write_report(report: RunReport, out_dir: str | os.PathLike[str],
                 fmt: str = "png") -> list[Path]:
    """Save every figure of ``report`` into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    paths = []
    for name in FIGURES:
        fig = _BUILDERS[name](report)
        paths.append(save(fig, out / f"{name}.{fmt}"))
    return paths
