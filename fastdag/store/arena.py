"""Task outputs born in shared memory: what ``fd.result_array`` hands out.

A worker stores a large result by copying it into a /dev/shm file, about
3 GB/s with the page allocation, paid again for every large result that
leaves the worker (a block another worker reads, the array the caller
wants). A task that knows the shape of what it returns can instead take its
output buffer from here: an array mapped from a new /dev/shm file
(``MAP_SHARED``), which it fills and returns. When the worker stores that
array, the store *adopts* the file as the result's segment (a rename, see
``SharedMemoryStore.put_payload``): no copy at all. If the result never
leaves the worker, the file is unlinked when the last view of it dies.

Only worker processes of ``LocalExecutor`` install an arena; everywhere else
``result_array`` is plain ``np.empty``, so tasks behave the same on every
executor. A task must not modify the array after returning it: consumers'
copy-on-write mappings see the file until they write to a page themselves.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import files
from .files import SHM_DIR
from .pages import buffer_address

if TYPE_CHECKING:  # imported by the calls that make arrays: a worker boots without numpy
    import numpy as np


@dataclass
class Region:
    """One arena file: where it is mapped in this process and where it lies."""

    path: str
    start: int
    size: int
    adopted: bool = False


class Arena:
    """The /dev/shm files of one worker process's ``result_array`` outputs."""

    def __init__(self, prefix: str, directory: str = SHM_DIR):
        self.prefix = prefix
        self.directory = directory
        self._regions: dict[int, Region] = {}
        self._lock = threading.Lock()

    def empty(self, shape: Any, dtype: Any) -> np.ndarray:
        """An uninitialised array in a new file; ``np.empty`` if /dev/shm has no room."""
        import numpy as np
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = max(nbytes, 1)
        try:
            name, fd = files.create_exclusive(self.directory, self.prefix)
        except OSError:
            return np.empty(shape, dtype)
        path = os.path.join(self.directory, name)
        try:
            try:
                os.ftruncate(fd, size)
                mapped = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        except OSError:
            files.unlink(path)
            return np.empty(shape, dtype)
        region = Region(path, buffer_address(memoryview(mapped)) or 0, size)
        with self._lock:
            self._regions[region.start] = region
        weakref.finalize(mapped, self._release, region)
        return np.ndarray(shape, dtype, buffer=mapped)

    def find(self, buffer: memoryview) -> tuple[Region, int] | None:
        """The region holding all of ``buffer``, and the buffer's offset in it."""
        address = buffer_address(buffer)
        if address is None:
            return None
        with self._lock:
            for region in self._regions.values():
                offset = address - region.start
                if 0 <= offset and offset + buffer.nbytes <= region.size and not region.adopted:
                    return region, offset
        return None

    def adopt(self, region: Region, prefix: str) -> str:
        """Give the file a fresh store segment name ``<prefix>-<hex>`` and return it:
        from now on the store owns it. An existing file is never replaced."""
        name = files.link_exclusive(region.path, self.directory, prefix)
        region.adopted = True
        return name

    def _release(self, region: Region) -> None:
        with self._lock:
            self._regions.pop(region.start, None)
        if not region.adopted:
            files.unlink(region.path)


_current: Arena | None = None


def install(prefix: str, directory: str = SHM_DIR) -> Arena:
    """Make this process hand out shared-memory outputs (worker processes call this)."""
    global _current
    _current = Arena(prefix, directory)
    return _current


def current() -> Arena | None:
    return _current


def result_array(shape: Any, dtype: Any = float) -> np.ndarray:
    """An uninitialised array for a task to fill and return (see the module docstring).

    On ``LocalExecutor`` it lives in shared memory, so returning it hands it
    to other workers and to the caller without a copy; elsewhere it is
    ``np.empty(shape, dtype)``.
    """
    arena = _current
    if arena is None:
        import numpy as np
        return np.empty(shape, dtype)
    return arena.empty(shape, dtype)
