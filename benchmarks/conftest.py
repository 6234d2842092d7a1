"""Shared pieces of the benchmark suites: executors that live for the whole session.

fastdag's worker pool and the dask.distributed cluster are started once per
session, and every suite warms up before it times, so neither pays process
start-up in a timed round. Dask's processes scheduler is the exception by
design: by default it starts a new process pool in every ``compute()``, and
that is timed as ``dask-processes``; ``dask-processes-pool`` reuses one pool
(``dask.config.set(pool=...)``) so both forms are visible. Every parallel
engine runs one worker per core with the same BLAS budget (``engines.py``).
``--large`` switches the workload and scaling suites to their large sizes.
At the end of a run the ratio fastdag-local / best peer of every workload is
printed and stored in the benchmark JSON (see ``ratios.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

import fastdag as fd

sys.path.insert(0, os.path.dirname(__file__))  # dask_graphs, memory, ratios: plain modules here

import ratios  # noqa: E402
from engines import PARALLEL, reused_process_pool  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--large", action="store_true", default=False,
                     help="benchmarks: run the large sizes (minutes per workload) instead of the quick ones")


@pytest.fixture(scope="session")
def large(request: pytest.FixtureRequest) -> bool:
    """True when the run asked for the large sizes."""
    return bool(request.config.getoption("--large"))


@pytest.fixture(scope="session")
def fd_local():
    ex = fd.LocalExecutor(workers=PARALLEL)
    yield ex
    ex.shutdown()


@pytest.fixture(scope="session")
def fd_default():
    """The executor ``fd.compute()`` makes when given none (``placement="auto"``)."""
    ex = fd.LocalExecutor(workers=PARALLEL, placement="auto")
    yield ex
    ex.shutdown()


@pytest.fixture(scope="session")
def fd_threads():
    ex = fd.ThreadExecutor(workers=PARALLEL)
    yield ex
    ex.shutdown()


@pytest.fixture(scope="session")
def fd_sync():
    return fd.SyncExecutor()


@pytest.fixture(scope="session")
def dask_client():
    """A ``dask.distributed`` cluster, one single-threaded process per core, closed at the end.

    Created on first use only, so suites that never ask for it do not start it.
    """
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=PARALLEL, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session")
def dask_pool():
    """The process pool ``dask-processes-pool`` reuses: started once, warmed by the first round."""
    pool = reused_process_pool()
    yield pool
    pool.shutdown()


# -- ratios at the end of the run --------------------------------------------------
def _rows(config: pytest.Config) -> list[dict[str, Any]]:
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return []
    return [ratios.row_from_bench(b.as_dict(include_data=False)) for b in session.benchmarks
            if getattr(b, "has_error", False) is False]


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """Store the per-workload ratios in the JSON itself, so plots and reports can read them."""
    rows = [ratios.row_from_bench(b) for b in output_json.get("benchmarks", [])]
    output_json["fastdag_ratios"] = ratios.compute(rows)
    output_json["fastdag_scaling"] = [r for r in rows if any(k in r for k in ratios.SCALING_KEYS)]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = _rows(config)
    table = ratios.compute(rows)
    if table:
        terminalreporter.write_sep("-", "fastdag-local / best peer (medians, same run, same suite and graph)")
        terminalreporter.write_line(ratios.format_table(table))
    scaling = ratios.scaling_table(rows)
    if scaling:
        terminalreporter.write_sep("-", "scaling: per-task cost and peak memory (one extra run each)")
        terminalreporter.write_line(scaling)
