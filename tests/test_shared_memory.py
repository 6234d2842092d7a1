"""The shared-memory data plane: zero-copy reads, copy-on-write isolation, cleanup."""

from __future__ import annotations

import mmap
import os
import pickle

import numpy as np
import pyarrow as pa
import pytest

import fastdag as fd
from conftest import fastdag_segments
from fastdag.store import MemoryStore, SharedMemoryStore


def mapped(array: np.ndarray) -> bool:
    """True if the array's memory is an mmap (a shared-memory segment)."""
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        if isinstance(base, memoryview):
            base = base.obj
        else:
            base = getattr(base, "base", None)
    return False


@fd.task
def make(n, seed):
    return np.random.default_rng(seed).random(n)


@fd.task
def double(a):
    return a * 2


@fd.task
def is_mapped(a):
    return mapped(a)


@fd.task
def scribble(a):
    a[:] = -1.0  # writes into its input
    return float(a.sum())


@fd.task
def checksum(a, _after=None):
    return float(a.sum())


N = 4_000_000  # 32 MB


def test_consumers_map_the_producer_output(local_executor):
    src = make(N, 1)  # two consumers: stored once, each maps it
    flags = fd.compute(is_mapped(src), is_mapped(src), checksum(src), executor=local_executor)
    assert flags[:2] == (True, True)
    assert flags[2] == pytest.approx(float(np.random.default_rng(1).random(N).sum()))


def test_chain_keeps_data_in_the_worker(local_executor):
    # A single consumer in the same worker gets the object itself: no store trip.
    assert is_mapped(double(make(N, 1))).compute(executor=local_executor) is False


def test_large_constant_travels_once_through_shared_memory(local_executor):
    array = np.arange(N, dtype=np.float64)
    assert is_mapped(array).compute(executor=local_executor) is True


def test_writes_into_an_input_stay_private(local_executor):
    src = make(N, 2)
    expected = float(make(N, 2).compute(executor=fd.SyncExecutor()).sum())
    writer = scribble(src)
    sibling = checksum(src, writer)  # runs after the writer
    value, wrote, seen = fd.compute(src, writer, sibling, executor=local_executor)
    assert wrote == -N
    assert seen == pytest.approx(expected)
    assert float(value.sum()) == pytest.approx(expected)


def test_results_handed_back_are_writeable(local_executor):
    value = double(make(N, 3)).compute(executor=local_executor)
    assert value.flags.writeable
    value[0] = 42.0
    assert value[0] == 42.0


def test_chain_of_tasks_over_a_large_array(local_executor):
    node = make(N, 4)
    for _ in range(4):
        node = double(node)
    out = node.compute(executor=local_executor)
    np.testing.assert_allclose(out, np.random.default_rng(4).random(N) * 16)


def test_arrow_tables_round_trip(local_executor):
    @fd.task
    def table(n):
        return pa.table({"x": np.arange(n), "y": np.arange(n) * 0.5})

    @fd.task
    def total(t):
        import pyarrow.compute as pc
        return t.num_rows, float(pc.sum(t["y"]).as_py())

    t = table(100_000)
    rows, s = total(t).compute(executor=local_executor)
    assert rows == 100_000 and s == pytest.approx(0.5 * sum(range(100_000)))
    back = t.compute(executor=local_executor)
    assert isinstance(back, pa.Table) and back.num_rows == 100_000


def test_no_segments_left_after_runs(local_executor):
    before = fastdag_segments(local_executor.prefix)
    for seed in range(3):
        double(make(N, seed)).compute(executor=local_executor)
    leftover = {s for s in fastdag_segments(local_executor.prefix) - before
                if not s.endswith("-status")}
    assert leftover == set()


def test_store_inline_small_values_and_aligned_buffers(tmp_path):
    store = SharedMemoryStore("fastdag-test", directory=str(tmp_path))
    small = store.put("a", np.arange(10))
    assert small.inline is not None and not os.listdir(tmp_path)
    big_value = {"a": np.arange(100_000, dtype=np.int64), "b": b"x" * 100_001,
                 "c": np.ones(70_000, dtype=np.uint8)}
    ref = store.put("b", big_value)
    assert ref.inline is None and all(off % 64 == 0 for off, _ in ref.layout)
    back = store.get(ref)
    np.testing.assert_array_equal(back["a"], big_value["a"])
    assert back["b"] == big_value["b"] and back["c"].sum() == 70_000
    assert store.contains(ref)
    store.delete(ref)
    assert not store.contains(ref)
    with pytest.raises(KeyError):
        store.get(ref)
    np.testing.assert_array_equal(store.get(small), np.arange(10))


def test_large_pickled_headers_stay_out_of_the_ref(tmp_path):
    # A big dict is all header: it goes into the segment, the ref stays small.
    store = SharedMemoryStore("fastdag-test", directory=str(tmp_path))
    words = {f"word{i}": i for i in range(20_000)}
    ref = store.put("w", words)
    assert ref.inline is None and ref.header == b"" and ref.header_span is not None
    assert len(pickle.dumps(ref)) < 1024
    assert store.get(ref) == words and ref.nbytes >= ref.header_span[1]
    mixed = {"a": np.arange(100_000), "words": words}
    ref = store.put("m", mixed)
    back = store.get(ref)
    assert back["words"] == words and ref.header == b""
    np.testing.assert_array_equal(back["a"], mixed["a"])
    store.sweep()


def test_store_sweep_and_prefix_rule(tmp_path):
    with pytest.raises(ValueError):
        SharedMemoryStore("other-prefix")
    store = SharedMemoryStore("fastdag-sweep", directory=str(tmp_path))
    for i in range(3):
        store.put(str(i), np.zeros(100_000))
    assert store.sweep() == 3 and not os.listdir(tmp_path)


def test_memory_store():
    store = MemoryStore()
    ref = store.put("k", [1, 2])
    assert store.get(ref) == [1, 2] and store.contains(ref) and len(store) == 1
    store.delete(ref)
    assert not store.contains(ref)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 2 MiB tmpfs, as /dev/shm is in a default Docker container (only smaller)."""
    import subprocess
    where = tmp_path / "shm"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_store_spills_to_files_when_shared_memory_is_full(tiny_tmpfs, tmp_path):
    spill = tmp_path / "spill"
    store = SharedMemoryStore("fastdag-spill", directory=str(tiny_tmpfs), spill_dir=str(spill))
    value = np.arange(1_000_000, dtype=np.float64)  # 8 MB > 2 MiB
    with pytest.warns(RuntimeWarning, match="shm-size"):
        ref = store.put("x", value)
    assert os.listdir(tiny_tmpfs) == [] and len(os.listdir(spill)) == 1
    np.testing.assert_array_equal(store.get(ref), value)
    assert store.sweep() == 1 and os.listdir(spill) == []


def test_store_spills_beyond_its_shared_memory_budget(tmp_path, monkeypatch):
    """The spill path without a tmpfs mount: a 2 MiB budget makes an 8 MB value spill."""
    from fastdag.store import shm
    monkeypatch.setattr(shm, "_warned", False)   # the warning is once per process
    where, spill = tmp_path / "shm", tmp_path / "spill"
    where.mkdir()
    store = SharedMemoryStore("fastdag-budget", directory=str(where), spill_dir=str(spill),
                              shm_budget=2 * 2**20)
    small = np.arange(200_000, dtype=np.float64)  # 1.6 MB: fits
    small_ref = store.put("s", small)
    assert os.listdir(where) == [small_ref.key]
    big = np.arange(1_000_000, dtype=np.float64)  # 8 MB: over the budget
    with pytest.warns(RuntimeWarning, match="shm-size"):
        big_ref = store.put("b", big)
    assert os.listdir(where) == [small_ref.key]
    assert [str(spill / name) for name in os.listdir(spill)] == [big_ref.key]
    np.testing.assert_array_equal(store.get(big_ref), big)
    np.testing.assert_array_equal(store.get(small_ref), small)
    store.delete(small_ref)
    store.delete(big_ref)
    assert os.listdir(where) == [] and os.listdir(spill) == []


_KEPT: list = []


@fd.task
def big_and_kept(n):
    array = np.full(n, 7.0)
    _KEPT.append(array)  # another reference: the worker must copy, not move, it
    return array


@fd.task
def kept_sum(_):
    return float(_KEPT[-1].sum())


@fd.task
def big_ones(n):
    return np.ones(n)


def test_large_result_is_moved_and_shared_values_are_not(local_executor):
    n = 20_000_000  # 160 MB: above the size moved page by page
    moved = big_ones(n).compute(executor=local_executor)
    assert moved.sum() == n
    value = big_and_kept(n)
    result, kept = fd.compute(value, kept_sum(value), executor=local_executor)
    assert result.sum() == 7.0 * n and kept == 7.0 * n


def test_store_consume_releases_the_source(tmp_path):
    store = SharedMemoryStore("fastdag-move", directory=str(tmp_path))
    from fastdag.core.serialize import dumps
    source = np.full(40_000_000, 3.0)  # 320 MB
    ref = store.put_payload("m", dumps(source), consume=True)
    np.testing.assert_array_equal(store.get(ref)[:5], 3.0)
    assert float(store.get(ref).sum()) == 3.0 * source.size
    assert source[1024:1_000_000].sum() == 0.0  # its whole pages were given back
    store.delete(ref)


@fd.task
def born_in_shm(n):
    out = fd.result_array((n,), np.float64)
    out[:] = 3.0
    return out


def test_result_array_on_every_executor(executor):
    value = born_in_shm(N).compute(executor=executor)
    assert value.shape == (N,) and value.flags.writeable and float(value[-1]) == 3.0
    # kept in the worker (one consumer there), stored for two consumers, and wanted
    node = born_in_shm(N)
    a, b, c = fd.compute(checksum(node), checksum(double(node)), checksum(born_in_shm(N)),
                         executor=executor)
    assert (a, b, c) == (3.0 * N, 6.0 * N, 3.0 * N)


def test_result_array_files_are_adopted_or_removed(local_executor):
    prefix = local_executor.prefix
    before = fastdag_segments(prefix)
    for _ in range(3):
        assert checksum(born_in_shm(N)).compute(executor=local_executor) == 3.0 * N  # kept
        assert born_in_shm(N).compute(executor=local_executor)[0] == 3.0  # stored, adopted
    leftover = {s for s in fastdag_segments(prefix) - before if not s.endswith("-status")}
    assert leftover == set()


def test_store_adopts_an_arena_file_without_copying(tmp_path):
    from fastdag.core.serialize import dumps
    from fastdag.store import arena
    previous = arena.current()
    mine = arena.install("fastdag-test-r", str(tmp_path))
    try:
        store = SharedMemoryStore("fastdag-test", directory=str(tmp_path))
        out = fd.result_array((1000, 100), np.float32)
        out[:] = 7
        (arena_file,) = os.listdir(tmp_path)
        ref = store.put("x", out)
        assert os.listdir(tmp_path) == [ref.key] and arena_file != ref.key  # renamed, not copied
        back = store.get(ref)
        np.testing.assert_array_equal(back, out)
        del out
        assert os.listdir(tmp_path) == [ref.key]  # the store owns it now
        store.delete(ref)
        plain = fd.result_array((10,), np.int64)  # dropped without being stored: removed
        del plain
        assert os.listdir(tmp_path) == []
        assert mine.find(memoryview(np.zeros(4))) is None
    finally:
        arena._current = previous
