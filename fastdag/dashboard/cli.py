"""``fastdag dashboard SOURCE...``, ``fastdag trace SOURCE -o run.json`` and ``fastdag report``.

    metrics store (Parquet, redis://) ──load_metrics──> RunReports ──> dashboard server (live)
                                                                ──> Chrome trace JSON (trace)
                                                                ──> PNG figures (viz.figures)
                                                                    or report.html (standalone)
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from ..metrics.runs import RunReport

def add_dashboard_parser(sub: argparse._SubParsersAction) -> None:
    """``fastdag dashboard [SOURCE ...] [--host H] [--port P]``."""
    p = sub.add_parser("dashboard", help="serve the web dashboard of stored runs",
                       description="Serve the dashboard of the runs in metrics stores "
                                   "(Parquet files or folders, redis:// URLs), and the live "
                                   "runs of executors made with dashboard='publish:URL', "
                                   "until Ctrl-C.")
    p.add_argument("sources", nargs="*", help="metrics stores to read (default: none)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; "
                   "any other address needs the token printed in the URL)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0: any free)")
    p.set_defaults(handler=dashboard_command)


def add_trace_parser(sub: argparse._SubParsersAction) -> None:
    """``fastdag trace SOURCE [-o run.json] [--run ID]``."""
    description = ("Write one run of a metrics store in the Chrome Trace Event format "
                   "(Perfetto, chrome://tracing): a track per worker, arrows for data moved.")
    p = sub.add_parser("trace", help="export a run as a Chrome trace", description=description)
    p.set_defaults(handler=trace_command)
    p.add_argument("source", help="a Parquet metrics file or folder, or a redis:// URL")
    p.add_argument("-o", "--output", default="run.json", help="file to write (run.json)")
    p.add_argument("--run", default=None, help="run id (default: the latest run)")


def _reports(command: str, sources: list[str]) -> list[RunReport] | int:
    """Every run in ``sources``, oldest first, or the exit code after a one-line error."""
    from ..viz.report import command_error
    from ..metrics.sinks import MetricsError, load_metrics
    reports: list[RunReport] = []
    for source in sources:
        try:
            reports += load_metrics(source)
        except MetricsError as exc:
            return command_error(command, str(exc))
    return sorted(reports, key=lambda r: r.run.start)


def dashboard_command(args: argparse.Namespace) -> int:
    """Serve the stored runs; block until interrupted."""
    from ..viz.report import command_error
    from . import RunStore, serve_store
    reports = _reports("dashboard", args.sources)
    if isinstance(reports, int):
        return reports
    store = RunStore()
    for report in reports:
        store.add_report(report)
    try:
        server = serve_store(store, args.host, args.port)
    except OSError as exc:
        return command_error("dashboard", f"cannot listen on {args.host}:{args.port}: "
                                          f"{exc.strerror}")
    print(f"fastdag dashboard: {server.url} ({len(reports)} runs)", file=sys.stderr, flush=True)
    print(f"fastdag dashboard: show live runs here with "
          f"fd.LocalExecutor(dashboard='publish:{server.url}')", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def trace_command(args: argparse.Namespace) -> int:
    """Write the chosen run (default: the latest) as a Chrome trace."""
    from ..viz.report import command_error
    from .trace import write_trace
    reports = _reports("trace", [args.source])
    if isinstance(reports, int):
        return reports
    chosen = [r for r in reports if args.run in (None, r.run.run_id)]
    if not chosen:
        return command_error("trace", f"no run {args.run!r} in {args.source}")
    report = chosen[-1]
    path = write_trace(report, args.output)
    print(f"wrote {path} (run {report.run.run_id}, {len(report.tasks)} tasks): open it in "
          "https://ui.perfetto.dev or chrome://tracing")
    return 0


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
    p.add_argument("--html", action="store_true", help="write report.html instead (or the "
                   "file -o names when it ends in .html): the dashboard of the run in one "
                   "file that works offline")
    p.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    """Load the metrics, pick the run(s), write the figures; print what was written."""
    from ..viz.report import command_error
    from ..viz.figures import summary_rows, write_report
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
    from .standalone import write_report_html
    return [write_report_html(report, out)]


def _safe(*parts: str) -> str:
    text = "-".join(parts)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
