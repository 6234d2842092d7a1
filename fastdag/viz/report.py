"""The ``fastdag report`` and ``fastdag plot-bench`` commands, and ``draw_dag``.

Only argument handling lives here; the figures are in ``figures.py``
(metrics), ``benchplot.py`` (benchmarks) and ``dagplot.py`` (graphs), and
are imported when a command runs, so ``fastdag --help`` stays quick.

Bad input (a missing, empty or corrupt file, an unknown run) ends with exit
code 2 and one line on stderr, never a traceback: these commands are run by
people looking at files, who need to know which file is wrong and why.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.graph import DAG
    from ..metrics.runs import RunReport

EXIT_BAD_INPUT = 2


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    """``fastdag report METRICS [-o DIR] [--run ID]``."""
    p = sub.add_parser("report", help="draw figures from the metrics of a run",
                       description="Write PNG figures (timeline, time breakdown, sizes, "
                                   "critical path, summary) from metrics saved by "
                                   "compute(..., metrics=PATH).")
    p.add_argument("metrics", help="a Parquet metrics file or directory, or a redis:// URL")
    p.add_argument("-o", "--output", default="plots", help="directory for the PNG files "
                   "(default: plots)")
    p.add_argument("--run", default=None, help="run id to draw (default: the latest run; "
                   "'all': every run, each in its own subdirectory)")
    p.add_argument("--html", action="store_true", help="write report.html instead: the "
                   "dashboard of the run in one file that works offline")
    p.set_defaults(handler=report_command)


def add_plot_bench_parser(sub: argparse._SubParsersAction) -> None:
    """``fastdag plot-bench BENCH.json [-o DIR]``."""
    p = sub.add_parser("plot-bench", help="chart a pytest-benchmark JSON file",
                       description="Compare engines per workload from a file written by "
                                   "pytest --benchmark-json.")
    p.add_argument("bench", help="pytest-benchmark JSON file")
    p.add_argument("-o", "--output", default="plots", help="directory for the PNG "
                   "(default: plots)")
    p.set_defaults(handler=plot_bench_command)


def command_error(command: str, message: str) -> int:
    """Print ``fastdag COMMAND: error: MESSAGE`` on stderr; the exit code for bad input."""
    print(f"fastdag {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def report_command(args: argparse.Namespace) -> int:
    """Load the metrics, pick the run(s), write the figures; print what was written."""
    from .figures import summary_rows, write_report
    from ..metrics.sinks import MetricsError, load_metrics
    try:
        reports = load_metrics(args.metrics)
    except MetricsError as exc:
        return command_error("report", str(exc))
    if args.run in (None, "latest"):
        chosen = [(reports[-1], args.output)]
    elif args.run == "all":
        chosen = [(r, os.path.join(args.output, _safe(r.run.workflow or "run", r.run.run_id)))
                  for r in reports]
    else:
        matches = [r for r in reports if r.run.run_id == args.run]
        if not matches:
            known = ", ".join(r.run.run_id for r in reports[-5:])
            return command_error("report", f"no run {args.run!r} in {args.metrics} "
                                   f"(latest runs: {known})")
        chosen = [(matches[0], args.output)]
    for report, out in chosen:
        paths = _write_html(report, out) if args.html else write_report(report, out)
        width = max(len(k) for k, _ in summary_rows(report))
        for key, value in summary_rows(report):
            print(f"{key:<{width}}  {value}")
        for path in paths:
            print(f"wrote {path}")
    return 0


def _write_html(report: RunReport, out: str) -> list[str]:
    from ..dashboard.standalone import write_report_html
    return [write_report_html(report, out)]


def _safe(*parts: str) -> str:
    text = "-".join(parts)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def plot_bench_command(args: argparse.Namespace) -> int:
    """Chart a pytest-benchmark JSON file; print the PNG path."""
    from .benchplot import BenchFileError, write_bench_chart
    try:
        path = write_bench_chart(args.bench, args.output)
    except BenchFileError as exc:
        return command_error("plot-bench", str(exc))
    print(f"wrote {path}")
    return 0


def draw_dag(dag: DAG, path: str | os.PathLike[str]) -> None:
    """Draw ``dag`` with matplotlib (used by ``DAG.visualize`` without Graphviz)."""
    from .dagplot import draw_dag as _draw
    _draw(dag, path)
