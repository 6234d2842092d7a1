"""The default executor's placement: threads for GIL-releasing graphs, processes for the rest.

Threads must keep the guarantees of worker processes: a task writing into
an input changes nobody else's value, results are writeable and equal to a
serial run's. None of these tests times anything: the GIL profile is fed
explicitly, or measured with generous margins.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import fastdag as fd
from fastdag.executors.guarded import GuardedThreads
from fastdag.executors.placement import Placement
from fastdag.core.gil import GilProfile, GilSampler
from fastdag.events import EventBus
from fastdag.metrics.recorder import RunRecorder
from fastdag.store.shm import SHM_DIR


@pytest.fixture
def threads():
    ex = GuardedThreads(2, GilProfile(), dict)
    yield ex
    ex.shutdown()


@fd.task
def bump(a):
    a += 1
    return a


@fd.task
def total(a):
    return float(np.sum(a))


@fd.task
def ident(a):
    return a


@fd.task
def both(x, y):
    return x, y


def test_a_task_writing_a_captured_array_leaves_the_callers_array(threads):
    a = np.zeros(1000)
    bumped, summed = threads.compute(bump(a), total(a))
    assert (a == 0).all()
    assert (bumped == 1).all() and bumped.flags.writeable
    assert summed == 0.0


def test_a_shared_result_written_by_one_consumer_is_unchanged_for_the_others(threads):
    base = fd.task(np.zeros)(1000)
    out = both(bump(base), total(base))
    (bumped, summed), kept = threads.compute(out, base)
    assert (bumped == 1).all() and summed == 0.0
    assert (kept == 0).all() and kept.flags.writeable


def test_writers_are_remembered_and_get_copies_straight_away(threads):
    a = np.zeros(10)
    threads.compute(bump(a))
    assert bump.func.__code__ in threads.writers
    assert (threads.compute(bump(a)) == 1).all() and (a == 0).all()


def test_an_input_returned_as_it_is_comes_back_as_a_writeable_copy(threads):
    a = np.arange(10.0)
    out = threads.compute(ident(a))
    assert out.flags.writeable and not np.shares_memory(out, a)
    np.testing.assert_array_equal(out, a)


def test_pillow_images_are_copied_on_write(threads):
    from PIL import Image

    def stamp(im):
        im.paste(255, (0, 0, 4, 4))
        return im

    def probe(im):
        return im.getpixel((0, 0))

    image = Image.new("L", (8, 8))
    stamped, seen = threads.compute(fd.task(stamp)(image), fd.task(probe)(image))
    assert stamped.getpixel((0, 0)) == 255 and seen == 0 and image.getpixel((0, 0)) == 0


def test_pandas_frames_and_lists_are_copied_on_write(threads):
    pd = pytest.importorskip("pandas")

    def zero(frame):
        frame["v"] = 0
        return frame

    def grow(items):
        items.append(4)
        return items

    frame, items = pd.DataFrame({"v": [1, 2, 3]}), [1, 2, 3]
    zeroed, grown = threads.compute(fd.task(zero)(frame), fd.task(grow)(items))
    assert list(frame["v"]) == [1, 2, 3] and list(zeroed["v"]) == [0, 0, 0]
    assert items == [1, 2, 3] and grown == [1, 2, 3, 4]


def test_results_and_metrics_match_a_serial_run(threads):
    blocks = [np.random.default_rng(k).random((50, 20)) for k in range(4)]
    graph = [total(bump(b)) for b in blocks]
    expected = tuple(float(np.sum(b + 1)) for b in blocks)
    assert threads.compute(*graph) == expected
    run = fd.last_run()
    assert run.run.tasks == 8 and run.run.settings["placement"] == "threads"
    assert len(run.tasks) == 8


def _placement() -> Placement:
    place = Placement(2, dict)
    place.ready.set()
    return place


def _record(place: Placement, task: fd.Task, wall: float, held: float, runs: int = 10) -> None:
    for _ in range(runs):
        place.profile.record(task.func, wall, held)


def test_graphs_of_gil_releasing_functions_go_to_threads_the_others_to_processes():
    place = _placement()
    a = np.zeros(3)
    try:
        assert not place.prefers_threads(total(a).dag)  # never seen: processes
        _record(place, total, 0.05, 0.0)
        assert place.prefers_threads(total(a).dag)
        _record(place, bump, 0.05, 0.05)  # holds the GIL throughout
        assert not place.prefers_threads(fd.DAG([total(bump(a)), bump(a)]))
        assert place.prefers_threads(fd.DAG([total(bump(a))] + [total(a)] * 3))
        _record(place, ident, 1e-6, 0.0, runs=1000)  # too short to sample: counted as holding
        _record(place, ident, 0.01, 0.0, runs=3)  # preempted outliers do not change that
        assert not place.prefers_threads(ident(a).dag)
        assert place.prefers_threads(fd.task(ident.func, gil=False)(a).dag)
        assert not place.prefers_threads(fd.task(total.func, gil=True)(a).dag)
    finally:
        place.shutdown()


def test_graphs_run_on_threads_until_the_workers_are_up():
    place = Placement(2, dict)
    try:
        assert place.on_threads(bump(np.zeros(2)).dag)
        place.from_worker(0, ("up",), {})
        assert not place.ready.is_set()
        place.from_worker(1, ("up",), {})
        assert place.ready.is_set() and not place.on_threads(bump(np.zeros(2)).dag)
    finally:
        place.shutdown()


def _python_loop(seconds: float) -> int:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return n


def test_the_sampler_tells_python_loops_from_gil_free_waits():
    sampler = GilSampler()
    fractions = {}
    for name, work in (("python", lambda: _python_loop(0.4)), ("sleep", lambda: time.sleep(0.4))):
        sampler.enter()
        held, start = sampler.held, time.perf_counter()
        work()
        fractions[name] = (sampler.held - held) / (time.perf_counter() - start)
        sampler.exit()
    assert fractions["python"] > 0.3 > fractions["sleep"], fractions


def _tiny(x: int) -> int:
    return x + 1


def _segments(prefix: str) -> list[str]:
    return [f for f in os.listdir(SHM_DIR) if f.startswith(prefix)]


def test_auto_executor_learns_from_workers_and_leaves_nothing_behind():
    loop = fd.task(_python_loop)
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        assert ex.compute(ident(1)) == 1  # on threads
        assert fd.last_run().run.settings["placement"] == "threads"
        ex.start_workers()  # a tiny graph needs no worker: started here (see lazystart.py)
        assert ex.placement.ready.wait(60), "workers never said they were up"
        assert not ex.placement.on_threads(loop(0.05).dag)  # never seen: processes
        assert len(ex.compute(*[loop(0.05) for _ in range(4)])) == 4
        stats = ex.placement.profile.get(_python_loop)
        assert stats is not None and stats.runs >= 1 and stats.sampled_s > 0
        assert not ex.placement.on_threads(loop(0.05).dag)
        assert ex.placement.profile.get(_tiny) is None
        assert ex.compute(fd.task(_tiny)(1)) == 2  # too short to sample: learned from records
        assert ex.placement.profile.get(_tiny).runs == 1
        a = np.zeros(100_000)
        assert (ex.compute(fd.task(ident.func, gil=False)(a)) == 0).all()
        assert fd.last_run().run.settings["placement"] in ("threads", "inline")  # this process
        prefix = ex.prefix
    assert _segments(prefix) == []


def test_a_failing_task_on_threads_names_the_task_and_stops_sampling(threads):
    def boom(x):
        raise ValueError("no")

    with pytest.raises(fd.TaskError, match="boom") as info:
        threads.compute(fd.task(boom)(np.zeros(3)))
    assert isinstance(info.value.__cause__, ValueError)
    assert threads.sampler._users == 0 and not threads.sampler._active.is_set()


def _add(a, b):
    return a + b


def _tree(leaves: list, func=_add):
    items = list(leaves)
    while len(items) > 1:
        items = [fd.task(func)(items[k], items[k + 1]) for k in range(0, len(items), 2)]
    return items[0]


def _measured_tiny(place: Placement, *funcs) -> None:
    for func in funcs:
        place.profile.record_durations(func, np.full(100, 1e-6))


def test_graphs_of_tiny_measured_tasks_run_inline_others_do_not():
    place = _placement()
    try:
        tree = _tree(list(range(64)))
        assert place.where(tree.dag) == "processes"  # never seen
        _measured_tiny(place, _add)
        assert place.where(tree.dag) == "inline"
        slow = fd.task(_python_loop)(0.05)
        _record(place, fd.task(_python_loop), 0.05, 0.05)
        assert place.where(fd.DAG([tree, slow])) == "processes"
        assert place.where(fd.task(_add, gil=True)(1, 2).dag) == "processes"
    finally:
        place.shutdown()


def test_preempted_runs_do_not_make_a_tiny_function_look_slow():
    profile = GilProfile()
    durations = np.full(1000, 1e-6)
    durations[:10] = 0.01  # preempted by another process for 10 ms
    profile.record_durations(_add, durations)
    stats = profile.get(_add)
    assert stats.mean_s > 1e-4 and stats.typical_s < 2e-6
    profile.record(_tiny, 0.005, None, cpu_s=1e-6)  # waited 5 ms for the GIL on a pool
    profile.record(_tiny, 2e-6, None, cpu_s=2e-6)
    profile.record(_tiny, 2e-6, None, cpu_s=2e-6)
    assert profile.get(_tiny).typical_s < 3e-6


def _inline_run(place: Placement, *nodes):
    future = place.run_inline(fd.DAG(list(nodes)), False)
    assert future.done()
    return future


def test_inline_runs_match_serial_results_and_record_every_task():
    recorder = RunRecorder()
    place = Placement(2, dict, EventBus(recorder))
    place.ready.set()
    try:
        _measured_tiny(place, _add)
        leaves = list(range(256))
        (total,) = _inline_run(place, _tree(leaves)).result()
        assert total == sum(leaves)
        future = _inline_run(place, _tree(leaves), _tree(leaves[:4]))
        assert future.result() == (sum(leaves), 6)
        report = recorder.take(future.run_id)
        assert report.run.settings["placement"] == "inline"
        records = report.tasks
        assert len(records) == 255 + 3 and sorted(r.index for r in records) == list(range(258))
        adds = [r for r in records if r.deps]
        assert all(r.input_bytes == 2 * r.output_bytes for r in adds if r.output_bytes == 28)
        assert all(r.end >= r.start for r in records)
        assert place.profile.get(_add).runs == 100 + 255 + 255 + 3
    finally:
        place.shutdown()


def test_inline_runs_keep_inputs_copy_on_write_and_results_writeable():
    place = _placement()
    try:
        _measured_tiny(place, bump.func, total.func, ident.func, np.zeros)
        a = np.zeros(10)
        base = fd.task(np.zeros)(5)
        bumped, summed, kept, same = _inline_run(
            place, bump(a), total(bump(base)), base, ident(a)).result()
        assert (a == 0).all() and (bumped == 1).all() and bumped.flags.writeable
        assert summed == 5.0 and (kept == 0).all() and kept.flags.writeable
        assert same.flags.writeable and not np.shares_memory(same, a)
        x = fd.task(np.zeros)(3)
        one, two = _inline_run(place, bump(x), bump(x)).result()
        assert (one == 1).all() and (two == 1).all() and not np.shares_memory(one, two)
    finally:
        place.shutdown()


def test_inline_two_input_tasks_after_a_value_that_needs_guarding():
    # An array that two consumers see must be guarded from then on; the
    # f(a, b) tasks that follow take the general path and must still get
    # their two inputs (they once read a captured-argument template instead).
    place = _placement()
    try:
        _measured_tiny(place, _add, np.ones)
        x = fd.task(np.ones)(3)
        left, right = fd.task(_add)(x, x), fd.task(_add)(x, 1.0)
        (result,) = _inline_run(place, fd.task(_add)(left, right)).result()
        assert (result == 4).all() and result.flags.writeable
    finally:
        place.shutdown()


def _append_one(items):
    items.append(1)
    return items


def test_inline_lists_of_inputs_and_captured_lists_keep_order_repeats_and_the_callers_list():
    # f([a, b]) takes its inputs in the list's order, f([a, a]) twice the same one,
    # and a captured list of numbers is copied before a task may change it.
    place = _placement()
    try:
        _measured_tiny(place, _add, sum, list, _append_one)
        captured = [1, 2]
        a, b = fd.task(_add)(1, 2), fd.task(_add)(10, 20)
        pair, twice, ordered, grown, same = _inline_run(
            place, fd.task(sum)([a, b]), fd.task(sum)([a, a, b]), fd.task(list)([b, a]),
            fd.task(_append_one)(captured), fd.task(sum)(captured)).result()
        assert (pair, twice, ordered) == (33, 36, [30, 3])
        assert grown == [1, 2, 1] and same == 3 and captured == [1, 2]
    finally:
        place.shutdown()


def test_inline_runs_tell_a_plain_subscriber_every_task_and_the_failure():
    bus = EventBus(RunRecorder())
    seen = []
    bus.subscribe(seen.append)
    place = Placement(2, dict, bus)
    place.ready.set()

    def boom(x):
        raise ValueError("no")

    try:
        _measured_tiny(place, _add, boom)
        future = _inline_run(place, _tree(list(range(64))))
        assert future.result() == (sum(range(64)),)
        mine = [e for e in seen if e.run_id == future.run_id]
        kinds = [type(e).__name__ for e in mine]
        assert kinds[0] == "RunSubmitted" and kinds[-1] == "RunFinished"
        assert sorted(e.task for e in mine if kinds[mine.index(e)] == "TaskFinished") == list(range(63))
        assert kinds.count("TaskStarted") == 63
        seen.clear()
        with pytest.raises(fd.TaskError):
            _inline_run(place, fd.task(boom)(1)).result()
        failed = [e for e in seen if type(e).__name__ == "TaskFailed"]
        assert len(failed) == 1 and failed[0].task == 0
    finally:
        place.shutdown()


def test_inline_failures_name_the_task_and_retries_are_kept():
    recorder = RunRecorder()
    place = Placement(2, dict, EventBus(recorder))
    place.ready.set()
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) < 3:
            raise ValueError("not yet")
        return x

    def boom(x):
        raise ValueError("no")

    try:
        _measured_tiny(place, flaky, boom)
        future = _inline_run(place, fd.task(flaky, retries=2)(1))
        assert future.result() == (1,) and len(calls) == 3
        assert recorder.take(future.run_id).tasks[0].retries == 2
        with pytest.raises(fd.TaskError, match="boom") as info:
            _inline_run(place, fd.task(boom)(1)).result()
        assert isinstance(info.value.__cause__, ValueError)
    finally:
        place.shutdown()


def test_the_default_executor_runs_a_tiny_tree_inline_once_measured():
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        leaves = list(range(512))
        for _ in range(3):
            assert ex.compute(_tree(leaves)) == sum(leaves)
        assert fd.last_run().run.settings["placement"] == "inline"
        for func in (lambda a, b: a + b, __import__("operator").add):
            for _ in range(3):
                assert ex.compute(_tree(leaves, func)) == sum(leaves)
            assert fd.last_run().run.settings["placement"] == "inline"
        prefix = ex.prefix
    assert _segments(prefix) == []


def test_a_placement_is_kept_until_the_evidence_is_clearly_against_it():
    place = _placement()
    dag = total(np.zeros(3)).dag
    try:
        _record(place, total, 0.05, 0.01)  # 20% of the time GIL-held: threads (score 0.4)
        assert place.where(dag) == "threads"
        _record(place, total, 0.05, 0.04, runs=12)  # held fraction 0.53: score 1.05, noise
        assert place.where(dag) == "threads"
        assert not place.prefers_threads(dag)  # what the rule alone would say
        _record(place, total, 0.05, 0.05, runs=60)  # fraction 0.87: score 1.75
        assert place.where(dag) == "processes"
        _record(place, total, 0.05, 0.005, runs=150)  # fraction 0.37: score 0.75
        assert place.prefers_threads(dag) and place.where(dag) == "processes"
        _record(place, total, 0.05, 0.0, runs=400)  # fraction 0.13: score 0.26
        assert place.where(dag) == "threads"
    finally:
        place.shutdown()


def _loop_pid(seconds: float) -> int:
    _python_loop(seconds)
    return os.getpid()


def test_a_first_graph_moves_its_gil_holding_tasks_to_the_workers_once_they_are_up():
    """Started on threads (no worker yet), pure-Python tasks go to the workers when they report in."""
    for tasks in (40, 120, 360):  # a slow machine boots the workers later
        with fd.LocalExecutor(workers=2, placement="auto") as ex:
            pids = ex.compute(*[fd.task(_loop_pid)(0.05) for _ in range(tasks)])
            assert fd.last_run().run.settings["placement"] == "threads"
            assert len(fd.last_run().tasks) == tasks
            workers = set(ex.worker_pids())
            prefix = ex.prefix
        assert _segments(prefix) == []
        if set(pids) & workers:
            assert set(pids) <= workers | {os.getpid()}
            return
    raise AssertionError("no task of the first graph ever ran on a worker")


def _python_loop_on(data: object, seconds: float) -> int:
    return _python_loop(seconds)


def test_a_first_graph_keeps_here_the_tasks_whose_inputs_cost_more_to_ship_than_they_save():
    """Offload weighs shipping: a GIL-holding task on 16 MB goes to a worker only if it runs long."""
    sent = []
    place = Placement(2, dict, submit=lambda plan, single: sent.append(plan) or "remote")
    try:
        loop = fd.task(_python_loop_on)
        for _ in range(3):
            place.profile.record(_python_loop_on, 0.05, 0.05)  # 50 ms, all of it GIL-held
        place.ready.set()
        big, small = np.zeros(2_000_000), np.zeros(10)  # 16 MB: ~70 ms there and back
        run = place.threads.new_run(fd.DAG([loop(big, 0.0), loop(small, 0.0)]), False)
        plan = run.plan
        index = {id(plan.args[k][0]): k for k in range(len(plan.tasks))}
        assert place.offload(run, index[id(big)]) is None
        assert place.offload(run, index[id(small)]) == "remote" and len(sent) == 1
        for _ in range(30):
            place.profile.record(_python_loop_on, 1.0, 1.0)  # now runs long: worth shipping
        assert place.offload(run, index[id(big)]) == "remote"
    finally:
        place.shutdown()


def test_data_the_graph_captured_weighs_for_threads():
    """Half GIL-held: processes for small inputs, threads once shipping the inputs to
    the workers costs more than the second core saves (a pandas groupby on its frame)."""
    place = _placement()
    try:
        _record(place, total, 0.01, 0.006)  # 60% GIL-held: 1.2 x what 2 cores overlap
        small = fd.DAG([total(np.zeros(1000)) for _ in range(4)])
        big = fd.DAG([total(np.zeros(2_000_000)) for _ in range(4)])  # 16 MB each
        assert place.where(small) == "processes" and not place.prefers_threads(small)
        assert place.prefers_threads(big) and place.where(big) == "threads"
    finally:
        place.shutdown()



def test_a_run_on_threads_is_tracked_before_its_first_task(threads):
    """The caller's metrics bookkeeping is done before the tasks compete with it for the GIL."""
    order = []

    def work(x):
        order.append("task")
        return x

    future = threads.start(fd.task(work)(1).dag, True, "", lambda f: order.append("track"))
    assert future.result(timeout=30) == 1 and order == ["track", "task"]


def test_short_runs_are_judged_by_their_sum():
    """2 ms runs are too short to sample one by one; summed, they tell GIL-free from
    GIL-bound (a dask.dataframe groupby chunk), wherever the sampler's cycles ended."""
    place = _placement()
    try:
        a = np.zeros(3)
        for k in range(100):  # GIL-free: no sampler cycle ever late
            place.profile.record(total.func, 0.002, 0.0)
        assert place.profile.get(total.func).held_fraction == 0.0
        assert place.where(fd.DAG([total(a) for _ in range(16)])) == "threads"
        for k in range(100):  # GIL-bound: a 7 ms late cycle ends in every third or so run
            place.profile.record(bump.func, 0.002, 0.007 if k % 7 in (0, 3) else 0.0)
        assert place.profile.get(bump.func).held_fraction > 0.9
        assert place.where(fd.DAG([bump(a) for _ in range(16)])) == "processes"
        place.from_worker(0, ("gil", 7, [], [0, 0.06, 0.0]), {7: _Run(ident(a).dag)})
        place.profile.record(ident.func, 0.002, None)  # its run time, from the run's records
        assert place.profile.get(ident.func).held_fraction == 0.0
    finally:
        place.shutdown()


class _Run:
    """What ``Placement.from_worker`` reads of a run: its plan."""

    def __init__(self, dag: fd.DAG):
        from fastdag.core.plan import build_plan
        self.plan = build_plan(dag)


def test_the_sampler_tells_short_python_runs_from_short_waits():
    """Measured for real, on one thread at a time: 2 ms runs summed."""
    pool = GuardedThreads(1, GilProfile(), dict)
    try:
        loop, nap = fd.task(_python_loop), fd.task(time.sleep)
        for _ in range(4):
            pool.compute(*[loop(0.002) for _ in range(20)])
            pool.compute(*[nap(0.002) for _ in range(20)])
        python, sleep = pool.profile.get(_python_loop), pool.profile.get(time.sleep)
        assert python.held_fraction > 0.3 > sleep.held_fraction, (python, sleep)
    finally:
        pool.shutdown()


def test_workers_send_the_sums_of_their_short_runs():
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        assert ex.compute(ident(1)) == 1
        ex.start_workers()  # a tiny first graph does not start them (lazystart.py)
        assert ex.placement.ready.wait(60), "workers never said they were up"
        ex.compute(*[fd.task(_python_loop)(0.001) for _ in range(60)])  # never seen: processes
        assert fd.last_run().run.settings.get("placement", "processes") == "processes"
        stats = ex.placement.profile.get(_python_loop)
        assert stats.window_s > 0, stats
        prefix = ex.prefix
    assert _segments(prefix) == []


def test_a_run_on_threads_sizes_its_first_batches_by_the_profile(threads):
    """Known 10 ms tasks go to the pool two by two (``TARGET_BATCH_SECONDS``), not 8 and 8."""
    graph = fd.DAG([total(np.zeros(3)) for _ in range(16)])
    assert threads.new_run(graph, False).mean_task_s() is None  # never measured
    for _ in range(3):
        threads.profile.record(total.func, 0.01, 0.0)
    assert threads.new_run(graph, False).mean_task_s() == pytest.approx(0.01)
    submitted = []
    pool = threads._get_pool()
    original = pool.submit
    pool.submit = lambda fn, batch, *rest: submitted.append(len(batch)) or original(fn, batch, *rest)
    try:
        assert len(threads.compute(*graph.sinks)) == 16
    finally:
        pool.submit = original
    assert submitted[:8] == [2] * 8, submitted


def test_runs_of_well_measured_functions_sample_the_gil_one_in_eight(threads):
    """The sampler takes the GIL every 2 ms: once a function's share is known, it is
    measured again now and then, not on every run."""
    def sampled(dag: fd.DAG, runs: int) -> list[bool]:
        made = [threads.new_run(dag, False) for _ in range(runs)]
        for run in made:
            run._stop_sampling()  # never started: let the sampler rest
        return [run.sample for run in made]

    graph = fd.DAG([total(np.zeros(3)) for _ in range(4)])
    assert all(sampled(graph, 10))  # never measured
    for _ in range(100):
        threads.profile.record(total.func, 0.02, 0.0)  # 2 s sampled
    assert sampled(graph, 16).count(True) == 2
    assert all(sampled(fd.DAG([total(np.zeros(3)), bump(np.zeros(3))]), 10))  # bump: never
    assert threads.sampler._users == 0
