"""Two fastdag checkouts and Dask sync on the same user-code workloads, rounds interleaved.

Each engine is a long-lived process (its own checkout on ``PYTHONPATH``) that
runs one round of a workload per line it reads, so one load swing on a shared
machine hits every engine alike; the minimum over rounds is printed as a
Markdown table.

    git worktree add /tmp/before <commit>   # or: git archive <commit> | tar -x -C /tmp/before
    python benchmarks/user_before_after.py /tmp/before . --rounds 7 tree_add tree_once
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

# One engine's process: reads workload names, prints each round's milliseconds.
SERVE = """
import sys, time
import user_code as uc
cache = {}
for line in sys.stdin:
    name = line.strip()
    if name not in cache:
        w = uc.WORKLOADS[name]
        cache[name] = uc.runner(sys.argv[1], w, w.make_input())
        for _ in range(3):
            cache[name]()
    start = time.perf_counter()
    cache[name]()
    print(f"{(time.perf_counter() - start) * 1e3:.3f}", flush=True)
"""


def _engine(engine: str, root: str) -> subprocess.Popen:
    root = os.path.abspath(root)
    path = os.pathsep.join([root, os.path.join(root, "benchmarks")])
    return subprocess.Popen([sys.executable, "-c", SERVE, engine], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("workloads", nargs="+")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    engines = {"before": _engine("fastdag-local", args.before),
               "after": _engine("fastdag-local", args.after),
               "dask-sync": _engine("dask-sync", args.after)}
    times = {k: {w: [] for w in args.workloads} for k in engines}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name in args.workloads:
            for key, proc in engines.items():
                proc.stdin.write(name + "\n")
                proc.stdin.flush()
                times[key][name].append(float(proc.stdout.readline()))
    for proc in engines.values():
        proc.stdin.close()
        proc.wait()
    print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, {time.ctime()}")
    print("| workload | before ms | after ms | Dask sync ms | Dask / before | Dask / after |")
    print("|---|---|---|---|---|---|")
    for name in args.workloads:
        b, a, d = (min(times[k][name]) for k in engines)
        print(f"| {name} | {b:.1f} | {a:.1f} | {d:.1f} | {d / b:.0f}x | {d / a:.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
