"""``fastdag dashboard SOURCE...`` and ``fastdag trace SOURCE -o run.json``."""

from __future__ import annotations

import argparse
import sys
import threading

from ..metrics import RunReport

EXIT_BAD_INPUT = 2


def add_dashboard_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the web dashboard of stored runs",
                       description="Serve the dashboard of the runs in metrics stores "
                                   "(Parquet files or folders, redis:// URLs) until Ctrl-C.")
    p.add_argument("sources", nargs="*", help="metrics stores to read (default: none)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; "
                   "any other address needs the token printed in the URL)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0: any free)")
    p.set_defaults(handler=dashboard_command)


def add_trace_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="export a run as a Chrome trace (Perfetto)",
                       description="Write one run of a metrics store in the Chrome Trace "
                                   "Event format: a track per worker, arrows for data moved.")
    p.add_argument("source", help="a Parquet metrics file or folder, or a redis:// URL")
    p.add_argument("-o", "--output", default="run.json", help="file to write (run.json)")
    p.add_argument("--run", default=None, help="run id (default: the latest run)")
    p.set_defaults(handler=trace_command)


def _error(command: str, message: str) -> int:
    print(f"fastdag {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _load(sources: list[str]) -> list[RunReport]:
    from ..sinks import load_metrics
    reports: list[RunReport] = []
    for source in sources:
        reports += load_metrics(source)
    return reports


def dashboard_command(args: argparse.Namespace) -> int:
    """Serve the stored runs; block until interrupted."""
    from ..sinks import MetricsError
    from . import RunStore, serve_store
    try:
        reports = _load(args.sources)
    except MetricsError as exc:
        return _error("dashboard", str(exc))
    store = RunStore()
    for report in sorted(reports, key=lambda r: r.run.start):
        store.add_report(report)
    try:
        server = serve_store(store, args.host, args.port)
    except OSError as exc:
        return _error("dashboard", f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
    print(f"fastdag dashboard: {server.url} ({len(reports)} runs)", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def trace_command(args: argparse.Namespace) -> int:
    from ..sinks import MetricsError
    from .trace import write_trace
    try:
        reports = _load([args.source])
    except MetricsError as exc:
        return _error("trace", str(exc))
    if args.run is None:
        report = reports[-1]
    else:
        found = [r for r in reports if r.run.run_id == args.run]
        if not found:
            return _error("trace", f"no run {args.run!r} in {args.source}")
        report = found[0]
    path = write_trace(report, args.output)
    print(f"wrote {path} (run {report.run.run_id}, {len(report.tasks)} tasks): open it in "
          "https://ui.perfetto.dev or chrome://tracing")
    return 0
