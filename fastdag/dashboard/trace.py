"""A run as a Chrome Trace Event file, for Perfetto (ui.perfetto.dev) and chrome://tracing.

One process per run, one thread (track) per worker, one complete event
("ph": "X") per task, and a flow arrow ("ph": "s" -> "f") for each input a
task read from a task that ran on another worker: the data that moved.
Times are microseconds from the run's start.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..metrics.runs import RunReport


def chrome_trace(report: RunReport) -> dict[str, Any]:
    """The Trace Event JSON object of one run."""
    run = report.run
    tasks = report.tasks
    lanes: dict[str, int] = {}
    for t in sorted(tasks, key=lambda t: t.start):
        lanes.setdefault(t.worker, len(lanes) + 1)
    us = lambda seconds: round((seconds - run.start) * 1e6, 3)  # noqa: E731
    label = f"fastdag run {run.run_id}" + (f" ({run.workflow})" if run.workflow else "")
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": label}}]
    events += [{"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": w}}
               for w, tid in lanes.items()]
    for t in tasks:
        events.append({
            "ph": "X", "name": t.task_key, "cat": t.function, "pid": 1, "tid": lanes[t.worker],
            "ts": us(t.start), "dur": round(max(0.0, t.end - t.start) * 1e6, 3),
            "args": {"function": t.function, "input_bytes": t.input_bytes,
                     "output_bytes": t.output_bytes, "fetch_s": t.fetch_s,
                     "store_s": t.store_s, "queued_s": t.queued_s, "retries": t.retries}})
    events += _flows(report, lanes, us)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"run_id": run.run_id, "executor": run.executor,
                          "makespan_s": run.makespan, "tasks": run.tasks}}


def _flows(report: RunReport, lanes: dict[str, int], us: Any) -> list[dict[str, Any]]:
    """Arrows from a producer to a consumer on another worker."""
    by_index = {t.index: t for t in report.tasks if t.index >= 0}
    flows: list[dict[str, Any]] = []
    for t in report.tasks:
        for d in t.deps:
            src = by_index.get(d)
            if src is None or src.worker == t.worker:
                continue
            fid = len(flows) // 2 + 1
            common = {"name": "data", "cat": "transfer", "pid": 1, "id": fid}
            flows.append({**common, "ph": "s", "tid": lanes[src.worker], "ts": us(src.end)})
            flows.append({**common, "ph": "f", "bp": "e", "tid": lanes[t.worker],
                          "ts": us(t.start)})
    return flows


def write_trace(report: RunReport, path: str | os.PathLike[str]) -> str:
    """Write ``chrome_trace(report)`` to ``path``; return the path."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(chrome_trace(report), f, separators=(",", ":"))
    return os.fspath(path)
