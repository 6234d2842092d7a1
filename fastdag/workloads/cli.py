"""`fastdag demo` and `fastdag run` (placeholder parsers until the workloads land)."""

from __future__ import annotations

import argparse


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build and run a small real workflow")
    p.set_defaults(handler=demo_command)


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one workload")
    p.add_argument("workload")
    p.set_defaults(handler=run_command)


def demo_command(args: argparse.Namespace) -> int:
    import time

    import fastdag as fd

    @fd.task
    def add(x, y):
        return x + y

    level = list(range(4096))
    start = time.perf_counter()
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    total = level[0].compute()
    print(f"tree reduction of 4096 leaves: {total} in {time.perf_counter() - start:.3f} s")
    return 0 if total == sum(range(4096)) else 1


def run_command(args: argparse.Namespace) -> int:
    raise SystemExit(f"unknown workload {args.workload!r}")
