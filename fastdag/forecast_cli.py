"""``fastdag plan`` and ``fd.plan_report``: a graph's predicted plan and makespan, as text.

    fastdag plan gemm --history runs/ --workers 1 2 8
    fastdag plan mypkg.graphs:build --history runs.parquet --workers 4 --tasks

The graph is a workload ``fastdag run`` knows (at its default size, or
``--size``) or ``module:function``, a function that takes no argument and
returns a Node or a list of Nodes. Exit code 2 with one line on stderr for
bad input (no such workload or function, unreadable history).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the simulator is imported when a plan is asked for, not by fastdag --help
    from .forecast import Forecast
    from .graph import DAG, Node


def add_plan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="predict a graph's plan and makespan from earlier runs",
                       description="Simulate a graph on N workers with per-function costs "
                                   "learnt from saved metrics; print the plan and makespan.")
    p.add_argument("graph", help="a workload name (tree_reduction, gemm, wordcount, "
                   "image_transform, svd1, svd2) or module:function returning nodes")
    p.add_argument("--history", metavar="PATH", default=None,
                   help="metrics of earlier runs (Parquet file or folder, redis:// URL); "
                        "without it every task costs the default")
    p.add_argument("--workers", type=int, nargs="+", default=[2], help="worker counts")
    p.add_argument("--size", default=None, help="workload size, as for fastdag run")
    p.add_argument("--tasks", action="store_true", help="list every task's slot")
    p.set_defaults(handler=plan_command)


def graph_nodes(spec: str, size: str | None = None) -> Any:
    """The nodes of a workload name or of ``module:function`` (see the module docstring)."""
    if ":" in spec:
        module, _, name = spec.partition(":")
        try:
            builder = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load {spec!r}: {exc}") from None
        return builder()
    from .workloads import get
    wl = get(spec)
    return wl.build(wl.params(size))


def plan_report(nodes: Node | Iterable[Node] | DAG, workers: int = 2,
                history: Any = None) -> str:
    """The plan and predicted makespan of ``nodes`` on ``workers`` workers, as text.

    ``history`` as for ``forecast.forecast``: a metrics path or Redis URL, a
    list of RunReports, a fitted CostModel, or None (every task the default).
    """
    from .forecast import forecast
    return describe(forecast(nodes, workers, history))


def plan_command(args: argparse.Namespace) -> int:
    from .forecast import forecast
    from .history import fit, load_history
    from .sinks import MetricsError
    try:
        nodes = graph_nodes(args.graph, args.size)
        runs = load_history(args.history)
        if any(w < 1 for w in args.workers):
            raise ValueError("--workers must be at least 1")
    except (ValueError, MetricsError) as exc:
        print(f"fastdag plan: error: {exc}", file=sys.stderr)
        return 2
    for k, workers in enumerate(args.workers):
        if k:
            print()
        print(describe(forecast(nodes, workers, fit(runs, workers)), tasks=args.tasks))
    return 0


def describe(fc: Forecast, tasks: bool = False) -> str:
    """The forecast as text: the headline, the model's constants, each worker, each function."""
    from .forecast import by_worker
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
