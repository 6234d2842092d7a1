"""Metrics are on disk when the executor that produced them shuts down (issue 17).

The Parquet and Redis sinks are written by a background thread after
``compute()`` returns; ``shutdown()`` (and so the end of a ``with`` block)
waits for the writes of the executor's runs, a failed write warns once and
``fd.flush_metrics()`` raises it, and ``fd.load_metrics`` reads it all back.
"""

from __future__ import annotations

import logging
import threading
import warnings

import pyarrow.parquet as pq
import pytest

import fastdag as fd
from fastdag.metrics import sinks, sinkwriter
from fastdag.metrics.runs import RunReport

from conftest import free_port


@fd.task
def inc(x):
    return x + 1


def chain(n: int = 5) -> fd.Node:
    node = inc(0)
    for _ in range(n - 1):
        node = inc(node)
    return node


class SlowSink:
    """A background sink whose writes take ``delay`` s, or until ``gate`` is set."""

    background = True

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None):
        self.delay = delay
        self.gate = gate
        self.reports: list[RunReport] = []

    def write(self, report: RunReport) -> None:
        if self.gate is not None:
            self.gate.wait(60)
        else:
            threading.Event().wait(self.delay)
        self.reports.append(report)


def make_executor(kind: str) -> fd.Executor:
    return {"sync": fd.SyncExecutor, "threads": lambda: fd.ThreadExecutor(workers=2),
            "local": lambda: fd.LocalExecutor(workers=2)}[kind]()


def test_parquet_file_is_complete_right_after_the_with_block(tmp_path):
    path = tmp_path / "runs.parquet"
    with fd.LocalExecutor(workers=2) as ex:
        assert ex.compute(chain(), metrics=path, name="first") == 5
        assert ex.compute(chain(3), metrics=path, name="second") == 3
    # Plain pyarrow, which does not wait for fastdag's writer: 5 + 3 task rows.
    assert pq.read_table(path).num_rows == 8


@pytest.mark.parametrize("kind", ["sync", "threads", "local"])
def test_shutdown_waits_for_slow_metrics_writes(kind):
    sink = SlowSink(delay=0.5)
    with make_executor(kind) as ex:
        ex.compute(chain(), metrics=sink)
        ex.compute(chain(), metrics=sink)
    assert len(sink.reports) == 2


def test_shutdown_timeout_is_logged(monkeypatch, caplog):
    gate = threading.Event()
    sink = SlowSink(gate=gate)
    monkeypatch.setattr(sinkwriter, "SHUTDOWN_WAIT", 0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="fastdag"):
            with fd.ThreadExecutor(workers=1) as ex:
                ex.compute(chain(), metrics=sink)
        assert sink.reports == []
        assert "gave up waiting after 0.3 s for the metrics of ThreadExecutor" in caplog.text
    finally:
        gate.set()
        assert sinkwriter.flush(timeout=30)
    assert len(sink.reports) == 1


def failing_sinks(tmp_path) -> list[tuple[str, str]]:
    """(spec, text the failure must name) for sinks that cannot be written."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the sink wants a directory")
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    return [(str(blocker / "runs.parquet"), "not-a-dir"),
            (str(blocker / "runs"), "not-a-dir"),
            (dead_redis, dead_redis)]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["parquet-file", "parquet-dir", "redis-down"])
def test_failing_sink_warns_once_and_flush_metrics_raises(tmp_path, which):
    spec, name = failing_sinks(tmp_path)[which]
    fd.flush_metrics()  # start from a clean slate: earlier failures are not ours
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fd.ThreadExecutor(workers=1) as ex:
            ids = []
            for _ in range(3):
                ex.compute(chain(), metrics=spec)
                ids.append(fd.last_run().run.run_id)
                sinkwriter.flush(timeout=30)   # three separate writes, three failures
    ours = [w for w in caught if "could not write the metrics" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert name in str(ours[0].message) and ids[0] in str(ours[0].message)
    with pytest.raises(fd.MetricsWriteError) as info:
        fd.flush_metrics()
    failures = info.value.failures
    assert [run for f in failures for run in f.run_ids] == ids
    assert all(name in f.sink and f.reason for f in failures)
    fd.flush_metrics()  # each failure is raised once


def test_load_metrics_is_exported_and_waits_for_the_writer(tmp_path, monkeypatch):
    assert fd.load_metrics is sinks.load_metrics
    assert {"load_metrics", "flush_metrics", "MetricsWriteError"} <= set(fd.__all__)
    gate = threading.Event()
    path = tmp_path / "runs"
    with fd.ThreadExecutor(workers=1) as ex:
        ex.compute(chain(4), metrics=path, name="exported")
        original = sinks.ParquetSink.write_many

        def gated(self, reports):
            gate.wait(30)
            original(self, reports)

        # load_metrics must wait for the late write, not read what is there.
        monkeypatch.setattr(sinks.ParquetSink, "write_many", gated)
        ex.compute(chain(2), metrics=path, name="late")
        threading.Timer(0.3, gate.set).start()
        reports = fd.load_metrics(path)
    assert [r.run.workflow for r in reports] == ["exported", "late"]
    assert [len(r.tasks) for r in reports] == [4, 2]
