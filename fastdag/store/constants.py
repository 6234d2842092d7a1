"""Graph constants kept in shared memory across runs, found by their content.

A numpy array passed straight into task calls (a block of a matrix, a tile of
an image) is part of the graph. Workers read it from shared memory, so every
run had to copy it there first: about 3 GB/s, page faults on fresh tmpfs pages
included, paid before the first task could start. Hashing the same bytes with
BLAKE3 runs at 6-10 GB/s. So each large array is known by the hash of its bytes
and written once; a later run whose graph captures the same bytes (the same
array, unchanged, or an equal one) maps the segment that is already there.
Naming by content makes this safe: an array changed in place between two runs
has a new hash, so no run ever reads stale data. BLAKE3 is a cryptographic
hash, so two different arrays cannot be made to share one.

Lifetime, owned by the executor that made the cache:

* a run *pins* the entries its plan refers to, from the moment the plan is
  pickled until the run is forgotten (a worker may map them any time before);
* unpinned entries are evicted least recently used first when the cache would
  exceed its byte budget, and once unused for ``idle_seconds`` (the
  executor's scheduler thread wakes up for that even when nothing runs);
* everything left is unlinked by the executor's sweep at shutdown (entries are
  named ``<executor prefix>-k-<64 random bits>``).

The name of a segment is random, not the hash: a name anyone can compute
is a name another user can plant a file under first. The cache maps each
hash to the segment it wrote (a new file, ``files.create_exclusive``), and
``open_constant`` maps a file only if our uid wrote it (``files.open_owned``).

An array larger than the budget, or one that does not fit in /dev/shm, is
simply not cached: it travels inside the run's own plan segment as before.
"""

from __future__ import annotations

import collections
import errno
import mmap
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import files
from .files import SHM_DIR
from .pages import write_all

MIN_BYTES = 1 << 20          # smaller arrays are cheaper to copy than to track
BUDGET_FRACTION = 0.25       # default budget: this share of /dev/shm's size
IDLE_SECONDS = 300.0
_MAX_PIECES = 1 << 16        # more contiguous pieces than this: hash a compact copy
ROOT_HASH_MAX = 4 << 30      # views of larger arrays are hashed on their own


@dataclass
class Pins:
    """What one pickling of a plan pinned, and the hashes it computed on the way."""

    names: list[str] = field(default_factory=list)
    roots: dict[int, tuple[np.ndarray, str]] = field(default_factory=dict)  # id -> (root, hash)


class ConstantCache:
    """Content-addressed /dev/shm segments for the large arrays graphs capture.

    ``reducer(array, pins)`` is the pickling hook (see ``serialize.dumps``):
    it returns how to rebuild the array from its segment, and adds the
    segment's name to ``pins``; ``unpin(pins.names)`` releases them.
    """

    def __init__(self, prefix: str, budget: int | None = None, directory: str = SHM_DIR,
                 idle_seconds: float = IDLE_SECONDS):
        self.prefix = prefix
        self.directory = directory
        self.budget = default_budget(directory) if budget is None else budget
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        # name -> [bytes, pins, last use, content hash]; least recently used first
        self._entries: collections.OrderedDict[str, list] = collections.OrderedDict()
        self._names: dict[str, str] = {}  # content hash -> name of its segment
        self._bytes = 0
        # No unpinned entry idles out before this (monotonic; None: none can):
        # the scheduler asks on every message, so the answer must not scan.
        self._due: float | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held in /dev/shm by cached constants."""
        return self._bytes

    # -- the pickling hook ---------------------------------------------------
    def reducer(self, array: np.ndarray, pins: Pins) -> tuple | None:
        """Rebuild instructions for ``array`` from its cached segment, or None.

        None (the array is then pickled as usual) when it is small, holds
        Python objects, exceeds the budget, or /dev/shm has no room.
        """
        nbytes = array.nbytes
        if nbytes < MIN_BYTES or nbytes > self.budget or array.dtype.hasobject:
            return None
        digest = _name_of(array, pins)
        with self._lock:
            name = self._names.get(digest)
            if name is None:
                if not self._make_room(nbytes):
                    return None
                name = self._write(array)
                if name is None:
                    return None
                self._entries[name] = [nbytes, 0, 0.0, digest]
                self._names[digest] = name
                self._bytes += nbytes
            entry = self._entries[name]
            entry[1] += 1
            entry[2] = time.monotonic()
            self._entries.move_to_end(name)
        pins.names.append(name)
        return (open_constant, (os.path.join(self.directory, name), array.dtype, array.shape))

    # -- lifetime --------------------------------------------------------------
    def unpin(self, names: list[str]) -> None:
        """The run that pinned ``names`` no longer needs them; evict what has idled."""
        now = time.monotonic()
        with self._lock:
            for name in names:
                entry = self._entries.get(name)
                if entry is not None:
                    entry[1] -= 1
                    entry[2] = now
                    if not entry[1]:
                        due = now + self.idle_seconds
                        self._due = due if self._due is None else min(self._due, due)
        self.expire()

    def expire(self) -> None:
        """Evict the unpinned entries unused for ``idle_seconds``."""
        now = time.monotonic()
        with self._lock:
            if self._due is None or now <= self._due:
                return
            self._evict(lambda e: now - e[2] > self.idle_seconds)
            self._due = min((e[2] + self.idle_seconds for e in self._entries.values() if not e[1]),
                            default=None)

    def next_expiry(self) -> float | None:
        """Seconds until the next unpinned entry idles out (None: nothing to expire).

        The executor's scheduler thread waits at most this long, so an idle
        executor still gives the memory back.
        """
        due = self._due
        return None if due is None else max(0.0, due - time.monotonic()) + 0.001

    def clear(self) -> None:
        """Unlink every entry no run has pinned."""
        with self._lock:
            self._evict(lambda e: True)
            self._due = None  # what is left is pinned: its unpin sets a due time

    def _make_room(self, nbytes: int) -> bool:
        if self._bytes + nbytes > self.budget:
            self._evict(lambda e: True, until=self.budget - nbytes)
        return self._bytes + nbytes <= self.budget

    def _evict(self, due, until: int = -1) -> None:
        """Unlink unpinned entries for which ``due(entry)``, oldest first, down to ``until`` bytes."""
        for name, entry in list(self._entries.items()):
            if self._bytes <= until:
                return
            if entry[1] == 0 and due(entry):
                del self._entries[name]
                del self._names[entry[3]]
                self._bytes -= entry[0]
                files.unlink(os.path.join(self.directory, name))

    def _write(self, array: np.ndarray) -> str | None:
        """Copy ``array`` into a new segment; its name, or None if /dev/shm is full."""
        name, fd = files.create_exclusive(self.directory, self.prefix + "-k")
        path = os.path.join(self.directory, name)
        try:
            os.ftruncate(fd, array.nbytes)
            if array.flags.c_contiguous:
                write_all(fd, memoryview(array).cast("B"), 0)
            else:  # one copy, straight from the strided view into the segment
                with mmap.mmap(fd, array.nbytes) as mapped:
                    np.ndarray(array.shape, array.dtype, buffer=mapped)[...] = array
        except OSError as exc:
            os.close(fd)
            files.unlink(path)
            if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                return None
            raise
        except BaseException:
            os.close(fd)
            files.unlink(path)
            raise
        os.close(fd)
        return name


def open_constant(path: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A cached constant, mapped copy-on-write: tasks may write into it privately.

    Only a file our uid wrote is mapped (``files.open_owned``).
    """
    fd = files.open_owned(path)
    try:
        size = os.fstat(fd).st_size
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE) \
            if size else bytearray()
    finally:
        os.close(fd)
    return np.ndarray(shape, dtype, buffer=mapped)


def _name_of(array: np.ndarray, pins: Pins) -> str:
    """A name for the array's content.

    A view (a block of a matrix) is named after the hash of the whole array
    it views, hashed once per plan at full speed, plus where the view sits in
    it: hashing a strided block row by row is slower than copying it. A view
    of something much larger than the plan is likely to capture is hashed on
    its own.
    """
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root is array or not root.flags.c_contiguous or root.nbytes > ROOT_HASH_MAX:
        return content_hash(array)
    memo = pins.roots.get(id(root))
    if memo is None:
        memo = pins.roots[id(root)] = (root, content_hash(root))  # the root kept: ids stay unique
    offset = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    where = f"{memo[1]}/{offset}/{array.shape}/{array.strides}/{array.dtype.str}".encode()
    return _hash_bytes(where)


def _hash_bytes(data: bytes) -> str:
    import blake3
    return blake3.blake3(data).hexdigest()


def content_hash(array: np.ndarray) -> str:
    """BLAKE3 of the array's bytes in C order, without copying a strided view when possible."""
    import blake3
    if array.flags.c_contiguous:
        return blake3.blake3(memoryview(array).cast("B"), max_threads=blake3.blake3.AUTO).hexdigest()
    hasher = blake3.blake3()
    lead = _contiguous_lead(array)
    if lead is None:
        hasher.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    else:
        for index in np.ndindex(*array.shape[:lead]):
            hasher.update(memoryview(array[index]).cast("B"))
    return hasher.hexdigest()


def _contiguous_lead(array: np.ndarray) -> int | None:
    """Fewest leading axes to index so that what is left is C-contiguous, or None if too many pieces."""
    for lead in range(1, array.ndim):
        if array[(0,) * lead].flags.c_contiguous:
            pieces = int(np.prod(array.shape[:lead]))
            return lead if pieces <= _MAX_PIECES else None
    return None


def default_budget(directory: str = SHM_DIR) -> int:
    """A quarter of the shared-memory filesystem: room is left for results."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return 0
    return int(stats.f_blocks * stats.f_frsize * BUDGET_FRACTION)
