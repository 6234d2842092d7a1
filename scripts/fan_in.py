"""Time a fan-in of N inputs on LocalExecutor(workers=2): building, then running.

    PYTHONPATH=$PWD python scripts/fan_in.py 100000 [rounds]

The machine may be shared: compare against another checkout in the same
session (``PYTHONPATH=<other tree>``), alternating, and quote the best round.
"""

import os
import sys
import time

import fastdag as fd


# Functions of __main__ (sent by value), as in a user's script.
one = fd.task(lambda i: i)
total = fd.task(lambda xs: sum(xs))


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of this process and of ``pids`` so far (less noisy than wall time
    on a shared machine)."""
    total = time.process_time()
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main(n: int, rounds: int) -> None:
    builds, runs, cpus = [], [], []
    with fd.LocalExecutor(workers=2) as ex:
        ex.compute(one(1))
        pids = ex.worker_pids()
        for _ in range(rounds):
            t0 = time.perf_counter()
            node = total([one(i) for i in range(n)])
            t1 = time.perf_counter()
            c1 = cpu_seconds(pids)
            result = ex.compute(node)
            t2 = time.perf_counter()
            cpus.append(cpu_seconds(pids) - c1)
            assert result == n * (n - 1) // 2
            builds.append(t1 - t0)
            runs.append(t2 - t1)
    print(f"n={n}: build best {min(builds):.3f} s, run best {min(runs):.3f} s, "
          f"run CPU (client + workers) best {min(cpus):.2f} s "
          f"(runs: {', '.join(f'{r:.3f}' for r in runs)})")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
