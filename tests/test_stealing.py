"""Work stealing at the end of a run: an idle worker gets tasks a busy one has not started.

The worker's side (``Worker.give_away``) without a scheduler, then one run
of uneven batches on a LocalExecutor.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
from multiprocessing.connection import Connection

import pytest

import fastdag as fd
from fastdag.engine.worker import SLOT, Batch, Worker


@pytest.fixture
def worker(tmp_path):
    """A Worker on one end of a socket pair (the scheduler's end is returned too)."""
    status = tmp_path / "fastdag-test-status"
    status.write_bytes(bytes(SLOT.size))
    status.chmod(0o600)
    ours, theirs = socket.socketpair()
    w = Worker(Connection(theirs.detach()), 0, str(status), "fastdag-test")
    scheduler = Connection(ours.detach())
    yield w, scheduler
    scheduler.close()
    w.conn.close()


def _running(w: Worker, tasks: list[int], started: int, seconds: float) -> Batch:
    """``w`` as in the middle of batch ``tasks``: the first ``started`` of them taken off
    its stack, one continuation (100) pushed, ``seconds`` since the batch began."""
    batch = Batch(1, 3, tasks[::-1], tasks)
    del batch.stack[len(tasks) - started:]
    batch.stack.append(100)
    batch.start = time.time() - seconds
    w.current = batch
    return batch


def test_a_worker_gives_back_half_of_what_it_has_not_started_last_first(worker):
    w, scheduler = worker
    batch = _running(w, list(range(8)), started=3, seconds=3.0)  # 1 s a task
    w.control(("steal", 1, 3))
    assert scheduler.poll(5)
    kind, run, tasks = pickle.loads(scheduler.recv_bytes())
    assert (kind, run, tasks) == ("returned", 1, [7, 6, 5])
    assert batch.stack == [4, 3, 100]  # what it runs next is kept, continuations too


def test_the_last_unstarted_task_goes_to_an_idle_worker(worker):
    w, scheduler = worker
    _running(w, [0, 1], started=1, seconds=1.0)
    w.control(("steal", 1, 3))
    assert scheduler.poll(5) and pickle.loads(scheduler.recv_bytes()).tasks == [1]


@pytest.mark.parametrize("request_", [("steal", 2, 3), ("steal", 1, 2)])
def test_a_request_for_another_run_or_an_earlier_batch_is_ignored(worker, request_):
    w, scheduler = worker
    _running(w, list(range(8)), started=1, seconds=1.0)
    w.control(request_)
    assert not scheduler.poll(0.05) and len(w.current.stack) == 8


def test_tiny_tasks_are_not_worth_moving(worker):
    w, scheduler = worker
    _running(w, list(range(8)), started=4, seconds=0.0002)
    w.control(("steal", 1, 3))
    assert not scheduler.poll(0.05) and len(w.current.stack) == 5


@fd.task
def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_slow_batch_is_shared_with_the_worker_that_finished_first():
    # Batches of 4: the first worker's naps are long, the second's short. Without
    # stealing the second worker ran 4 tasks; it now also runs some of the first's.
    naps = [0.5] * 4 + [0.01] * 4
    with fd.LocalExecutor(workers=2) as ex:
        assert len(set(ex.compute(nap(0.2), nap(0.2)))) == 2  # both up, this module imported
        pids = ex.compute(*[nap(s) for s in naps])
    assert len(set(pids)) == 2
    fast = pids[-1]
    assert pids[4:] == (fast,) * 4 and fast in pids[:4]
