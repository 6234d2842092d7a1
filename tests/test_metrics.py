"""Metrics: complete and consistent per task and per run, on every executor; sinks round-trip."""

from __future__ import annotations

import io
import time

import numpy as np
import pyarrow as pa
import pytest

import fastdag as fd
from fastdag.metrics import monitor, progress, runs as metrics, tracking
from fastdag.metrics.sinkwriter import flush
from fastdag.metrics.sinks import MemorySink, MetricsError, ParquetSink, RedisSink, load_metrics
from fastdag.metrics.tables import TASK_SCHEMA

N = 1000  # float64 elements: 8,000 bytes per array


@fd.task
def zeros(n):
    return np.zeros(n)


@fd.task
def ones(n):
    return np.ones(n)


@fd.task
def add(a, b):
    return a + b


@fd.task
def total(a):
    return float(a.sum())


def small_dag():
    """zeros, ones -> add -> total: two leaves, a fan-in, a scalar sink."""
    return total(add(zeros(N), ones(N)))


def as_dict(report):
    return {t.function: t for t in report.tasks}


def test_known_dag_metrics_complete_and_consistent(executor):
    node = small_dag()
    before = time.time()
    assert executor.compute(node, name="small") == float(N)
    after = time.time()
    report = tracking.last_run()
    run = report.run
    assert (run.workflow, run.executor, run.tasks) == ("small", executor.name, 4)
    assert before <= run.start <= after and 0 < run.makespan <= after - before
    assert run.settings == executor.settings()
    assert run.peak_memory > 10 * 2**20  # tens of MiB; that it is the workers': see below

    tasks = report.tasks
    assert sorted(t.task_key for t in tasks) == sorted(n.name for n in node.dag.nodes)
    by_fn = as_dict(report)
    assert set(by_fn) == {"zeros", "ones", "add", "total"}
    for t in tasks:
        assert t.run_id == run.run_id
        assert t.end >= t.start >= run.start - 1e-3
        assert t.end <= run.start + run.makespan + 1e-3
        assert 0 <= t.exec_s <= t.end - t.start + 1e-9
        assert t.fetch_s >= 0 and t.store_s >= 0 and t.queued_s >= 0
        assert t.retries == 0
        assert t.worker.startswith(metrics.HOST + ":")
    assert by_fn["zeros"].output_bytes == by_fn["ones"].output_bytes == 8 * N
    assert by_fn["zeros"].input_bytes == 0
    assert by_fn["add"].output_bytes == 8 * N
    # An input fetched from another worker of the LocalExecutor is counted at
    # its stored (serialized) size: the data plus a pickle header.
    slack = 512 if executor.name == "local" else 0
    assert 16 * N <= by_fn["add"].input_bytes <= 16 * N + 2 * slack
    assert 8 * N <= by_fn["total"].input_bytes <= 8 * N + slack
    # The graph is recorded, so the critical path ends at the sink.
    assert by_fn["add"].deps and by_fn["total"].deps == (by_fn["add"].index,)
    path = report.critical_path()
    assert [t.function for t in path][-2:] == ["add", "total"]
    assert path[0].function in ("zeros", "ones")


def test_last_run_is_exported_by_the_package():
    assert fd.last_run is tracking.last_run


def test_arrow_table_matches_dataclasses(executor):
    executor.compute(small_dag())
    report = tracking.last_run()
    table = report.to_arrow()
    assert table.schema.remove_metadata() == TASK_SCHEMA
    rows = {r["task_key"]: r for r in table.to_pylist()}
    for t in report.tasks:
        row = rows[t.task_key]
        for name in TASK_SCHEMA.names:
            expected = getattr(t, name)
            value = tuple(row[name]) if name == "deps" else row[name]
            assert value == pytest.approx(expected), name


def test_retries_are_counted():
    calls = []

    @fd.task(retries=2)
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return 1

    fd.SyncExecutor().compute(flaky())
    (task,) = tracking.last_run().tasks
    assert task.retries == 2


def test_memory_sink_option_and_executor_attribute(executor):
    sink = MemorySink()
    executor.compute(small_dag(), metrics=sink)
    assert len(sink.reports) == 1 and sink.reports[0] is tracking.last_run()

    other = MemorySink()
    ex = fd.SyncExecutor()
    ex.metrics = other  # an executor-level default
    ex.compute(small_dag())
    ex.compute(small_dag(), metrics=False)  # per call, False overrides the default
    assert len(other.reports) == 1


def test_metrics_false_writes_nothing_and_bad_sink_is_refused(tmp_path):
    ex = fd.SyncExecutor()
    ex.compute(small_dag(), metrics=False)
    assert tracking.last_run().run.tasks == 4
    with pytest.raises(TypeError, match="metrics="):
        ex.compute(small_dag(), metrics=42)


def test_parquet_file_round_trip_and_append(executor, tmp_path):
    path = tmp_path / "runs.parquet"
    executor.compute(small_dag(), metrics=str(path), name="first")
    first = tracking.last_run()
    executor.compute(small_dag(), metrics=path, name="second")
    second = tracking.last_run()
    loaded = load_metrics(path)
    assert [r.run for r in loaded] == [first.run, second.run]
    for got, want in zip(loaded, (first, second)):
        key = lambda t: t.task_key  # noqa: E731
        assert sorted(got.tasks, key=key) == sorted(want.tasks, key=key)
    # Plain pyarrow reads the task rows too.
    import pyarrow.parquet as pq
    assert pq.read_table(path).num_rows == 8


def test_parquet_directory_sink(tmp_path):
    ex = fd.ThreadExecutor(workers=2)
    try:
        for k in range(3):
            ex.compute(small_dag(), metrics=tmp_path / "runs", name=f"r{k}")
    finally:
        ex.shutdown()
    # One file per run, as the README says, complete when shutdown() returned.
    files = sorted((tmp_path / "runs").glob("*.parquet"))
    assert len(files) == 3
    runs = [r.run for r in ParquetSink(tmp_path / "runs").read()]
    assert [f.name for f in files] == [f"run-{r.start:.6f}-{r.run_id}.parquet" for r in runs]
    assert [r.run.workflow for r in ParquetSink(tmp_path / "runs").read()] == ["r0", "r1", "r2"]


@pytest.mark.parametrize("content", [b"", b"not parquet at all", None])
def test_unreadable_metrics_raise_metrics_error(tmp_path, content):
    path = tmp_path / "m.parquet"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MetricsError, match="m.parquet"):
        load_metrics(path)


def test_parquet_without_fastdag_records_is_refused(tmp_path):
    import pyarrow.parquet as pq
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    with pytest.raises(MetricsError, match="no fastdag run records"):
        load_metrics(path)


@pytest.mark.redis
def test_redis_sink_round_trip_one_transaction_per_run(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.config_resetstat()
    ex = fd.ThreadExecutor(workers=2)
    try:
        level = [zeros(10) for _ in range(32)]
        while len(level) > 1:
            level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        ex.compute(level[0], metrics=redis_server.url, name="tree")
        report = tracking.last_run()
        flush()
        stats = client.info("commandstats")
        # 63 tasks, yet one MULTI/EXEC with two SETs and one ZADD.
        assert stats["cmdstat_exec"]["calls"] == 1
        assert stats["cmdstat_set"]["calls"] == 2
        loaded = RedisSink(redis_server.url).read()
        assert [r.run for r in loaded] == [report.run]
        key = lambda t: t.task_key  # noqa: E731
        assert sorted(loaded[0].tasks, key=key) == sorted(report.tasks, key=key)
        assert load_metrics(redis_server.url)[0].run == report.run
    finally:
        ex.shutdown()
        client.close()


@pytest.mark.redis
def test_redis_unreachable_is_a_metrics_error(redis_server):
    url = redis_server.url
    redis_server.stop()
    with pytest.raises(MetricsError, match="cannot read metrics"):
        load_metrics(url)


@fd.task
def hold(n):
    a = np.ones(n)  # touched: resident
    time.sleep(0.5)  # several sampling intervals
    return float(a[-1])


def test_peak_memory_sees_a_large_array_held_during_the_run(executor):
    """The peak is the workers' memory: 64 MiB held in a task shows, on every executor.

    Compared with the same run holding nothing, so a monitor that sampled the
    driver instead of the LocalExecutor's worker processes sees no difference.
    """
    executor.compute(hold(1))
    idle = tracking.last_run().run.peak_memory
    executor.compute(hold(8 * 2**20))  # 64 MiB
    busy = tracking.last_run().run.peak_memory
    assert 48 * 2**20 <= busy - idle <= 100 * 2**20, (idle, busy)


def test_progress_format_and_terminal_detection():
    line = progress.format_progress(progress.RunProgress("tree", 1024, 4095, 3.25))
    assert "1024/4095 tasks" in line and "25%" in line and "3.2 s" in line
    assert progress.wants_progress(None, io.StringIO()) is False
    assert progress.wants_progress(False, io.StringIO()) is False
    assert progress.wants_progress(True, io.StringIO()) is True


def test_long_run_draws_progress_only_when_asked(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(monitor._MONITOR, "line", progress.ProgressLine(out))

    @fd.task
    def nap(i):
        time.sleep(0.12)
        return i

    ex = fd.ThreadExecutor(workers=1)
    try:
        ex.compute(*[nap(i) for i in range(10)], progress=False)  # 1.2 s, but not wanted
        assert out.getvalue() == ""
        ex.compute(*[nap(i) for i in range(10)], progress=True, name="naps")
    finally:
        ex.shutdown()
    text = out.getvalue()
    assert "naps [" in text and "/10 tasks" in text
    assert "10/10 tasks 100%" in text.splitlines()[-1] and text.endswith("\n")


@pytest.mark.parametrize("kind", ["sync", "local"])
def test_tracking_leaves_no_reference_cycle_holding_the_result(kind, local_executor):
    import gc
    import weakref

    ex = fd.SyncExecutor() if kind == "sync" else local_executor
    ex.compute(small_dag())
    gc.collect()
    gc.disable()
    try:
        future = ex.submit(small_dag(), metrics=MemorySink())
        future.result()
        time.sleep(0.05)  # let the scheduler thread drop its own references
        ref = weakref.ref(future)
        del future
        assert ref() is None
    finally:
        gc.enable()


def test_critical_path_follows_the_input_that_arrived_last():
    def rec(i, start, end, deps=()):
        return metrics.TaskRecord(run_id="r", task_key=f"t-{i}", function="f",
                                  worker=f"h:{1 + i % 2}",
                                  start=start, end=end, exec_s=end - start, input_bytes=0,
                                  output_bytes=0, fetch_s=0.0, store_s=0.0, queued_s=0.0,
                                  retries=0, index=i, deps=tuple(deps))
    # 0 -> 2 -> 4 and 1 -> 3 -> 4: the branch through 1 and 3 ends later.
    tasks = [rec(0, 0.0, 1.0), rec(1, 0.0, 2.0), rec(2, 1.0, 2.0, [0]),
             rec(3, 2.0, 4.0, [1]), rec(4, 4.0, 5.0, [2, 3])]
    report = metrics.RunReport(run=metrics.RunRecord("r", "", "sync", {}, 0.0, 5.0, 5),
                               _tasks=tasks)
    assert [t.index for t in report.critical_path()] == [1, 3, 4]
    s = report.summary()
    assert s["tasks"] == 5 and s["workers"] == 2
    assert s["busy_s"] == pytest.approx(7.0) and s["utilisation"] == pytest.approx(0.7)
