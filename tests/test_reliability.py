"""No hang, no silent death, exact progress, linear fan-ins (issue 11, part B).

Every wait here has a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import array
import gc
import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import fastdag as fd
from fastdag.core.graph import gc_paused
from fastdag.core.plan import build_plan

WAIT = 60  # seconds: generous, only reached when something is broken


# -- tasks (module level: workers import them) -----------------------------------
class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


class BadReduce(Exception):
    """Pickles in the worker, fails to unpickle in the client."""

    def __reduce__(self):
        return (int, ("not an int",))


class Unloadable:
    def __reduce__(self):
        return (int, ("not an int",))


@fd.task
def raise_bad_str():
    raise BadStr("hidden")


@fd.task
def raise_bad_reduce():
    raise BadReduce("lost in transit")


@fd.task
def unloadable():
    return Unloadable()


@fd.task
def inc(x):
    return x + 1


@fd.task
def exits(code):
    sys.exit(code)


@fd.task
def interrupted():
    raise KeyboardInterrupt


@fd.task
def nested(x, executor):
    """compute() inside a task: on ``executor`` (None: the default one)."""
    return fd.compute(inc(x), executor=executor)[0] * 10


@fd.task
def nested_default_here(x):
    """compute() without an executor inside a worker: where did the inner task run?"""
    return inc(x).compute(), os.getpid(), len(psutil.Process().children())


@fd.task
def one(i):
    return i


@fd.task
def total(xs):
    return sum(xs)


@fd.task
def tick(i, folder, seconds):
    time.sleep(seconds)
    open(os.path.join(folder, str(i)), "w").close()
    return i


@fd.task
def describe(view):
    return (type(view).__name__, bytes(view), getattr(view, "format", None),
            getattr(view, "shape", None), getattr(view, "readonly", None))


# -- item 4: the scheduler thread survives, or says it died ---------------------
@pytest.mark.parametrize("task, shown", [(raise_bad_str, "BadStr"),
                                         (raise_bad_reduce, "BadReduce")])
def test_unrebuildable_exception_fails_only_its_run(local_executor, task, shown):
    with pytest.raises(fd.TaskError) as info:
        local_executor.submit(task()).result(timeout=WAIT)
    assert shown in str(info.value) and "Traceback in the worker" in str(info.value)
    assert info.value.task.startswith(task.name)
    assert local_executor.submit(inc(1)).result(timeout=WAIT) == 2   # still usable


def test_scheduler_death_fails_pending_and_later_runs():
    ex = fd.LocalExecutor(workers=1)
    try:
        assert ex.compute(inc(1)) == 2
        pids = ex.worker_pids()

        def broken() -> None:
            raise RuntimeError("a bug in the scheduler")

        ex._dispatch = broken       # the next round of the scheduler loop raises
        died = getattr(fd.core.errors, "SchedulerDied", RuntimeError)
        with pytest.raises(died, match="scheduler thread died.*a bug in the scheduler"):
            ex.submit(inc(2)).result(timeout=WAIT)
        with pytest.raises(died):
            ex.submit(inc(3)).result(timeout=WAIT)
    finally:
        ex.shutdown()
    assert not any(psutil.pid_exists(p) for p in pids)      # no worker left behind


# -- item 5: compute() inside a task ---------------------------------------------
@pytest.mark.timeout(WAIT * 2)
@pytest.mark.parametrize("how", ["threads", "threads-default", "sync", "sync-default"])
def test_nested_compute_in_process(how):
    ex = fd.ThreadExecutor(workers=2) if how.startswith("threads") else fd.SyncExecutor()
    previous = fd.set_default_executor(ex) if how.endswith("default") else None
    try:
        inner = None if how.endswith("default") else ex
        future = ex.submit([nested(i, inner) for i in range(8)])
        assert future.result(timeout=WAIT) == tuple(10 * (i + 1) for i in range(8))
    finally:
        if how.endswith("default"):
            fd.set_default_executor(previous)
        ex.shutdown()


@pytest.mark.timeout(WAIT * 2)
def test_nested_compute_in_a_local_worker_runs_there(local_executor):
    local_executor.compute(inc(0))                  # workers started
    pids = set(local_executor.worker_pids())
    results = local_executor.submit([nested_default_here(i) for i in range(4)]).result(timeout=WAIT)
    assert [r[0] for r in results] == [1, 2, 3, 4]
    assert {r[1] for r in results} <= pids         # in the worker itself...
    assert all(r[2] == 0 for r in results)          # ...which started no processes


def test_local_executor_inside_a_task_is_a_clear_error(local_executor):
    with pytest.raises(fd.SerializationError, match="inside a task, call compute.. without"):
        local_executor.submit(nested(1, local_executor)).result(timeout=WAIT)


def test_compute_on_the_scheduler_thread_is_an_error(tmp_path):
    """A done-callback runs on the scheduler thread: waiting there would wait forever."""
    seen = []

    def callback(_):
        try:
            seen.append(ex.compute(inc(1)))
        except RuntimeError as exc:
            seen.append(exc)

    with fd.LocalExecutor(workers=1) as ex:
        future = ex.submit(tick(0, str(tmp_path), 0.5))
        future.add_done_callback(callback)   # registered long before the task ends
        future.result(timeout=WAIT)
        deadline = time.time() + WAIT
        while not seen and time.time() < deadline:
            time.sleep(0.02)
        assert len(seen) == 1 and isinstance(seen[0], RuntimeError), seen
        assert "scheduler thread" in str(seen[0])
        assert ex.compute(inc(2)) == 3


@pytest.mark.timeout(WAIT * 2)
def test_nested_thread_compute_lets_the_interpreter_exit(tmp_path):
    script = textwrap.dedent("""
        import fastdag as fd

        @fd.task
        def inc(x):
            return x + 1

        @fd.task
        def outer(x):
            return inc(x).compute() * 10

        fd.set_default_executor(fd.ThreadExecutor(workers=2))
        print(fd.compute(*[outer(i) for i in range(6)]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=WAIT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(10, 20, 30, 40, 50, 60)"


# -- smaller contracts -------------------------------------------------------------
def test_progress_counts_every_workers_completions(tmp_path):
    """tasks_done never lags the tasks really finished by more than one per worker."""
    with fd.LocalExecutor(workers=2) as ex:
        future = ex.submit(total([tick(i, str(tmp_path), 1.0) for i in range(12)]))
        lags = []
        while not future.done():
            truth = len(os.listdir(tmp_path))
            lags.append((truth, truth - future.tasks_done))
            time.sleep(0.02)
        assert future.result(timeout=WAIT) == sum(range(12))
    assert max(lag for _, lag in lags) <= 2, [x for x in lags if x[1] > 2][:5]
    assert max(truth for truth, _ in lags) >= 8      # sampled while most had finished


def test_result_that_does_not_load_is_a_serialization_error(local_executor):
    with pytest.raises(fd.SerializationError, match=r"result of task 'unloadable-\d+'"):
        local_executor.submit(unloadable()).result(timeout=WAIT)
    assert local_executor.compute(inc(1)) == 2


@pytest.mark.parametrize("task, args, shown", [(exits, (3,), "exit code 3"),
                                               (interrupted, (), "KeyboardInterrupt")])
def test_exit_and_interrupt_in_a_task_are_its_failure(executor, task, args, shown):
    executor.compute(inc(0))           # workers started
    pids = executor.worker_pids()
    with pytest.raises(fd.TaskError, match=shown) as info:
        executor.submit(task(*args)).result(timeout=WAIT)
    assert not isinstance(info.value, fd.WorkerCrashedError)
    assert info.value.task.startswith(task.name)
    assert executor.worker_pids() == pids        # no worker was lost or restarted
    assert executor.compute(inc(1)) == 2


def _cpu_seconds(ex: fd.LocalExecutor) -> float:
    """This process's CPU time plus its workers'."""
    total_s = time.process_time()
    for pid in ex.worker_pids():
        times = psutil.Process(pid).cpu_times()
        total_s += times.user + times.system
    return total_s


def _fan_in_costs(ex: fd.LocalExecutor, n: int) -> tuple[float, float]:
    """CPU seconds to build (graph and plan) and to run a fan-in of ``n`` inputs.

    The build is timed with the collector paused: in a long test session its
    full passes over everything other tests left alive cost more than the
    graph itself and would hide (or fake) the growth this test is about.
    """
    gc.collect()
    with gc_paused():
        start = time.process_time()
        node = total([one(i) for i in range(n)])
        build_plan(node.dag)
        built = time.process_time() - start
    start = _cpu_seconds(ex)
    assert ex.compute(node) == n * (n - 1) // 2
    return built, _cpu_seconds(ex) - start


def test_wide_fan_in_costs_grow_linearly(local_executor):
    """4x the inputs must cost about 4x, not 16x: the best of a few tries, a wide margin."""
    local_executor.compute(inc(0))
    small = [_fan_in_costs(local_executor, 20_000) for _ in range(3)]
    large = [_fan_in_costs(local_executor, 80_000) for _ in range(2)]
    for k, what in enumerate(("build", "run")):
        a, b = min(s[k] for s in small), min(s[k] for s in large)
        assert b < 8 * max(a, 0.01), f"{what}: {a:.3f} s for 20,000 inputs, {b:.3f} s for 80,000"


MEMORYVIEWS = [memoryview(b"abc"),                                      # read-only
               memoryview(bytearray(b"abcdefgh")).cast("i"),            # a format
               memoryview(array.array("d", range(6))).cast("B").cast("d", (2, 3)),
               memoryview(bytearray(range(200)))[::2],                  # strided
               memoryview(bytes(200_000))]                              # out of band


@pytest.mark.parametrize("view", MEMORYVIEWS, ids=["bytes", "int", "2d", "strided", "large"])
def test_memoryview_argument_stays_a_memoryview(executor, view):
    kind, data, fmt, shape, readonly = executor.compute(describe(view))
    assert (kind, data, fmt, shape) == ("memoryview", view.tobytes(), view.format, view.shape)
    assert readonly == view.readonly


def test_exit_code_read_from_args_when_rebuilt_without_init():
    """tblib's pickling (installed once dask.distributed is imported in a worker)
    rebuilds a SystemExit through ``__new__``: its ``args`` hold the code, ``code`` is None."""
    from fastdag.core.errors import describe_exception
    rebuilt = SystemExit.__new__(SystemExit)
    rebuilt.args = (3,)
    assert rebuilt.code is None
    assert describe_exception(rebuilt) == "SystemExit (sys.exit with exit code 3)"
    assert describe_exception(SystemExit()) == "SystemExit (sys.exit with exit code None)"
