"""The event stream (fastdag.events): same typed events from every executor, in order."""

from __future__ import annotations

import threading
import time
from array import array

import pytest

import fastdag as fd
from fastdag import events as ev
from fastdag.metrics import sinkwriter
from fastdag.core.records import END, INDEX, RAW_FIELDS, START


@fd.task
def add(a, b):
    return a + b


@fd.task
def slow_inc(x):
    time.sleep(0.03)
    return x + 1


@fd.task
def explode(x):
    raise ValueError(f"boom {x}")


def tree(n: int) -> fd.Node:
    level = list(range(n))
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.fixture(params=["sync", "threads", "local"])
def executor(request):
    ex = {"sync": fd.SyncExecutor, "threads": lambda: fd.ThreadExecutor(2),
          "local": lambda: fd.LocalExecutor(2)}[request.param]()
    yield ex
    ex.shutdown()


def test_every_task_finishes_once_between_submitted_and_finished(executor):
    got: list = []
    with executor.subscribe(got.append):
        assert tree(64).compute(executor=executor) == 64 * 63 // 2
    runs = [e for e in got if e.run_id]
    assert isinstance(runs[0], ev.RunSubmitted) and len(runs[0].names) == 63
    assert isinstance(runs[-1], ev.RunFinished) and runs[-1].state == "done"
    finished = [e for e in runs if isinstance(e, ev.TaskFinished)]
    assert sorted(e.task for e in finished) == list(range(63))
    started = {e.task: e for e in runs if isinstance(e, ev.TaskStarted)}
    assert set(started) == set(range(63))
    for e in finished:  # a task's start comes before its end, on the same worker
        assert runs.index(started[e.task]) < runs.index(e)
        assert started[e.task].worker == e.worker and e.start <= e.end


def test_failure_carries_the_traceback(executor):
    got: list = []
    executor.subscribe(got.append)
    with pytest.raises(fd.TaskError):
        add(explode(1), 2).compute(executor=executor)
    failed = [e for e in got if isinstance(e, ev.TaskFailed)]
    assert len(failed) == 1 and "boom 1" in failed[0].error
    assert "in explode" in failed[0].traceback
    assert got[-1] == ev.RunFinished(got[-1].run_id, got[-1].time, "failed",
                                     got[-1].makespan, got[-1].error)


def test_unsubscribe_stops_delivery_and_a_raising_subscriber_is_dropped():
    ex = fd.SyncExecutor()
    got: list = []
    sub = ex.subscribe(got.append)

    def broken(event):
        raise RuntimeError("viewer bug")

    ex.subscribe(broken)
    with pytest.warns(RuntimeWarning, match="viewer bug"):
        assert tree(4).compute(executor=ex) == 6
    n = len(got)
    assert n and not any(b is broken for b, _ in ex.event_bus._subscribers)
    sub.unsubscribe()
    assert not ex.event_bus.watched  # only the run recorder is left
    tree(4).compute(executor=ex)
    assert len(got) == n


def test_batched_subscriber_gets_raw_records_from_local_workers():
    with fd.LocalExecutor(1) as ex:
        got: list = []
        ex.subscribe(got.append, batched=True)
        assert tree(32).compute(executor=ex) == 32 * 31 // 2
    batches = [e for e in got if isinstance(e, ev.TaskBatch)]
    assert batches and not any(isinstance(e, ev.TaskFinished) for e in got)
    tasks = sorted(int(t.task) for b in batches for t in b.expand()
                   if isinstance(t, ev.TaskFinished))
    assert tasks == list(range(31))
    assert any(isinstance(e, ev.WorkerStarted) for e in got)


def test_a_long_batch_reports_while_it_runs():
    """One worker runs a 20-task chain of 30 ms tasks in one batch: the
    events come in several pieces before the run ends, not all at the end."""
    node = 0
    for _ in range(20):
        node = slow_inc(node)
    with fd.LocalExecutor(1) as ex:
        got: list = []
        ex.subscribe(got.append, batched=True)
        assert node.compute(executor=ex) == 20
    batches = [e for e in got if isinstance(e, ev.TaskBatch)]
    assert len(batches) >= 3
    assert sum(len(b.records) for b in batches) == 20 * len(RAW_FIELDS)


@pytest.mark.redis
def test_redis_executor_emits_the_same_events(redis_server):
    from test_distributed import executor_with_one_worker
    got: list = []
    with executor_with_one_worker(redis_server.url, poll=0.2) as ex:
        ex.subscribe(got.append)
        assert tree(16).compute(executor=ex) == 16 * 15 // 2
        with pytest.raises(fd.TaskError):
            explode(3).compute(executor=ex)
    kinds = [type(e).__name__ for e in got]
    assert kinds[0] == "RunSubmitted" and kinds.count("RunFinished") == 2
    first = got[0].run_id
    assert sorted(e.task for e in got if isinstance(e, ev.TaskFinished) and e.run_id == first) \
        == list(range(15))
    failed = [e for e in got if isinstance(e, ev.TaskFailed)]
    assert len(failed) == 1 and "in explode" in failed[0].traceback
    assert got[-1].state == "failed"


@pytest.mark.redis
def test_redis_executor_serves_the_dashboard(redis_server):
    import json
    import urllib.request
    from test_distributed import SECRET, Workers, wait_for_workers
    workers = Workers(redis_server.url)
    ex = fd.RedisExecutor(redis_server.url, secret=SECRET, poll=0.2, dashboard=True)
    try:
        workers.start(1)
        wait_for_workers(ex, 1)
        assert tree(8).compute(executor=ex, name="over-redis") == 28
        with urllib.request.urlopen(ex.dashboard_url + "api/runs", timeout=30) as r:
            runs = json.load(r)["runs"]
    finally:
        ex.shutdown(wait=False)
        sinkwriter.flush(timeout=10)  # the runs' metrics reach Redis before it stops
        workers.stop()
    assert [(r["name"], r["state"], r["done"], r["executor"]) for r in runs] == \
        [("over-redis", "done", 7, "redis")]


@pytest.mark.parametrize("make", [fd.SyncExecutor, lambda: fd.ThreadExecutor(2)],
                         ids=["sync", "threads"])  # local workers: TaskBatch.expand, below
def test_a_retried_task_says_so(make):
    tries = []

    @fd.task(retries=2)
    def flaky(x):
        tries.append(x)
        if len(tries) < 3:
            raise RuntimeError("not yet")
        return x

    got: list = []
    with make() as executor, executor.subscribe(got.append):
        assert flaky(5).compute(executor=executor) == 5
    retried = [e for e in got if isinstance(e, ev.TaskRetried)]
    assert [e.attempt for e in retried] == [2, 3]
    finished = [e for e in got if isinstance(e, ev.TaskFinished)]
    assert finished[0].attempts == 3 and got.index(retried[-1]) < got.index(finished[0])


def test_expand_gives_retries_of_a_record():
    record = (4, 10.0, 11.0, 0.0, 0.0, 8, 16, 2, 9.5)
    events = list(ev.TaskBatch("r", 11.0, "w", record).expand())
    assert [type(e).__name__ for e in events] == ["TaskStarted", "TaskRetried", "TaskFinished"]
    assert events[2].input_bytes == 8 and events[2].ready == 9.5


def test_a_plain_subscriber_never_holds_up_a_run_but_result_waits_for_it():
    """Plain subscribers are called by the bus's thread: a run whose subscriber
    is stuck still finishes, and its result() waits until the subscriber has it all."""
    release = threading.Event()
    got: list = []

    def stuck(event):
        release.wait(10)
        got.append(event)

    with fd.SyncExecutor() as ex:
        with ex.subscribe(stuck):
            future = ex.submit(tree(8))  # a SyncExecutor runs it here and now
            assert future.done() and got == []  # its subscriber is still on its first event
            threading.Timer(0.2, release.set).start()
            assert future.result() == 28
            kinds = [type(e).__name__ for e in got]
            assert kinds[0] == "RunSubmitted" and kinds[-1] == "RunFinished"
            assert kinds.count("TaskFinished") == 7


def test_a_subscriber_may_unsubscribe_itself_and_the_bus_thread_ends_when_idle(monkeypatch):
    monkeypatch.setattr(ev, "COURIER_IDLE_S", 0.05)
    bus = ev.EventBus()
    got: list = []
    threads: list = []

    def once(event):
        got.append(event)
        threads.append(threading.current_thread())
        subscription.unsubscribe()  # on the bus's own thread: must not wait for itself

    subscription = bus.subscribe(once)
    bus.emit_many([ev.WorkerStarted("", 1.0, "w"), ev.WorkerStarted("", 2.0, "w")])
    deadline = time.time() + 10
    while len(got) < 2 and time.time() < deadline:  # no flush(): the bus's thread hands them out
        time.sleep(0.01)
    assert [e.time for e in got] == [1.0, 2.0]  # emitted while it was subscribed
    bus.emit(ev.WorkerStarted("", 3.0, "w"))
    assert bus.flush(timeout=10) and len(got) == 2
    courier = threads[0]
    assert courier is not threading.current_thread() and courier.name == "fastdag-events"
    while courier.is_alive() and time.time() < deadline:
        time.sleep(0.01)
    assert bus._courier is None and not courier.is_alive()


def test_a_batched_subscriber_reads_every_task_as_columns():
    records = array("d", [0, 10.0, 11.0, 0, 0, 8, 16, 1, 9.5,
                          1, 11.0, 12.5, 0, 0, 16, 4, 2, 11.0])
    batch = ev.TaskBatch("r", 12.5, "w", records)
    table = batch.table()
    assert table.shape == (2, len(RAW_FIELDS)) and not table.flags.writeable
    assert (table[:, END] - table[:, START]).tolist() == [1.0, 1.5]
    finished = [e for e in batch.expand() if isinstance(e, ev.TaskFinished)]
    assert [tuple(row) for row in table[:, [INDEX, START, END]]] == \
        [(e.task, e.start, e.end) for e in finished]
    records[1] = 10.25  # a view of the records, not a copy
    assert table[0, START] == 10.25
    assert ev.TaskBatch("r", 1.0, "w", list(records)).table().tolist() == table.tolist()
