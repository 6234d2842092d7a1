"""Failures: task errors, crashed workers, retries, pickling, cancellation, cleanup."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

import fastdag as fd
from conftest import executor_of_kind, fastdag_segments
from tasks import add, inc


@fd.task
def boom(x):
    raise ValueError(f"bad value {x}")


@fd.task
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


@fd.task
def die(how):
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":
        ctypes.string_at(0)
    return how


@pytest.fixture(scope="module")
def pool():
    ex = fd.LocalExecutor(workers=2, cancel_grace=0.5)
    yield ex
    ex.shutdown()


@pytest.fixture(params=["sync", "threads", "local"])
def any_executor(request, pool):
    yield from executor_of_kind(request.param, pool)


def test_task_error_names_task_and_keeps_cause_and_traceback(any_executor):
    node = add(boom(inc(1)), 1)
    with pytest.raises(fd.TaskError) as info:
        node.compute(executor=any_executor)
    err = info.value
    assert "boom" in str(err) and "boom" in err.task
    assert isinstance(err.__cause__, ValueError)
    assert "bad value 2" in str(err.__cause__)
    assert "raise ValueError" in str(err)  # the worker's traceback is in the message
    assert inc(1).compute(executor=any_executor) == 2  # still usable


def test_task_error_cancels_other_branches(pool):
    start = time.time()
    with pytest.raises(fd.TaskError):
        fd.compute(add(sleepy(30), 1), boom(1), executor=pool)
    assert time.time() - start < 20  # the 30 s sibling did not hold the caller
    assert inc(1).compute(executor=pool) == 2


@pytest.mark.parametrize("how", ["exit", "kill", "segfault"])
def test_worker_crash_raises_and_pool_recovers(pool, how):
    with pytest.raises(fd.WorkerCrashedError) as info:
        add(die(how), 1).compute(executor=pool)
    assert "die" in str(info.value)
    assert fd.compute(*[inc(i) for i in range(20)], executor=pool) == tuple(range(1, 21))
    assert len(pool.worker_pids()) == 2


def test_retries_after_exceptions(any_executor, tmp_path):
    counter = tmp_path / "attempts"

    @fd.task(retries=2)
    def flaky():
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        if n < 2:
            raise RuntimeError("not yet")
        return n

    assert flaky().compute(executor=any_executor) == 2

    counter.unlink()

    @fd.task(retries=1)
    def too_flaky():
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        raise RuntimeError(f"attempt {n}")

    with pytest.raises(fd.TaskError, match="attempt 1"):
        too_flaky().compute(executor=any_executor)


def test_retries_after_worker_death(pool, tmp_path):
    marker = tmp_path / "died-once"

    @fd.task(retries=1)
    def dies_once(x):
        if not marker.exists():
            marker.write_text("1")
            os._exit(9)
        return x * 2

    assert add(dies_once(21), 0).compute(executor=pool) == 42


def test_unpicklable_argument_is_reported_at_compute_time(pool):
    lock = threading.Lock()

    @fd.task
    def use(x):
        return 1

    with pytest.raises(fd.SerializationError) as info:
        use(lock).compute(executor=pool)
    assert "use" in str(info.value) and "lock" in str(info.value).lower()
    assert isinstance(info.value, TypeError)


def test_unpicklable_result_is_reported(pool):
    @fd.task
    def make_lock():
        return threading.Lock()

    with pytest.raises(fd.SerializationError) as info:
        make_lock().compute(executor=pool)
    assert "make_lock" in str(info.value) and "lock" in str(info.value).lower()
    assert inc(1).compute(executor=pool) == 2


@fd.task
def sleepy_marked(seconds, marker_dir):
    """Sleep in a worker, leaving a file named by the worker's pid."""
    Path(marker_dir, str(os.getpid())).touch()
    time.sleep(seconds)
    return seconds


def busy_worker(marker_dir: Path, timeout: float = 20.0) -> int:
    """The pid of the worker that started ``sleepy_marked``, once it has."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        markers = list(marker_dir.iterdir())
        if markers:
            return int(markers[0].name)
        time.sleep(0.02)
    raise AssertionError(f"the sleeping task did not start within {timeout} s")


def assert_stopped(pool: fd.LocalExecutor, pid: int, timeout: float = 15.0) -> None:
    """The worker running the cancelled 60 s task is killed and replaced well before 60 s.

    Both are awaited: the scheduler learns of the death (and drops the pid) a
    moment after the process is gone.
    """
    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:  # also when it dies between two looks
            return True

    deadline = time.time() + timeout
    while time.time() < deadline:
        if gone() and pid not in pool.worker_pids():
            return
        time.sleep(0.05)
    state = "still runs the cancelled task" if not gone() else "is dead but still listed by the pool"
    raise AssertionError(f"worker {pid} {state} {timeout} s after the cancel")


def test_future_cancel_stops_the_run(pool, tmp_path):
    future = add(sleepy_marked(60, str(tmp_path)), 1).compute_async(executor=pool)
    pid = busy_worker(tmp_path)
    assert future.cancel()
    assert future.cancelled()
    assert_stopped(pool, pid)
    assert fd.compute(*[inc(i) for i in range(4)], executor=pool) == (1, 2, 3, 4)


def test_keyboard_interrupt_cancels_the_run(pool, tmp_path):
    def interrupt_when_started() -> None:
        busy_worker(tmp_path)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt_when_started, daemon=True)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        add(sleepy_marked(60, str(tmp_path)), 1).compute(executor=pool)
    assert_stopped(pool, busy_worker(tmp_path))
    assert inc(1).compute(executor=pool) == 2


def test_ctrl_c_during_a_sync_run_is_the_callers_keyboard_interrupt():
    """A SIGINT while a task runs in the main thread stops the run as KeyboardInterrupt
    (a task raising KeyboardInterrupt itself stays its TaskError: test_reliability)."""
    ran = []

    @fd.task
    def long_step(i):
        ran.append(i)
        time.sleep(0.05)
        return i

    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        fd.task(sum)([long_step(i) for i in range(200)]).compute(executor=fd.SyncExecutor())
    timer.join()
    assert 0 < len(ran) < 200
    assert fd.last_run().run.state == "cancelled"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert inc(1).compute(executor=fd.SyncExecutor()) == 2


def test_nothing_left_behind_after_failures_and_shutdown():
    ex = fd.LocalExecutor(workers=2, cancel_grace=0.2)
    with pytest.raises(fd.TaskError):
        add(boom(1), sleepy(5)).compute(executor=ex)
    with pytest.raises(fd.WorkerCrashedError):
        die("kill").compute(executor=ex)
    import numpy as np

    @fd.task
    def big(n):
        return np.ones(n)

    assert big(1_000_000).compute(executor=ex).sum() == 1_000_000
    pids = ex.worker_pids()
    ex.shutdown()
    assert fastdag_segments(ex.prefix) == set()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(RuntimeError):
        inc(1).compute(executor=ex)
