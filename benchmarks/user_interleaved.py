"""The user-code workloads with interleaved rounds: each round runs every engine once.

pytest-benchmark times all rounds of one engine, then the next; on a machine
shared with other jobs the load changes between engines and biases their
ratio. Here round ``r`` runs every engine back to back, so a load swing hits
all of them alike; the minimum over rounds is kept, as in the suite. The
output has the shape of a pytest-benchmark JSON, for ``user_ratios.py``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/user_interleaved.py -o inter.json [--rounds 7] [numpy pillow ...]
    python benchmarks/user_ratios.py inter.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import user_code  # noqa: E402


def measure(name: str, rounds: int) -> list[dict]:
    """Benchmarks of one workload, every engine timed once per round after one checked warm-up."""
    workload = user_code.WORKLOADS[name]
    data = workload.make_input()
    expected = workload.graph(user_code.direct, data)
    runs = {e: user_code.runner(e, workload, data) for e in user_code.ENGINES}
    for engine, run in runs.items():
        assert workload.same(run(), expected), f"{name} on {engine} differs from the serial result"
    times: dict[str, list[float]] = {e: [] for e in runs}
    for _ in range(rounds):
        for engine, run in runs.items():
            start = time.perf_counter()
            run()
            times[engine].append(time.perf_counter() - start)
    return [{"name": f"interleaved[{name}-{e}]",
             "extra_info": {"engine": e, "workload": f"user-{name}"},
             "stats": {"min": min(t), "median": statistics.median(t), "rounds": len(t)}}
            for e, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", default=list(user_code.WORKLOADS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    benches = [b for name in args.workloads for b in measure(name, args.rounds)]
    with open(args.output, "w") as f:
        json.dump({"benchmarks": benches, "load_before": load, "load_after": os.getloadavg()[0]}, f)
    print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
