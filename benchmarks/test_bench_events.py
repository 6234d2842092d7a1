"""What an event subscriber costs: a 4,096-leaf tree reduction on the default LocalExecutor.

* ``none``: no subscriber of ours (metrics on, as every run: the run
  recorder that builds ``fd.last_run()`` is the executor's own subscriber).
* ``subscriber``: one plain (non-batched) subscriber that counts events, so
  every task's records are expanded into TaskStarted / TaskFinished for it.

The issue's bound: ``subscriber`` at most 5% over ``none`` (median). Run::

    pytest benchmarks/test_bench_events.py --benchmark-only --benchmark-columns=median,iqr
"""

from __future__ import annotations

import pytest

import fastdag as fd

LEAVES = 4096
ROUNDS = 40


@fd.task
def add(x, y):
    return x + y


def tree(leaves: int = LEAVES) -> fd.Node:
    level = list(range(leaves))
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class Counter:
    """The trivial subscriber: counts what it is given."""

    def __init__(self) -> None:
        self.events = 0

    def __call__(self, event: object) -> None:
        self.events += 1


@pytest.fixture(scope="module")
def local():
    ex = fd.LocalExecutor(workers=2)
    ex.compute(tree(64))  # start the workers outside the measurement
    yield ex
    ex.shutdown()


@pytest.mark.benchmark(group="events_overhead")
@pytest.mark.parametrize("mode", ["none", "subscriber"])
def test_tree_reduction_with_subscriber(benchmark, local, mode):
    counter = Counter()
    subscription = local.subscribe(counter) if mode == "subscriber" else None
    try:
        result = benchmark.pedantic(lambda: local.compute(tree()), rounds=ROUNDS,
                                    warmup_rounds=3, iterations=1)
    finally:
        if subscription is not None:
            subscription.unsubscribe()
    assert result == LEAVES * (LEAVES - 1) // 2
    if subscription is not None:  # every task's start and end reached the subscriber
        assert counter.events >= 2 * (LEAVES - 1) * (ROUNDS + 3)
