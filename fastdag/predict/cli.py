"""``fastdag plan``: the predicted plan and makespan of a graph, and its text form.

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
from typing import Any


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
    from ..workloads import get
    wl = get(spec)
    return wl.build(wl.params(size))


def plan_command(args: argparse.Namespace) -> int:
    from .forecast import forecast
    from .history import fit, load_history
    from .text import describe
    from ..metrics.sinks import MetricsError
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
