"""Time a fan-in of N inputs on LocalExecutor(workers=2): building, then running.

    PYTHONPATH=$PWD python scripts/fan_in.py 100000 [rounds]

The machine may be shared: compare against another checkout in the same
session (``PYTHONPATH=<other tree>``), alternating, and quote the best round.
"""

import sys
import time

import fastdag as fd


@fd.task
def one(i):
    return i


@fd.task
def total(xs):
    return sum(xs)


def main(n: int, rounds: int) -> None:
    builds, runs = [], []
    with fd.LocalExecutor(workers=2) as ex:
        ex.compute(one(1))
        for _ in range(rounds):
            t0 = time.perf_counter()
            node = total([one(i) for i in range(n)])
            t1 = time.perf_counter()
            result = ex.compute(node)
            t2 = time.perf_counter()
            assert result == n * (n - 1) // 2
            builds.append(t1 - t0)
            runs.append(t2 - t1)
    print(f"n={n}: build best {min(builds):.3f} s, run best {min(runs):.3f} s "
          f"(rounds: {', '.join(f'{r:.3f}' for r in runs)})")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
