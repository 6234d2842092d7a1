"""The README's stand-alone figures, each measured here (medians of a few repeats).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/readme_figures.py [--mb 256]

* ``hash`` vs ``copy``: BLAKE3 of an array (how the constant cache names
  it) against writing it into a new /dev/shm segment (what a cache miss
  costs), both in GB/s.
* ``build``, ``plan``, ``per task``: building a 4,096-leaf tree of tiny
  tasks, planning it, and the mean time one such task occupies a worker
  (its metrics record, end - start) on a LocalExecutor.
* ``per flop``: GEMM's blocked form (single-threaded BLAS on blocks, the
  blocks shared by all cores as fastdag's workers share them) against one
  call on the whole matrices with all cores' BLAS threads.
* ``first touch``: writing into freshly allocated memory (page faults
  included) against writing into memory already touched, in GB/s.

Run on a machine shared with other jobs, absolute figures move with the
load; the ratios within one run move less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

import fastdag as fd
from fastdag.core.plan import build_plan
from fastdag.store.constants import content_hash
from fastdag.store.shm import SharedMemoryStore
from fastdag.workloads import tree_reduction

REPEATS = 5
CORES = os.cpu_count() or 1


def median_time(run: Callable[[], object], setup: Callable[[], object] | None = None) -> float:
    """Median wall time of ``run`` over REPEATS calls (``setup`` untimed before each)."""
    times = []
    for _ in range(REPEATS):
        if setup is not None:
            setup()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hash_vs_copy(nbytes: int) -> str:
    array = np.random.default_rng(0).random(nbytes // 8)
    store = SharedMemoryStore(f"fastdag-figures-{os.getpid()}")
    refs = []
    t_hash = median_time(lambda: content_hash(array))
    t_copy = median_time(lambda: refs.append(store.put("x", array)))
    for ref in refs:
        store.delete(ref)
    gb = array.nbytes / 1e9
    return (f"hash   BLAKE3 {gb / t_hash:6.2f} GB/s   copy into new /dev/shm segment "
            f"{gb / t_copy:6.2f} GB/s   ({array.nbytes >> 20} MiB)")


def graph_costs(leaves: int = 4096) -> str:
    values = tree_reduction.leaves(leaves)
    t_build = median_time(lambda: tree_reduction.build(values))
    node = tree_reduction.build(values)
    t_plan = median_time(lambda: build_plan(node.dag))
    per_task = []
    with fd.LocalExecutor(workers=CORES) as ex:
        node.compute(executor=ex)  # workers started outside the measurement
        for _ in range(REPEATS):
            node.compute(executor=ex)
            tasks = fd.last_run().tasks
            per_task.append(statistics.fmean(t.end - t.start for t in tasks))
    return (f"build  {leaves}-leaf tree {t_build * 1e3:6.2f} ms   plan {t_plan * 1e3:6.2f} ms   "
            f"per task in a worker {statistics.median(per_task) * 1e6:5.2f} us")


def per_flop(n: int, block: int) -> str:
    rng = np.random.default_rng(1)
    a, b = rng.random((n, n)), rng.random((n, n))
    x, y = a[:block, :block].copy(), b[:block, :block].copy()
    products = (n // block) ** 3
    with threadpool_limits(1):
        t_block = median_time(lambda: x @ y)
    with threadpool_limits(CORES):
        t_whole = median_time(lambda: a @ b)
    blocked = t_block * products / CORES   # the blocks spread over every core
    return (f"GEMM   {n}^2 as {products} blocks of {block} on 1 BLAS thread each, over "
            f"{CORES} cores: {blocked:6.3f} s; one call on {CORES} threads: {t_whole:6.3f} s; "
            f"per flop {blocked / t_whole:4.2f}x")


def first_touch(nbytes: int) -> str:
    count = nbytes // 8
    touched = np.ones(count)
    t_fresh = median_time(lambda: np.empty(count).fill(2.0))
    t_again = median_time(lambda: touched.fill(2.0))
    gb = nbytes / 1e9
    return (f"write  fresh memory {gb / t_fresh:6.2f} GB/s (first touch)   touched memory "
            f"{gb / t_again:6.2f} GB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256, help="array size for hash/copy/write")
    parser.add_argument("--gemm", type=int, default=2000, help="GEMM size (blocks of n/4)")
    args = parser.parse_args()
    nbytes = args.mb << 20
    print(hash_vs_copy(nbytes))
    print(graph_costs())
    print(per_flop(args.gemm, args.gemm // 4))
    print(first_touch(nbytes))


if __name__ == "__main__":
    main()
