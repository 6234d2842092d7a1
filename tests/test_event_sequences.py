"""The same event sequence from every executor kind, for one small graph.

One run where a task fails once and is retried, and whose output is large
enough to travel through shared memory or Redis; one run where a task
fails for good. Every executor (sync, threads, local, Redis, Dask, Ray)
must tell its subscribers, in order per run: RunSubmitted first; each task
started before it finished, on the same worker, its retry in between;
TasksReady only for tasks whose inputs had finished; TaskFailed for the
failing task; RunFinished last. The report ``fd.last_run()`` gives is the
one the run recorder built from those events.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastdag as fd
from fastdag import events as ev
from fastdag.metrics import sinkwriter
from test_engines import dask_executor  # noqa: F401 - the fixture: a two-worker LocalCluster

BIG = 200_000  # bytes of the wanted output: above the inline threshold (64 KiB)


@fd.task
def add(a, b):
    return a + b


@fd.task
def big(n):
    return np.ones(n // 8)


@fd.task(retries=1)
def flaky(marker, x):
    """Fails on its first attempt (in whichever process runs it), then returns ``x``."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return x


@fd.task
def explode(x):
    raise ValueError(f"boom {x}")


def graph(marker: str) -> list[fd.Node]:
    return [add(flaky(marker, 1), add(2, 3)), big(BIG)]


def run_both(ex: fd.executors.base.Executor, marker: str) -> list:
    """The two runs with a subscriber: the events it got."""
    got: list = []
    with ex.subscribe(got.append):
        total, array = ex.compute(*graph(marker))
        assert total == 6 and array.nbytes == BIG
        report = fd.last_run()
        with pytest.raises(fd.TaskError, match="boom 1"):
            add(explode(1), 2).compute(executor=ex)
    first = [e for e in got if e.run_id and isinstance(e, ev.RunSubmitted)][0].run_id
    assert report.run.run_id == first and len(report.tasks) == report.run.tasks == 4
    assert [t.retries for t in report.tasks if t.function == "flaky"] == [1]
    return got


def check_done_run(events: list, moved_via: str | None) -> None:
    """The successful run: the order every executor keeps."""
    assert isinstance(events[0], ev.RunSubmitted) and len(events[0].names) == 4
    assert isinstance(events[-1], ev.RunFinished) and events[-1].state == "done"
    names = events[0].names
    deps = events[0].deps
    at: dict[tuple[str, int], int] = {}
    for k, e in enumerate(events):
        if isinstance(e, (ev.TaskStarted, ev.TaskFinished)):
            assert (type(e).__name__, e.task) not in at, f"{e} twice"
            at[type(e).__name__, e.task] = k
    finished = {e.task: e for e in events if isinstance(e, ev.TaskFinished)}
    assert sorted(finished) == list(range(4))
    for t, e in finished.items():
        start = at["TaskStarted", t]
        assert start < at["TaskFinished", t] and events[start].worker == e.worker
        assert e.start <= e.end
    (retried,) = [e for e in events if isinstance(e, ev.TaskRetried)]
    assert names[retried.task].startswith("flaky-") and retried.attempt == 2
    assert at["TaskStarted", retried.task] < events.index(retried) < at["TaskFinished", retried.task]
    assert finished[retried.task].attempts == 2
    for k, e in enumerate(events):
        if isinstance(e, ev.TasksReady):
            assert all(at["TaskFinished", d] < k for t in e.tasks for d in deps[t])
    moved = [e for e in events if isinstance(e, ev.DataMoved)]
    if moved_via is not None:
        out = next(i for i, n in enumerate(names) if n.startswith("big-"))
        assert any(e.task == out and e.via == moved_via and e.nbytes >= BIG for e in moved)
    assert not any(isinstance(e, ev.TaskFailed) for e in events)


def check_failed_run(events: list) -> None:
    assert isinstance(events[0], ev.RunSubmitted)
    assert isinstance(events[-1], ev.RunFinished) and events[-1].state == "failed"
    (failed,) = [e for e in events if isinstance(e, ev.TaskFailed)]
    assert events[0].names[failed.task].startswith("explode-")
    assert "boom 1" in failed.error and "in explode" in failed.traceback
    assert failed.task not in {e.task for e in events if isinstance(e, ev.TaskFinished)}


def check(got: list, moved_via: str | None) -> None:
    runs: dict[str, list] = {}
    for e in got:
        if e.run_id:
            runs.setdefault(e.run_id, []).append(e)
    done, failed = runs.values()
    check_done_run(done, moved_via)
    check_failed_run(failed)


@pytest.mark.parametrize("kind", ["sync", "threads"])
def test_in_process_executors(kind, tmp_path):
    make = {"sync": fd.SyncExecutor, "threads": lambda: fd.ThreadExecutor(2)}[kind]
    with make() as ex:
        check(run_both(ex, str(tmp_path / "marker")), None)


def test_local_executor(tmp_path):
    with fd.LocalExecutor(2) as ex:
        got: list = []
        with ex.subscribe(got.append):
            ex.compute(add(1, 2))  # the workers start
        got += run_both(ex, str(tmp_path / "marker"))
    assert len([e for e in got if isinstance(e, ev.WorkerStarted)]) == 2
    check([e for e in got if e.run_id not in ("", got[0].run_id)], "shm")


@pytest.mark.redis
def test_redis_executor(redis_server, tmp_path):
    from test_distributed import SECRET, Workers, wait_for_workers
    workers = Workers(redis_server.url)
    ex = fd.RedisExecutor(redis_server.url, secret=SECRET, poll=0.2)
    seen: list = []
    ex.subscribe(seen.append)
    try:
        workers.start(1)
        wait_for_workers(ex, 1)  # a worker's first heartbeat: WorkerStarted
        got = run_both(ex, str(tmp_path / "marker"))
    finally:
        ex.shutdown(wait=False)
        sinkwriter.flush(timeout=10)
        workers.stop()
    check([e for e in got if e.run_id], "redis")
    assert [type(e) for e in seen if not e.run_id][:1] == [ev.WorkerStarted]


def test_dask_executor(dask_executor, tmp_path):
    check(run_both(dask_executor, str(tmp_path / "marker")), None)


def test_ray_executor(tmp_path):
    pytest.importorskip("ray")
    ex = fd.RayExecutor(num_cpus=2, include_dashboard=False)
    try:
        check(run_both(ex, str(tmp_path / "marker")), None)
    finally:
        ex.shutdown()
