"""Tree reduction and GEMM on a LocalExecutor, two checkouts in turn: is a change slower?

    python benchmarks/before_after_local.py /tmp/before . --samples 5

Each sample is a fresh interpreter with one checkout on its path: it starts a
``LocalExecutor(workers=2)`` (explicit processes, no placement), computes the
workload 7 times and prints the median of the last 5 (warm: workers up, the
constant cache filled). The checkouts take turns, so a load swing on a shared
machine hits both. Make the old checkout with ``git archive REV | tar -x -C DIR``.
Run with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` where those are set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

SAMPLE = r"""
import statistics, sys, time
import fastdag as fd
from fastdag.workloads import gemm, get
which = sys.argv[1]
with fd.LocalExecutor(workers=2) as ex:
    if which == "gemm":
        p = get("gemm").params("n=2000,block=500")
        a, b = gemm.generated_input(p["n"], p["block"], p["seed"])
        build = lambda: gemm.build(a, b, block=p["block"])
    else:
        wl = get("tree_reduction")
        p = wl.params("leaves=4096")
        build = lambda: wl.build(p)
    times = []
    for _ in range(7):
        nodes = build()
        start = time.perf_counter()
        fd.compute(nodes, executor=ex)
        times.append(time.perf_counter() - start)
    print(statistics.median(times[2:]))
"""


def sample(checkout: str, workload: str) -> float:
    """Seconds of one warm compute (median of 5) in a fresh interpreter on ``checkout``."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    out = subprocess.run([sys.executable, "-c", SAMPLE, workload], env=env, check=True,
                         capture_output=True, text=True, timeout=300, cwd=checkout)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--workloads", nargs="+", default=["tree", "gemm"], choices=["tree", "gemm"])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    for workload in args.workloads:
        runs: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.samples):
            for side in ("old", "new"):
                runs[side].append(sample(getattr(args, side), workload))
        old, new = statistics.median(runs["old"]), statistics.median(runs["new"])
        print(f"{workload}: old {old * 1e3:.1f} ms, new {new * 1e3:.1f} ms, new/old {new / old:.2f}"
              f"  (samples ms: old {[round(x * 1e3, 1) for x in runs['old']]},"
              f" new {[round(x * 1e3, 1) for x in runs['new']]})")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
