"""What every engine of the benchmarks is given: the same workers and the same BLAS budget.

Parallel engines (fastdag local and threads, Dask threads, processes and
distributed) run ``PARALLEL`` = one worker per core, and every worker gets
``cores // PARALLEL`` BLAS threads, so no engine oversubscribes the cores
and none gets more BLAS threads than another: fastdag's LocalExecutor does
this itself, dask.distributed's nanny pins one thread, and for the others
``blas_budget`` limits BLAS in this process (threadpoolctl) and in the
processes it starts (the environment and the pool initializer). Engines
that run one task at a time (sync schedulers, the serial reference, numpy's
single call) get every core's BLAS threads.

Two forms of Dask's processes scheduler are timed:

* ``dask-processes``: the default, a new process pool for every
  ``compute()`` (start-up paid each round, as a Dask user pays it);
* ``dask-processes-pool``: one pool made once per session and handed to
  Dask with ``dask.config.set(pool=...)``, so no round pays start-up,
  like fastdag's persistent workers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

CORES = os.cpu_count() or 1
PARALLEL = CORES
SERIAL_ENGINES = frozenset({"fastdag-sync", "dask-sync", "dask-array-sync", "serial", "numpy"})
_BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def blas_threads_for(engine: str) -> int:
    """BLAS threads per worker of ``engine``: all cores when it runs one task at a time."""
    return CORES if engine in SERIAL_ENGINES else max(1, CORES // PARALLEL)


def _limit_blas(threads: int) -> None:
    """Pool initializer: cap BLAS in a worker process (kept for its lifetime)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)


@contextlib.contextmanager
def blas_budget(engine: str) -> Iterator[int]:
    """Run ``engine``'s rounds with its BLAS budget, here and in processes started meanwhile."""
    import dask
    from threadpoolctl import threadpool_limits
    threads = blas_threads_for(engine)
    saved = {var: os.environ.get(var) for var in _BLAS_VARS}
    os.environ.update({var: str(threads) for var in _BLAS_VARS})
    # A fresh Dask process pool runs this initializer; a reused one has its own.
    fresh_pools = {} if engine.endswith("-pool") else {
        "multiprocessing.initializer": partial(_limit_blas, threads)}
    try:
        with threadpool_limits(threads), dask.config.set(fresh_pools):
            yield threads
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def reused_process_pool() -> ProcessPoolExecutor:
    """The process pool of ``dask-processes-pool``: Dask's context, BLAS capped, made once."""
    from dask.multiprocessing import get_context, initialize_worker_process
    initializer = partial(initialize_worker_process,
                          user_initializer=partial(_limit_blas, blas_threads_for("dask-processes")))
    return ProcessPoolExecutor(PARALLEL, mp_context=get_context(), initializer=initializer)


def dask_scheduler(engine: str, pool: Any = None) -> contextlib.AbstractContextManager:
    """The Dask configuration ``engine`` runs under (the reused pool for ``-pool``)."""
    import dask
    if engine.endswith("-processes-pool"):
        return dask.config.set(pool=pool, num_workers=PARALLEL)
    return dask.config.set(num_workers=PARALLEL)
