"""A fresh default executor's start-up: workers started only when a graph needs them.

A graph of GIL-releasing work (numpy, Pillow, I/O) runs on threads and starts
no worker process, so nothing boots beside it; pure-Python work starts them
within a window or two of the GIL sampler, and they import the modules of
that graph's functions before they report up. No timing is asserted: the
sleeps are GIL-free by construction, the loops GIL-bound by construction.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import psutil
import pytest

import fastdag as fd
from fastdag.core.gil import GilSampler
from fastdag.core.plan import build_plan
from fastdag.executors import lazystart
from fastdag.executors.lazystart import LazyStart, modules_to_preload
from fastdag.executors.placement import Placement
from fastdag.metrics.monitor import rss_of
from tasks import imported
from test_placement import _python_loop


def _nap(seconds: float, i: int) -> int:
    time.sleep(seconds)  # releases the GIL
    return i


def test_a_first_graph_of_gil_releasing_tasks_starts_no_worker(monkeypatch):
    monkeypatch.setattr(lazystart, "LONG_RUN_S", 3600.0)  # however slow the machine
    nap = fd.task(_nap)
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        assert ex.compute(*[nap(0.05, i) for i in range(8)]) == tuple(range(8))
        assert fd.last_run().run.settings["placement"] == "threads"
        assert ex.worker_pids() == [] and not ex.placement.ready.is_set()


def test_a_first_graph_of_pure_python_tasks_starts_the_workers():
    loop = fd.task(_python_loop)
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        assert len(ex.compute(*[loop(0.05) for _ in range(12)])) == 12
        assert ex.placement.ready.wait(60), "the workers were never started"
        assert len(ex.worker_pids()) == 2


def test_a_graph_measured_holding_the_gil_starts_the_workers_before_it_runs():
    calls = []
    place = Placement(2, dict, start=lambda funcs: calls.append(1))
    loop = fd.task(_python_loop)
    try:
        assert place.where(loop(0.0).dag) == "threads" and calls == []  # never seen: measure
        for _ in range(3):
            place.profile.record(_python_loop, 0.05, 0.05)
        assert place.where(loop(0.0).dag) == "threads" and calls == [1]  # until they are up
        assert place.where(loop(0.0).dag) == "threads" and calls == [1]  # started once
        declared = Placement(2, dict, start=lambda funcs: calls.append(2))
        declared.where(fd.task(_nap, gil=True)(0.0, 0).dag)
        declared.shutdown()
        assert calls == [1, 2]
    finally:
        place.shutdown()


def test_lazy_start_does_nothing_once_closed_and_survives_a_failing_start():
    def fail(funcs) -> None:
        raise RuntimeError("this LocalExecutor has been shut down")
    failing = LazyStart(fail, GilSampler(), 2)
    failing.now([])  # swallowed: the next graph sent to the workers raises it
    assert failing.started
    calls = []
    closed = LazyStart(lambda funcs: calls.append(1), GilSampler(), 2)
    closed.close()
    closed.now([])
    assert calls == []


class _Pending:
    """A run still going, as the watcher sees one: its done-callbacks are kept, not called."""

    def add_done_callback(self, callback) -> None:
        self.callback = callback


def test_the_watcher_starts_the_workers_for_a_run_that_holds_the_gil(monkeypatch):
    monkeypatch.setattr(lazystart, "LONG_RUN_S", 3600.0)  # the GIL alone decides
    sampler, started = GilSampler(), threading.Event()
    lazy = LazyStart(lambda funcs: started.set(), sampler, 2)
    sampler.enter()
    try:
        lazy.watch(_Pending(), [])
        _python_loop(0.5)  # this thread holds the GIL against the sampler
        assert started.wait(10)
    finally:
        sampler.exit()


def test_the_watcher_of_a_run_that_waits_starts_nothing(monkeypatch):
    monkeypatch.setattr(lazystart, "LONG_RUN_S", 3600.0)
    sampler, started = GilSampler(), threading.Event()
    lazy = LazyStart(lambda funcs: started.set(), sampler, 2)
    pending = _Pending()
    sampler.enter()
    try:
        lazy.watch(pending, [])
        time.sleep(0.3)  # GIL-free
        pending.callback(pending)  # the run is done: the watcher stops
        time.sleep(0.1)
        assert not started.is_set()
    finally:
        sampler.exit()


class _SteadySampler:
    """A GilSampler stand-in whose held time grows at ``fraction`` of the wall time."""

    def __init__(self, fraction: float):
        self.fraction, self.start = fraction, time.perf_counter()

    @property
    def held(self) -> float:
        return self.fraction * (time.perf_counter() - self.start)


@pytest.mark.parametrize("fraction, starts", [(0.4, True), (0.1, False)])
def test_a_long_run_starts_the_workers_at_half_the_bar(monkeypatch, fraction, starts):
    """Below 1/workers in every window, but over half of it since the run began."""
    monkeypatch.setattr(lazystart, "LONG_RUN_S", 0.1)
    started = threading.Event()
    lazy = LazyStart(lambda funcs: started.set(), _SteadySampler(fraction), 2)
    pending = _Pending()
    lazy.watch(pending, [])
    try:
        assert started.wait(1.0 if starts else 0.5) is starts
    finally:
        pending.callback(pending)


def test_an_unknown_compute_option_fails_before_any_task_runs():
    ran = []

    def note(x: int) -> int:
        ran.append(x)
        return x
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        with pytest.raises(TypeError, match="bogus"):
            ex.compute(fd.task(note)(1), bogus=True)  # on threads: workers not up
        time.sleep(0.2)
        assert ran == []


def test_rss_of_reads_what_psutil_reads():
    me = psutil.Process()
    assert abs(rss_of([os.getpid()]) - me.memory_info().rss) < 16 * 2**20
    gone = psutil.Popen(["true"])
    gone.wait()
    assert rss_of([gone.pid]) == 0


def test_the_modules_to_preload_are_where_the_functions_live_and_what_main_code_names():
    import numpy as np
    scope = {"np": np, "__name__": "__main__"}
    exec("def f(x):\n    return np.sum(x)\n", scope)
    assert scope["f"].__module__ == "__main__"
    assert modules_to_preload([_nap, scope["f"], len, fd.task(_nap).func]) == [__name__, "numpy"]


def test_started_workers_import_the_graphs_modules_before_they_report_up():
    loop = fd.task(_python_loop)
    with fd.LocalExecutor(workers=2, placement="auto") as ex:
        ex.compute(*[loop(0.05) for _ in range(12)])  # _python_loop: from test_placement
        assert ex.placement.ready.wait(60)
        for _ in range(2):  # on the processes, where tasks.py imports no test module
            on_worker = ex.submit_plan(build_plan(imported("test_placement").dag), True)
            assert on_worker.result(60) is True


def test_starting_the_workers_leaves_the_switch_interval_as_it_was():
    before = sys.getswitchinterval()
    with fd.LocalExecutor(workers=1, placement="auto") as ex:
        ex.start_workers([_nap])
        assert sys.getswitchinterval() == before
        assert ex.placement.ready.wait(60)


def test_starting_workers_from_two_threads_puts_the_switch_interval_back(monkeypatch):
    """The short GIL switch interval of a spawn is the process's: two overlapping
    starts must not leave it set (the second one saved the first one's short value)."""
    from fastdag.executors import local as local_module
    before = sys.getswitchinterval()
    monkeypatch.setattr(local_module.LocalExecutor, "_ensure_started",
                        lambda self: time.sleep(0.2))  # a slow spawn, no processes
    executors = [fd.LocalExecutor(workers=1) for _ in range(2)]
    threads = [threading.Thread(target=ex.start_workers) for ex in executors]
    threads[0].start()
    time.sleep(0.05)
    threads[1].start()
    for t in threads:
        t.join()
    assert sys.getswitchinterval() == before
    for ex in executors:
        ex.shutdown()
