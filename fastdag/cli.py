"""The ``fastdag`` command: demo, run, worker, report, plot-bench, dashboard, trace, plan.

Each subcommand lives with the code it drives; this module only parses the
command line and imports the one it needs. ``fastdag --help`` registers them
all but loads no numpy, pyarrow, redis client or executor (``fastdag`` and
``fastdag.distributed`` import their public names on first use; a test in
``tests/test_cli_run.py`` checks it).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastdag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from .workloads import cli as workloads_cli
    workloads_cli.add_demo_parser(sub)
    workloads_cli.add_run_parser(sub)

    from .dashboard import cli as dashboard_cli
    from .viz import report
    dashboard_cli.add_report_parser(sub)
    report.add_plot_bench_parser(sub)
    dashboard_cli.add_dashboard_parser(sub)
    dashboard_cli.add_trace_parser(sub)

    from .predict import cli as predict_cli
    predict_cli.add_plan_parser(sub)

    if importlib.util.find_spec("redis") is not None:  # distributed mode installed
        from .distributed import cli as worker_cli
        worker_cli.add_worker_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
