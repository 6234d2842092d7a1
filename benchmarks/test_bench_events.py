"""What an event subscriber costs: a 4,096-leaf tree reduction, on two executors.

Executors: ``default``, the one ``fd.compute()`` makes (``placement="auto"``:
it runs this tree inline in the caller's thread, about 7 ms), and ``local``,
a ``LocalExecutor`` sending every graph to its worker processes.

Subscribers, each reading every task's start and end:

* ``none``: no subscriber of ours (metrics on, as every run: the run
  recorder that builds ``fd.last_run()`` is the executor's own subscriber).
* ``plain``: a plain subscriber, one ``TaskStarted`` and one ``TaskFinished``
  per task (records expanded for it on the bus's thread).
* ``batched``: a ``batched=True`` subscriber reading each ``TaskBatch`` as
  columns (``TaskBatch.table()``).

Plain subscribers are called by the bus's own thread, mostly after the run's
future resolved, so every timed round ends with ``event_bus.flush()``,
outside the wall time (the delivery must not land in the next round) but
inside the process's CPU time: ``wall`` is what the caller waits for its
result, ``caller CPU`` the calling thread's CPU time meanwhile (steadier
than wall time on a busy machine; on ``local`` most work is on the
scheduler thread), ``process CPU`` every thread's until the events were
delivered, all the work the subscriber caused. The issue's bound: a run with a subscriber at most 5% over one
without. Run::

    PYTHONPATH=$PWD python -m pytest benchmarks/test_bench_events.py -k paired --benchmark-only -s
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

import fastdag as fd
from fastdag import events as ev
from fastdag.core.records import END, START
from test_bench_tree import EXPECTED, LEAVES, fastdag_tree

ROUNDS = 60


def tree() -> fd.Node:
    return fastdag_tree(LEAVES)


class Reader:
    """A subscriber that reads every task's start and end: tasks seen, their busy time."""

    def __init__(self) -> None:
        self.tasks = 0
        self.busy_s = 0.0

    def plain(self, event: Any) -> None:
        if type(event) is ev.TaskFinished:
            self.tasks += 1
            self.busy_s += event.end - event.start

    def batched(self, event: Any) -> None:
        kind = type(event)
        if kind is ev.TaskBatch:
            table = event.table()
            self.tasks += len(table)
            self.busy_s += float((table[:, END] - table[:, START]).sum())
        elif kind is ev.TaskFinished:
            self.plain(event)

    def subscribe(self, executor: fd.Executor, mode: str) -> Any:
        if mode == "none":
            return None
        return executor.subscribe(getattr(self, mode), batched=mode == "batched")


@pytest.fixture
def local(fd_local):
    """The session's LocalExecutor (conftest), its workers started outside the measurement."""
    fd_local.compute(fastdag_tree(64))
    return fd_local


@pytest.fixture
def default(fd_default):
    """The executor fd.compute() makes, once it has learnt to run this tree inline."""
    for _ in range(10):
        fd_default.compute(tree())
        if fd.last_run().run.settings.get("placement") == "inline":
            return fd_default
    pytest.skip("the default executor did not place the tree inline")


@pytest.fixture(params=["default", "local"])
def executor(request):
    return request.getfixturevalue(request.param)


def timed(executor: fd.Executor, reader: Reader, mode: str) -> tuple[float, float, float]:
    """One run: seconds of wall time and of the caller's CPU time until its result,
    and of this process's CPU time until its events were delivered."""
    subscription = reader.subscribe(executor, mode)
    graph = tree()
    began, began_caller, began_cpu = time.perf_counter(), time.thread_time(), time.process_time()
    assert executor.compute(graph) == EXPECTED
    wall, caller = time.perf_counter() - began, time.thread_time() - began_caller
    executor.event_bus.flush()
    cpu = time.process_time() - began_cpu
    if subscription is not None:
        subscription.unsubscribe()
    return wall, caller, cpu


@pytest.mark.benchmark(group="events_overhead")
@pytest.mark.parametrize("mode", ["none", "plain", "batched"])
def test_tree_reduction_with_subscriber(benchmark, executor, mode):
    reader = Reader()
    subscription = reader.subscribe(executor, mode)
    try:
        result = benchmark.pedantic(lambda: executor.compute(tree()), rounds=ROUNDS,
                                    warmup_rounds=3, iterations=1)
        executor.event_bus.flush()
    finally:
        if subscription is not None:
            subscription.unsubscribe()
    assert result == EXPECTED
    if mode != "none":  # every task's end reached the subscriber
        assert reader.tasks == (LEAVES - 1) * (ROUNDS + 3)


@pytest.mark.benchmark(group="events_overhead_paired")
@pytest.mark.parametrize("mode", ["plain", "batched"])
def test_subscriber_overhead_paired(benchmark, executor, mode, request):
    """Rounds with and without the subscriber, alternating, so load changes hit both.

    ``extra_info``: ``ratio``, the median over pairs of wall time (with /
    without), the figure to hold against the 5% bound; ``caller_cpu_ratio``,
    the same of the calling thread's CPU time (steadier on a busy machine);
    ``cpu_ratio``, of this process's CPU time including the delivery: what
    the subscriber costs in all.
    """
    reader = Reader()
    times: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}

    def pairs() -> None:
        for k in range(ROUNDS):
            first = k % 2 == 0  # alternate which one runs first
            for subscribed in (first, not first):
                times[subscribed].append(timed(executor, reader, mode if subscribed else "none"))

    benchmark.pedantic(pairs, rounds=1, iterations=1, warmup_rounds=0)
    (wall, walls), (caller, callers), (cpu, cpus) = (_ratio(times, k) for k in range(3))
    benchmark.extra_info.update(ratio=wall, caller_cpu_ratio=caller, cpu_ratio=cpu)
    name = request.node.callspec.params["executor"]
    print(f"\n{name} {mode} / none, median of {ROUNDS} pairs: wall {wall:.3f} ({walls} ms), "
          f"caller CPU {caller:.3f} ({callers}), process CPU {cpu:.3f} ({cpus})")
    assert reader.tasks == (LEAVES - 1) * ROUNDS and reader.busy_s > 0


def _ratio(times: dict[bool, list[tuple[float, ...]]], k: int) -> tuple[float, str]:
    """Median over pairs of (with / without) of measure ``k``, and both medians in ms."""
    ratio = statistics.median(a[k] / b[k] for a, b in zip(times[True], times[False]))
    with_s, without = (statistics.median(t[k] for t in times[s]) * 1e3 for s in (True, False))
    return ratio, f"{with_s:.2f} / {without:.2f}"
