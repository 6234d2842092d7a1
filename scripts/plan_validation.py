"""Predicted against measured makespans of the six workloads at 1 and 2 workers.

    PYTHONPATH=$PWD env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python scripts/plan_validation.py [--history-out DIR] [--runs 3]

For each worker count and workload (the benchmarks' quick sizes), on one
LocalExecutor: ``--runs`` pairs of runs, the first of each pair recorded as
history, the second only timed (alternating, so that load from other jobs
that comes and goes falls on both alike); then the forecast
(``fastdag.predict.forecast``, fitted from all the history recorded so far at that
worker count, never from a timed run); the table compares the forecast with
the median timed makespan (submit to result, as
``RunRecord.makespan``); ``spread`` is the slowest measured run over the
fastest, minus one: the noise the error should be read against. Then the forecast for 8, 16 and 64 workers from the
2-worker history (one BLAS thread per worker). ``--history-out`` keeps the
history as Parquet, for ``fastdag plan --history``.

The machine may be shared: print ``uptime`` with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess

import fastdag as fd
from fastdag.predict.forecast import forecast
from fastdag.predict.history import fit
from fastdag.workloads import get

# The quick sizes of benchmarks/test_bench_workloads.py (SIZES), so the numbers match.
QUICK = {
    "tree_reduction": "leaves=4096",
    "gemm": "n=2000,block=500",
    "wordcount": "size=16MB,chunk=2MB",
    "image_transform": "width=4096,height=4096,tile=512",
    "svd1": "rows=100000,cols=200,block=12500",
    "svd2": "n=4000,block=1000,k=5",
}
BIG = (8, 16, 64)


def nodes_of(name: str) -> list:
    wl = get(name)
    built = wl.build(wl.params(QUICK[name]))
    return list(built) if isinstance(built, tuple) else [built]


def run_times(name: str, ex: fd.LocalExecutor, runs: int, sink: fd.MemorySink | None,
              keep: str | None) -> list[float]:
    """Makespans of ``runs`` runs of workload ``name``, each recorded in ``sink`` (and ``keep``)
    unless it is None."""
    spans = []
    for _ in range(runs):
        fd.compute(*nodes_of(name), executor=ex, name=name, metrics=sink)
        report = fd.last_run()
        spans.append(report.run.makespan)
        if keep:
            fd.ParquetSink(keep).write(report)
    return spans


def validate(workers: int, runs: int, keep: str | None) -> tuple[list[tuple], list]:
    """Rows (workload, workers, predicted, measured, error) and the history recorded."""
    rows = []
    history = fd.MemorySink()
    with fd.LocalExecutor(workers=workers) as ex:
        fd.compute(*[fd.task(abs)(-i) for i in range(2 * workers)], executor=ex)  # start workers
        for name in QUICK:
            spans = []
            for _ in range(runs):
                run_times(name, ex, 1, history, keep)
                spans += run_times(name, ex, 1, None, None)
            predicted = forecast(nodes_of(name), workers, fit(history.read(), workers)).makespan
            measured = statistics.median(spans)
            rows.append((name, workers, predicted, measured, predicted / measured - 1))
            print(f"{name:<16}{workers:>3}{predicted:>11.3f}{measured:>11.3f}"
                  f"{rows[-1][-1]:>+9.0%}{max(spans) / min(spans) - 1:>9.0%}", flush=True)
    return rows, history.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="history runs, then measured runs")
    parser.add_argument("--history-out", default=None, help="also save the history here")
    args = parser.parse_args()
    if args.history_out:
        os.makedirs(args.history_out, exist_ok=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"{'workload':<16}{'w':>3}{'predicted':>11}{'measured':>11}{'error':>9}{'spread':>9}")
    rows, history = [], []
    for workers in (1, 2):
        more_rows, more_history = validate(workers, args.runs, args.history_out)
        rows += more_rows
        history += more_history
    worst = max(abs(r[-1]) for r in rows)
    print(f"worst error {worst:.0%}; within 20%: {sum(abs(r[-1]) <= 0.2 for r in rows)}"
          f" of {len(rows)}")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("\nforecast from the 2-worker history (s):")
    print(f"{'workload':<16}" + "".join(f"{n:>9}w" for n in BIG) + f"{'crit. path':>12}")
    for name in QUICK:
        spans = [forecast(nodes_of(name), n, fit(history, n)) for n in BIG]
        print(f"{name:<16}" + "".join(f"{f.makespan:>10.3f}" for f in spans)
              + f"{spans[-1].critical_path_s():>12.3f}")


if __name__ == "__main__":
    main()
