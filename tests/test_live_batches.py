"""A worker running one long batch shows its progress while the batch runs.

A chain of 25 tasks of 40 ms runs as one batch on one worker (its tasks
continue there without a message). A subscriber must see finished tasks
arrive at the scheduler during those ~1 s, not all at the end: the worker
reports its records at least every 100 ms (``executors/worker.py``
PROGRESS_INTERVAL, ``distributed/worker.py`` FLUSH_INTERVAL).
"""

from __future__ import annotations

import time

import pytest

import fastdag as fd
from fastdag import events as ev

TASKS, TASK_S = 25, 0.04


@fd.task
def slow_step(x):
    time.sleep(TASK_S)
    return x + 1


def chain() -> fd.Node:
    node = 0
    for _ in range(TASKS):
        node = slow_step(node)
    return node


def arrivals(executor: fd.Executor) -> list[tuple[float, ev.TaskFinished]]:
    """Run the chain; each TaskFinished with the time the subscriber got it."""
    got: list[tuple[float, object]] = []
    with executor.subscribe(lambda e: got.append((time.time(), e))):
        assert chain().compute(executor=executor) == TASKS
    return [(t, e) for t, e in got if isinstance(e, ev.TaskFinished)]


def check_live(finished: list[tuple[float, ev.TaskFinished]]) -> None:
    """Records reached the subscriber while the batch ran, a few at a time."""
    assert sorted(e.task for _, e in finished) == list(range(TASKS))
    last_end = max(e.end for _, e in finished)
    early = [e for t, e in finished if t < last_end - 0.3]
    # ~1 s of tasks: reported every 0.1 s, about 20 of 25 are seen 0.3 s
    # before the last ends; reported only at the end, none are.
    assert len(early) >= TASKS // 3, f"only {len(early)} of {TASKS} tasks seen during the batch"
    seen = sorted(t for t, _ in finished)
    reports = 1 + sum(b - a > 0.02 for a, b in zip(seen, seen[1:]))
    # About 10 reports in 1 s; one every 0.25 s would make 4 or 5.
    assert reports >= 6, f"the batch's records came in {reports} reports"


def test_local_worker_reports_a_long_batch_while_it_runs():
    with fd.LocalExecutor(1) as ex:
        check_live(arrivals(ex))


@pytest.mark.redis
def test_redis_worker_reports_a_long_message_while_it_runs(redis_server):
    from test_distributed import executor_with_one_worker
    with executor_with_one_worker(redis_server.url, poll=0.05) as ex:
        finished = arrivals(ex)
    check_live(finished)
