"""The ``fastdag plot-bench`` command, ``command_error`` and ``draw_dag``.

    pytest-benchmark JSON ──plot-bench──> benchplot ──> PNG
    DAG.visualize (no Graphviz) ──core.hooks──> draw_dag ──> dagplot ──> PNG/SVG
    every command's bad input ──> command_error ──> one line on stderr, exit code 2

Only argument handling lives here; the figures are in ``figures.py``
(metrics), ``benchplot.py`` (benchmarks) and ``dagplot.py`` (graphs), and
are imported when a command runs, so ``fastdag --help`` loads no matplotlib.
``fastdag report`` (figures or the offline dashboard) is in ``dashboard/cli.py``.

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

EXIT_BAD_INPUT = 2


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
