"""Another user on the same machine plants files and folders first: none of them is used.

Each test creates the hostile files before fastdag runs, as an attacker
would: a spill folder made by someone else, symlinks at the names fastdag
may pick, files under the names it will choose, segments carrying a pickle
that would run code. Files "of another user" belong to nobody (uid 65534),
which needs root to set up; the tests are skipped otherwise.

Older fastdag versions picked predictable names (``<prefix>-0``, a pid and
4 hex digits, a content hash); the tests plant those too, so that each one
fails on such a version. Names are now random, so to plant one the tests
make fastdag's name generator return a chosen name once (``collide_once``).
"""

from __future__ import annotations

import os
import pickle
import stat
import tempfile
import warnings

import numpy as np
import pytest

import fastdag as fd
from conftest import fastdag_segments
from fastdag.store.base import StoredRef
from fastdag.store.constants import ConstantCache, Pins, content_hash, open_constant
from fastdag.store.shm import SharedMemoryStore
from test_shared_memory import tiny_tmpfs  # noqa: F401 - a fixture

NOBODY = 65534
TAKEN = "0" * 16  # the random part of a name this test plants first
PLANTED = b"planted by another user"


@pytest.fixture(autouse=True)
def as_root():
    if os.geteuid() != 0:
        pytest.skip("making files of another user (nobody) needs root")


def plant(path, content: bytes = PLANTED, mode: int = 0o666) -> str:
    """A file of user nobody at ``path``, readable and writable by all."""
    with open(path, "wb") as f:
        f.write(content)
    os.chown(path, NOBODY, NOBODY)
    os.chmod(path, mode)
    return str(path)


def assert_untouched(path, content: bytes = PLANTED) -> None:
    st = os.lstat(path)
    assert st.st_uid == NOBODY, f"{path} changed owner"
    with open(path, "rb") as f:
        assert f.read() == content, f"fastdag wrote into {path}, a file another user planted"


def collide_once(monkeypatch) -> None:
    """Make fastdag's next fresh name ``<prefix>-<TAKEN><suffix>`` (planted by the test)."""
    try:
        from fastdag.store import files
    except ImportError:  # a version with predictable names: the test plants those
        return
    real = files.unique_name
    first = [True]

    def unique_name(prefix: str, suffix: str = "") -> str:
        if first[0]:
            first[0] = False
            return f"{prefix}-{TAKEN}{suffix}"
        return real(prefix, suffix)

    monkeypatch.setattr(files, "unique_name", unique_name)


# -- 1. the spill folder ------------------------------------------------------
@pytest.mark.parametrize("hostile", ["another user's", "open to all", "a symlink"])
def test_a_spill_folder_made_by_someone_else_is_never_used(hostile, tiny_tmpfs, tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    os.chmod(theirs, 0o777)
    os.chown(theirs, NOBODY, NOBODY)
    name = f"fastdag-spill-{os.geteuid()}"
    if hostile == "a symlink":
        os.symlink(theirs, tmp_path / name)
    elif hostile == "another user's":
        os.rename(theirs, tmp_path / name)
        theirs = tmp_path / name
    else:
        (tmp_path / name).mkdir()
        os.chmod(tmp_path / name, 0o777)
        theirs = tmp_path / name
    store = SharedMemoryStore("fastdag-test", directory=str(tiny_tmpfs))
    value = np.arange(1_000_000, dtype=np.float64)  # 8 MB: does not fit in 2 MiB, spills
    monkeypatch.setattr("fastdag.store.shm._warned", False)  # its one warning stays unspent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "/dev/shm is small"
        ref = store.put("x", value)
    folder = os.path.dirname(ref.key)
    st = os.lstat(folder)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid(), f"spilled into {folder}"
    assert stat.S_IMODE(st.st_mode) == 0o700, f"spill folder {folder} is open to others"
    assert os.listdir(theirs) == [], "a result was spilled into another user's folder"
    assert stat.S_IMODE(os.stat(ref.key).st_mode) == 0o600
    np.testing.assert_array_equal(store.get(ref), value)
    store.delete(ref)


# -- 2. the status file ---------------------------------------------------------
@fd.task
def inc(x):
    return x + 1


def test_the_status_file_never_follows_a_planted_symlink(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    ex = fd.LocalExecutor(workers=1)
    # Every name an older fastdag could pick for this process (pid + 4 hex
    # digits: 0.3 s to plant them all), and the one the generator picks first.
    links = [f"/dev/shm/fastdag-{os.getpid()}{h:04x}-status" for h in range(1 << 16)]
    links.append(f"/dev/shm/{ex.prefix}-{TAKEN}-status")
    collide_once(monkeypatch)
    try:
        for link in links:
            os.symlink(victim, link)
        assert inc(1).compute(executor=ex) == 2
        assert victim.read_bytes() == b"precious", "the status file was written through a symlink"
        assert all(os.readlink(link) == str(victim) for link in links)
    finally:
        ex.shutdown()
        for link in links:
            try:
                os.unlink(link)
            except FileNotFoundError:
                pass


# -- 3. taken segment names ---------------------------------------------------------
@fd.task
def total(a):
    return float(a.sum())


def test_a_taken_segment_name_is_retried_not_fatal(monkeypatch):
    ex = fd.LocalExecutor(workers=1, constant_cache=0)
    taken = [plant(f"/dev/shm/{ex.prefix}-c-{n}") for n in range(4)]  # older names
    taken.append(plant(f"/dev/shm/{ex.prefix}-c-{TAKEN}"))
    collide_once(monkeypatch)
    try:
        a = np.ones(1 << 16)  # 512 KiB in the plan: the plan goes to a segment
        assert total(a).compute(executor=ex) == float(1 << 16)
        ex.shutdown()  # sweeps its own files, not theirs
        for path in taken:
            assert_untouched(path)
    finally:
        ex.shutdown()
        for path in taken:
            if os.path.exists(path):
                os.unlink(path)
    assert fastdag_segments(ex.prefix) == set()


def test_a_stored_value_never_lands_in_a_planted_file(tmp_path, monkeypatch):
    store = SharedMemoryStore("fastdag-test", directory=str(tmp_path))
    taken = [plant(tmp_path / "fastdag-test-0"), plant(tmp_path / f"fastdag-test-{TAKEN}")]
    collide_once(monkeypatch)
    value = np.arange(100_000.0)
    ref = store.put("x", value)
    np.testing.assert_array_equal(store.get(ref), value)
    for path in taken:
        assert_untouched(path)


def test_result_array_files_never_replace_a_planted_file(tmp_path, monkeypatch):
    from fastdag.store import arena
    previous = arena.current()
    arena.install("fastdag-test-r", str(tmp_path))
    store = SharedMemoryStore("fastdag-test", directory=str(tmp_path))
    taken = [plant(tmp_path / name) for name in (  # older names, then the ones made to collide
        "fastdag-test-r-a0", "fastdag-test-0", f"fastdag-test-r-{TAKEN}", f"fastdag-test-{TAKEN}")]
    collide_once(monkeypatch)  # the arena's own file
    try:
        out = fd.result_array((1000, 100), np.float32)
        out[:] = 7
        collide_once(monkeypatch)  # the name the store gives it when adopting
        ref = store.put("x", out)
        np.testing.assert_array_equal(store.get(ref), out)
        assert len(os.listdir(tmp_path)) == len(taken) + 1, "the result was copied, not adopted"
    finally:
        arena._current = previous
    for path in taken:
        assert_untouched(path)


def test_a_constant_planted_under_its_hash_name_is_not_trusted(tmp_path, monkeypatch):
    cache = ConstantCache("fastdag-test", directory=str(tmp_path))
    a = np.arange(1 << 18, dtype=np.float64)
    taken = [plant(tmp_path / f"fastdag-test-k{content_hash(a)}"),  # older names: the hash
             plant(tmp_path / f"fastdag-test-k-{TAKEN}")]
    collide_once(monkeypatch)
    pins = Pins()
    rebuild, args = cache.reducer(a, pins)
    np.testing.assert_array_equal(rebuild(*args), a)
    for path in taken:
        assert_untouched(path)
    cache.unpin(pins.names)
    cache.clear()


# -- 4. nothing another user wrote is read ------------------------------------------
class Marker:
    """Unpickling this creates a file: stands for any code an attacker's pickle runs."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("hostile", ["another user's", "writable by others", "a symlink"])
def test_a_segment_someone_else_wrote_is_never_unpickled(hostile, tmp_path):
    shm = tmp_path / "shm"
    shm.mkdir()
    marker = tmp_path / "code-ran"
    header = pickle.dumps(Marker(str(marker)))
    segment = shm / "fastdag-test-x"
    if hostile == "a symlink":  # to a file of ours: the symlink itself is theirs
        target = tmp_path / "ours"
        target.write_bytes(header)
        os.chmod(target, 0o600)
        os.symlink(target, segment)
        os.lchown(segment, NOBODY, NOBODY)
    elif hostile == "another user's":
        plant(segment, header, 0o600)
    else:
        segment.write_bytes(header)
        os.chmod(segment, 0o666)
    store = SharedMemoryStore("fastdag-test", directory=str(shm))
    ref = StoredRef(key=segment.name, header=b"", size=len(header),
                    header_span=(0, len(header)))
    with pytest.raises(PermissionError, match="fastdag-test-x"):
        store.get(ref)
    assert not marker.exists(), "a pickle from a file another user wrote was unpickled"


def test_a_constant_someone_else_wrote_is_never_mapped(tmp_path):
    path = plant(tmp_path / "fastdag-test-k-x", np.ones(4).tobytes(), 0o600)
    with pytest.raises(PermissionError, match="fastdag-test-k-x"):
        open_constant(path, np.dtype(np.float64), (4,))


def test_a_status_file_someone_else_wrote_is_not_opened_by_a_worker(tmp_path):
    from fastdag.engine.worker import Worker
    path = plant(tmp_path / "fastdag-test-status", bytes(64), 0o600)
    with pytest.raises(PermissionError, match="fastdag-test-status"):
        Worker(None, 0, path, "fastdag-test")


@pytest.mark.redis
def test_a_handoff_reference_carries_and_signs_the_whole_header(redis_server, tmp_path):
    """A value handed over through /dev/shm with a big header (a plan, a dict) loads, and its
    header travels in the signed reference: the segment holds only array bytes."""
    import redis

    from fastdag.distributed.handoff import HandOff
    from fastdag.core.signing import Signer
    from fastdag.store.redis import RedisStore
    client = redis.Redis.from_url(redis_server.url)
    handoff = HandOff(RedisStore(client, Signer("k" * 32), ttl=60), directory=str(tmp_path))
    value = {f"k{i}": i for i in range(5000)}  # a pickled header of about 50 KiB
    value["a"] = np.ones(1 << 18)               # 2 MiB: through /dev/shm, not Redis
    pipe = client.pipeline()
    handoff.queue_put(pipe, "run:", "run:v", value, remote=False)
    pipe.execute()
    (segment,) = os.listdir(tmp_path)
    assert os.path.getsize(tmp_path / segment) == value["a"].nbytes, "the header is in the file"
    handoff.cache.drop("run:v")
    back = handoff.get_key("run:v")
    assert back["k4999"] == 4999
    np.testing.assert_array_equal(back["a"], value["a"])
    handoff.sweep_run("run:")
    client.close()
