"""``fastdag run WORKLOAD`` and ``fastdag demo``.

``run`` builds one workload's graph, runs it on the chosen executor, runs
the serial reference, and prints wall times, the task count and the check.
Exit codes: 0 the check passed (or was skipped), 1 it failed or a task
raised, 2 bad input (a one-line message, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

EXECUTORS = ("local", "threads", "sync")


def _workload_help() -> str:
    from . import WORKLOADS
    lines = ["workloads (default size; --large size):"]
    for wl in WORKLOADS.values():
        lines.append(f"  {wl.name:<16}{wl.summary}")
        lines.append(f"  {'':<16}--size {wl.default_size}   (--large: {wl.large_size})")
        if wl.input_kind:
            lines.append(f"  {'':<16}--input: {wl.input_kind}")
    lines.append("sizes: a bare number sets the first key; key=value pairs set any key;"
                 " k, M, G suffixes are binary (8MB = 8 * 2**20).")
    return "\n".join(lines)


_WORKLOAD_HELP = "<workloads>"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills in the list of workloads only when help is printed (it imports them all)."""

    def add_text(self, text: str | None) -> None:
        super().add_text(_workload_help() if text == _WORKLOAD_HELP else text)


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where tasks run (default: local worker processes)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes or threads (default: one per core)")


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one workload and check it against its serial reference",
                       description="Run one workload, time it and check its result.",
                       epilog=_WORKLOAD_HELP, formatter_class=_HelpFormatter)
    p.add_argument("workload", help="tree_reduction, gemm, wordcount, image_transform, svd1 or svd2")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", help="problem size, e.g. 'n=2048,block=512' (see below)")
    size.add_argument("--large", action="store_true", help="use the workload's large size")
    p.add_argument("--input", metavar="PATH", help="a file to use instead of generated input")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated input (default 0)")
    p.add_argument("--no-check", action="store_true", help="skip the serial reference")
    p.add_argument("--metrics", metavar="PATH", help="save the run's metrics (a Parquet file "
                   "or folder, or a redis:// URL) for fastdag report / dashboard / trace")
    _add_executor_args(p)
    p.set_defaults(handler=run_command)


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run three small workloads, one by one and then together")
    _add_executor_args(p)
    p.set_defaults(handler=demo_command)


@contextlib.contextmanager
def open_executor(kind: str, workers: int | None) -> Iterator[Any]:
    """The executor named on the command line, shut down on exit."""
    import fastdag as fd
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if kind == "sync":
        ex = fd.SyncExecutor()
    elif kind == "threads":
        ex = fd.ThreadExecutor(workers=workers)
    elif kind == "local":
        ex = fd.LocalExecutor(workers=workers)
    else:
        raise ValueError(f"unknown executor {kind!r}: choose from {', '.join(EXECUTORS)}")
    with ex:
        yield ex


def _noop(i: int) -> int:
    return i


def warm_up(ex: Any) -> float:
    """Start the executor's workers before timing anything; returns the seconds it took.

    A LocalExecutor starts its processes on first use; without this the
    first workload's wall time would include interpreter start-up.
    """
    import fastdag as fd
    start = time.perf_counter()
    task = fd.task(_noop, name="warm_up")
    fd.compute(*[task(i) for i in range(2 * (getattr(ex, "workers", 1) or 1))], executor=ex)
    return time.perf_counter() - start


def _describe(ex: Any) -> str:
    workers = getattr(ex, "workers", None)
    return f"{ex.name}, {workers} workers" if workers else ex.name


def _error(message: str) -> int:
    print(f"fastdag: error: {message}", file=sys.stderr)
    return 2


def run_command(args: argparse.Namespace) -> int:
    from ..core.errors import TaskError
    from . import get
    try:
        wl = get(args.workload)
        size = wl.large_size if args.large else args.size
        params = wl.params(size, seed=args.seed, input=args.input)
        if args.input and wl.input_kind is None:
            raise ValueError(f"{wl.name} generates its input from --seed; it takes no --input")
        with open_executor(args.executor, args.workers) as ex:
            print(f"pool       {_describe(ex)}, ready in {warm_up(ex):.3f} s")
            ex.metrics = args.metrics  # after the warm-up: only the workload's run is saved
            result = run_workload(wl, params, ex, check=not args.no_check)
        if args.metrics:
            print(f"metrics    {args.metrics} (fastdag report / dashboard / trace read it)")
    except ValueError as exc:
        return _error(str(exc))
    except TaskError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"fastdag: task failed: {first}", file=sys.stderr)
        return 1
    return 0 if result["check"] is None or result["check"].ok else 1


def run_workload(wl: Any, params: dict, ex: Any, check: bool = True,
                 out: Any = None) -> dict[str, Any]:
    """Build, run, time and (optionally) check one workload; print a short report.

    Returns the numbers it printed, so the demo and tests can use them.
    """
    import fastdag as fd
    out = out or sys.stdout
    hidden = {"seed", "input", *(wl.generated_keys if params.get("input") else ())}
    shown = ",".join(f"{k}={v}" for k, v in params.items() if k not in hidden)
    t0 = time.perf_counter()
    outputs = wl.build(params)
    nodes = outputs if isinstance(outputs, tuple) else (outputs,)
    dag = fd.DAG(list(nodes))
    t1 = time.perf_counter()
    values = fd.compute(*nodes, executor=ex, name=wl.name)
    t2 = time.perf_counter()
    value = values if isinstance(outputs, tuple) else values[0]
    source = f"input {params['input']}" if params.get("input") else f"seed {params['seed']}"
    print(f"workload   {wl.name}: {wl.summary}", file=out)
    print(f"size       {shown} ({source})", file=out)
    print(f"tasks      {len(dag)} (depth {dag.depth}), graph built in {t1 - t0:.3f} s", file=out)
    print(f"wall time  {t2 - t1:.3f} s", file=out)
    verdict = None
    serial = None
    if check:
        t3 = time.perf_counter()
        expected = wl.reference(params)
        serial = time.perf_counter() - t3
        verdict = wl.check(value, expected)
        print(f"serial     {serial:.3f} s (reference, without fastdag)", file=out)
        print(f"check      {verdict}", file=out)
    else:
        print("check      skipped (--no-check)", file=out)
    return {"tasks": len(dag), "wall": t2 - t1, "serial": serial, "check": verdict}


DEMO_SIZES = {
    "tree_reduction": "leaves=4096",
    "wordcount": "size=4MB,chunk=512k",
    "image_transform": "width=1024,height=1024,tile=256",
}


def demo_command(args: argparse.Namespace) -> int:
    """Three small workloads one after another, then the same three submitted together."""
    from . import get
    if args.workers is not None and args.workers < 1:
        return _error(f"--workers must be at least 1, got {args.workers}")
    ok = True
    with open_executor(args.executor, args.workers) as ex:
        print(f"pool       {_describe(ex)}, ready in {warm_up(ex):.3f} s\n")
        workloads = [(get(name), get(name).params(size)) for name, size in DEMO_SIZES.items()]
        one_by_one = 0.0
        for wl, params in workloads:
            result = run_workload(wl, params, ex)
            ok = ok and result["check"].ok
            one_by_one += result["wall"]
            print()

        built = [(wl, params, wl.build(params)) for wl, params in workloads]
        start = time.perf_counter()
        futures = [node.compute_async(executor=ex) for _, _, node in built]
        values = [f.result() for f in futures]
        together = time.perf_counter() - start
        print(f"one after another: {one_by_one:.3f} s of wall time in total")
        print(f"all three submitted together with compute_async: {together:.3f} s")
        for (wl, params, _), value in zip(built, values):
            verdict = wl.check(value, wl.reference(params))
            ok = ok and verdict.ok
            print(f"  {wl.name:<16}{verdict}")
    return 0 if ok else 1
