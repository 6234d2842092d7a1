"""A forecast as text: the headline, the model's constants, each worker, each function.

    Forecast (forecast.py) ──describe──> the text ``fastdag plan`` prints
    nodes ──plan_report──> forecast ──describe──> the same text, from Python
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..core.graph import DAG, Node
from .forecast import Forecast, by_worker, forecast


def plan_report(nodes: Node | Iterable[Node] | DAG, workers: int = 2,
                history: Any = None) -> str:
    """The plan and predicted makespan of ``nodes`` on ``workers`` workers, as text."""
    return describe(forecast(nodes, workers, history))


def describe(fc: Forecast, tasks: bool = False) -> str:
    """The forecast as text: the headline, the model's constants, each worker, each function."""
    over = fc.model.overheads
    lines = [f"predicted makespan {fc.makespan:.3f} s on {fc.workers} workers "
             f"({len(fc.costs)} tasks; critical path {fc.critical_path_s():.3f} s)",
             f"model: {len(fc.model.functions)} functions from {fc.model.runs} runs; "
             f"gap per task {over.per_task_s * 1e6:.0f} us (median), per run {over.per_run_s * 1e3:.1f} ms, "
             f"store {over.store_bytes_per_s / 1e9:.2f} GB/s"]
    unknown = fc.unknown_functions()
    if unknown:
        lines.append(f"never seen (default {fc.model.default.time_s(0) * 1e3:.2f} ms each): "
                     + ", ".join(unknown))
    slots = by_worker(fc.slots, fc.workers)
    functions = fc.plan.functions()
    span = fc.makespan or 1.0
    for w, mine in enumerate(slots):
        busy = sum(s.end - s.start for s in mine)
        counts = Counter(functions[s.index] for s in mine)
        top = ", ".join(f"{n} x{c}" for n, c in counts.most_common(4))
        lines.append(f"  worker {w}: {len(mine)} tasks, busy {busy:.3f} s "
                     f"({busy / span:.0%}): {top}")
    lines.append(_function_table(fc))
    if tasks:
        lines += [f"  {s.start:9.4f} {s.end:9.4f}  w{s.worker}  {fc.plan.name(s.index)}"
                  for s in sorted(fc.slots, key=lambda s: s.start)]
    return "\n".join(lines)


def _function_table(fc: Forecast) -> str:
    rows: dict[str, list[float]] = {}
    for c in fc.costs:
        row = rows.setdefault(c.function, [0, 0.0, 0.0])
        row[0] += 1
        row[1] += c.time_s
        row[2] += c.output_bytes
    lines = [f"  {'function':<24}{'tasks':>7}{'each ms':>10}{'gap ms':>8}{'total s':>10}"
             f"{'out MB':>10}"]
    for name, (n, total, out) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {name:<24}{n:>7}{total / n * 1e3:>10.2f}"
                     f"{fc.model.gap_s(name) * 1e3:>8.2f}{total:>10.3f}{out / 1e6:>10.1f}")
    return "\n".join(lines)
