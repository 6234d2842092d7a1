"""Large arrays captured in graphs: cached in shared memory by content, across runs."""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastdag as fd
from conftest import fastdag_segments
from fastdag.core.serialize import dumps, loads
from fastdag.store.constants import MIN_BYTES, ConstantCache, Pins, content_hash

N = 1 << 18  # 2 MiB of float64: above the cache's minimum


@fd.task
def total(a):
    return float(a.sum())


@fd.task
def scribble_sum(a):
    a[:] = 1.0  # writes into its (cached, copy-on-write) input
    return float(a.sum())


def cached(ex: fd.LocalExecutor) -> set[str]:
    return fastdag_segments(ex.prefix + "-k")


@pytest.fixture
def executor():
    ex = fd.LocalExecutor(workers=2)
    yield ex
    ex.shutdown()
    assert not fastdag_segments(ex.prefix)


def test_second_run_reuses_the_segment(executor):
    a = np.arange(N, dtype=np.float64)
    assert total(a).compute(executor=executor) == float(a.sum())
    first = cached(executor)
    assert len(first) == 1
    assert total(a).compute(executor=executor) == float(a.sum())
    assert cached(executor) == first


def test_an_array_changed_in_place_is_never_read_stale(executor):
    a = np.ones(N)
    assert total(a).compute(executor=executor) == N
    a[:] = 2.0
    assert total(a).compute(executor=executor) == 2 * N
    assert len(cached(executor)) == 2  # a new name for new bytes


def test_views_of_one_array_are_named_by_where_they_sit(executor):
    a = np.random.default_rng(0).random((1024, 1024))
    blocks = [a[:512, :512], a[:512, 512:], a[512:, :512], a[512:, 512:]]
    expected = [float(b.sum()) for b in blocks]
    got = fd.compute(*[total(b) for b in blocks], executor=executor)
    assert list(got) == pytest.approx(expected)
    assert len(cached(executor)) == 4
    a[600, 600] = 100.0  # one block changes; views are named after the whole array
    got = fd.compute(*[total(b) for b in blocks], executor=executor)
    assert list(got) == pytest.approx([*expected[:3], float(blocks[3].sum())])
    assert float(blocks[3].sum()) != pytest.approx(expected[3])
    assert len(cached(executor)) == 8


def test_writes_into_a_cached_input_stay_private(executor):
    a = np.zeros(N)
    assert scribble_sum(a).compute(executor=executor) == N
    assert total(a).compute(executor=executor) == 0.0
    assert not a.any()


def test_cache_off_and_small_arrays_are_not_cached():
    ex = fd.LocalExecutor(workers=1, constant_cache=0)
    try:
        assert total(np.ones(N)).compute(executor=ex) == N
        assert not cached(ex)
    finally:
        ex.shutdown()
    small = ConstantCache("fastdag-test-small")
    assert small.reducer(np.ones(MIN_BYTES // 8 - 1), Pins()) is None


def test_budget_evicts_the_least_recently_used_unpinned_entry(tmp_path):
    cache = ConstantCache("fastdag-test-budget", budget=3 * N * 8 // 2, directory=str(tmp_path))
    a, b = np.ones(N), np.full(N, 2.0)
    pins_a, pins_b = Pins(), Pins()
    assert cache.reducer(a, pins_a) is not None
    # a is pinned by a run still going: b cannot make room, so b is not cached
    assert cache.reducer(b, pins_b) is None
    cache.unpin(pins_a.names)
    assert cache.reducer(b, pins_b) is not None
    assert len(cache) == 1 and cache.nbytes == b.nbytes
    assert sorted(p.name for p in tmp_path.iterdir()) == [pins_b.names[0].rsplit("/", 1)[-1]]
    cache.unpin(pins_b.names)
    cache.clear()
    assert not list(tmp_path.iterdir())


def test_round_trip_of_strided_and_fortran_arrays(tmp_path):
    cache = ConstantCache("fastdag-test-layout", directory=str(tmp_path))
    base = np.arange(512 * 1024, dtype=np.float64).reshape(512, 1024)
    records = np.zeros(1 << 17, dtype=[("x", "f8"), ("n", "i4")])  # field names must survive
    records["n"] = np.arange(records.size)
    for array in (base[:, ::2], np.asfortranarray(base), base[100:400, 3:900], records):
        pins = Pins()
        payload = dumps([array], lambda x: cache.reducer(x, pins))
        assert pins.names and payload.nbytes < 4096  # by reference, not by value
        back = loads(payload.header, payload.buffers)[0]
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable
        cache.unpin(pins.names)
    cache.clear()


def test_content_hash_ignores_layout_but_not_values():
    a = np.arange(4096, dtype=np.float64).reshape(64, 64)
    assert content_hash(a[:, :32]) == content_hash(np.ascontiguousarray(a[:, :32]))
    b = a.copy()
    b[0, 0] = -1
    assert content_hash(a) != content_hash(b)


def test_entries_idle_too_long_are_evicted(tmp_path):
    cache = ConstantCache("fastdag-test-idle", directory=str(tmp_path), idle_seconds=0.5)
    first, second = Pins(), Pins()
    cache.reducer(np.ones(N), first)
    cache.unpin(first.names)
    assert len(cache) == 1  # not idle long enough yet
    time.sleep(0.6)
    cache.reducer(np.zeros(N), second)
    cache.unpin(second.names)  # the first entry has idled since its own unpin
    assert len(cache) == 1 and [p.name for p in tmp_path.iterdir()] == \
        [second.names[0].rsplit("/", 1)[-1]]
    cache.clear()


def test_an_idle_executor_gives_cached_constants_back():
    ex = fd.LocalExecutor(workers=1)
    ex.constants.idle_seconds = 0.2
    try:
        assert total(np.ones(N)).compute(executor=ex) == N
        deadline = time.time() + 10
        while cached(ex) and time.time() < deadline:
            time.sleep(0.05)  # nothing runs: the scheduler thread expires the entry itself
        assert not cached(ex) and ex.constants.nbytes == 0
    finally:
        ex.shutdown()
