"""Regenerate the committed metrics figures: one real run of each workload.

    python scripts/metrics_figures.py [-o plots/metrics] [--workers 2]

Each workload (``fastdag.workloads.WORKLOADS``, at a small size) runs twice
on a LocalExecutor, the second time with ``metrics=<tmp>/<workload>.parquet``;
its result is checked against the serial reference, then the same code as
``fastdag report`` draws the figures into ``<out>/<workload>/``, next to a
drawing of the graph (``dag.png``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import fastdag as fd
from fastdag.viz.figures import write_report
from fastdag.viz.report import draw_dag
from fastdag.metrics.sinks import load_metrics
from fastdag.workloads import WORKLOADS

# Small sizes: a few seconds each on two cores, yet every stage visible.
SIZES = {
    "tree_reduction": "leaves=1024",
    "gemm": "n=1024,block=256",
    "wordcount": "size=4MB,chunk=512KB",
    "image_transform": "width=1024,height=1024,tile=256",
    "svd1": "rows=40000,cols=50,block=5000",
    "svd2": "n=1000,block=250,k=10",
}


@fd.task
def _noop(i: int) -> int:
    return i


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="plots/metrics")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS))
    args = parser.parse_args(argv)
    out = Path(args.output)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp, fd.LocalExecutor(workers=args.workers) as ex:
        ex.compute(*[_noop(i) for i in range(4 * args.workers)])  # start the workers
        for name in args.workloads:
            wl = WORKLOADS[name]
            params = wl.params(SIZES.get(name))
            built = wl.build(params)
            nodes = list(built) if isinstance(built, (list, tuple)) else [built]
            metrics_path = Path(tmp) / f"{name}.parquet"
            # The first run of a workload makes the workers import its module
            # (hundreds of ms); the figures show the run after it.
            fd.compute(*nodes, executor=ex, metrics=False)
            values = fd.compute(*nodes, executor=ex, metrics=metrics_path, name=name)
            result = values[0] if len(nodes) == 1 else values
            verdict = wl.check(result, wl.reference(params))
            failed += not verdict.ok
            report = load_metrics(metrics_path)[-1]
            paths = write_report(report, out / name)
            draw_dag(fd.DAG(nodes), out / name / "dag.png")
            s = report.summary()
            print(f"{name} ({SIZES.get(name, wl.default_size)}): {verdict}; "
                  f"{s['tasks']} tasks, makespan {s['makespan_s']:.3f} s, "
                  f"utilisation {s['utilisation']:.0%}; {len(paths) + 1} figures in {out / name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
