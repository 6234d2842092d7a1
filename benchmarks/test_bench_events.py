"""What an event subscriber costs: a 4,096-leaf tree reduction on the default LocalExecutor.

* ``none``: no subscriber of ours (metrics on, as every run: the run
  recorder that builds ``fd.last_run()`` is the executor's own subscriber).
* ``subscriber``: one plain (non-batched) subscriber that counts events, so
  every task's records are expanded into TaskStarted / TaskFinished for it.

The issue's bound: ``subscriber`` at most 5% over ``none`` (median). Run::

    pytest benchmarks/test_bench_events.py --benchmark-only --benchmark-columns=median,iqr
"""

from __future__ import annotations

import statistics
import time

import pytest

import fastdag as fd
from test_bench_tree import EXPECTED, LEAVES, fastdag_tree

ROUNDS = 60


def tree() -> fd.Node:
    return fastdag_tree(LEAVES)


def counter() -> tuple[list[int], object]:
    """The trivial subscriber (a function that counts its events) and its count."""
    count = [0]

    def on_event(event: object) -> None:
        count[0] += 1

    return count, on_event


@pytest.fixture
def local(fd_local):
    """The session's LocalExecutor (conftest), its workers started outside the measurement."""
    fd_local.compute(fastdag_tree(64))
    return fd_local


@pytest.mark.benchmark(group="events_overhead")
@pytest.mark.parametrize("mode", ["none", "subscriber"])
def test_tree_reduction_with_subscriber(benchmark, local, mode):
    count, on_event = counter()
    subscription = local.subscribe(on_event) if mode == "subscriber" else None
    try:
        result = benchmark.pedantic(lambda: local.compute(tree()), rounds=ROUNDS,
                                    warmup_rounds=3, iterations=1)
    finally:
        if subscription is not None:
            subscription.unsubscribe()
    assert result == EXPECTED
    if subscription is not None:  # every task's start and end reached the subscriber
        assert count[0] >= 2 * (LEAVES - 1) * (ROUNDS + 3)


@pytest.mark.benchmark(group="events_overhead_paired")
def test_subscriber_overhead_paired(benchmark, local):
    """Rounds with and without the subscriber, alternating, so load changes hit both.

    ``extra_info``: ``ratio``, the median over pairs of wall time (with /
    without), the figure to hold against the 5% bound; ``cpu_ratio``, the
    same of this process's CPU time (steadier on a busy machine).
    """
    count, on_event = counter()
    wall: list[float] = []
    cpu: list[float] = []

    def timed(subscribed: bool) -> tuple[float, float]:
        subscription = local.subscribe(on_event) if subscribed else None
        began, began_cpu = time.perf_counter(), time.process_time()
        assert local.compute(tree()) == EXPECTED
        took = time.perf_counter() - began, time.process_time() - began_cpu
        if subscription is not None:
            subscription.unsubscribe()
        return took

    def pairs() -> None:
        for k in range(ROUNDS):
            first = k % 2 == 0  # alternate which one runs first
            a = timed(first)
            b = timed(not first)
            with_s, without = (a, b) if first else (b, a)
            wall.append(with_s[0] / without[0])
            cpu.append(with_s[1] / without[1])

    benchmark.pedantic(pairs, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(ratio=statistics.median(wall), cpu_ratio=statistics.median(cpu))
    print(f"\nsubscriber / none, median of {len(wall)} pairs: wall {statistics.median(wall):.3f}, "
          f"client CPU {statistics.median(cpu):.3f}")
    assert count[0] >= 2 * (LEAVES - 1) * ROUNDS
