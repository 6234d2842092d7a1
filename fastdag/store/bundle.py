"""Many small results in one object: what a worker reports instead of a ref per result.

A wide fan-in's inputs are mostly small values (a number each), produced
tens of thousands per worker batch. Sent as one ``StoredRef`` each, they
cost a Python ``__reduce__`` call to pickle and an object to rebuild, in
the worker's report, in the scheduler, in the batch that names them and in
the worker that reads them. A ``Bundle`` holds the pickles of up to
``BUNDLE_BYTES`` of such results back to back in one ``bytes``, with the
task indices and offsets as arrays: it pickles as three buffers.

Like an inline ``StoredRef``, a bundle lives in the messages, never in
/dev/shm: nothing to unlink, nothing to leak. Each read unpickles the
member afresh, so every consumer gets its own copy (the copy-on-write
guarantee of the store). The scheduler forgets a member once its last
consumer has read it, and drops the bundle with its last member; a batch
that needs few members of a bundle is sent a ``select``ion of them, so a
bundle's bytes do not travel again for each of its consumers.
"""

from __future__ import annotations

import operator
import pickle
from array import array
from collections.abc import Iterable
from typing import Any

BUNDLE_BYTES = 64 * 1024     # a bundle's data, at most (as a value stored inline)
BUNDLE_ITEM_MAX = 1024       # a larger pickle travels as a StoredRef of its own


class Bundle:
    """Pickled results of the tasks ``tasks``; member k is ``data[offsets[k]:offsets[k + 1]]``."""

    __slots__ = ("tasks", "offsets", "data", "_where")

    def __init__(self, tasks: array, offsets: array, data: bytes):
        self.tasks = tasks
        self.offsets = offsets
        self.data = data
        self._where: dict[int, int] | None = None

    def __reduce__(self):
        return (Bundle, (self.tasks, self.offsets, self.data))

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"Bundle({len(self.tasks)} results, {len(self.data)} bytes)"

    def positions(self) -> dict[int, int]:
        """Task -> its place among the members (built on first use)."""
        if self._where is None:
            self._where = dict(zip(self.tasks, range(len(self.tasks))))
        return self._where

    def position(self, task: int) -> int:
        return self.positions()[task]

    def load(self, task: int) -> Any:
        """A new copy of ``task``'s result."""
        k = self.position(task)
        return pickle.loads(memoryview(self.data)[self.offsets[k]:self.offsets[k + 1]])

    def load_many(self, tasks: list[int]) -> list[Any]:
        """A new copy of each result of ``tasks``, in one pass."""
        offsets, view, loads = self.offsets, memoryview(self.data), pickle.loads
        return [loads(view[offsets[k]:offsets[k + 1]]) for k in map(self.positions().__getitem__, tasks)]

    def sizes(self) -> list[int]:
        """The pickled size of each member, in the order of ``tasks``."""
        offsets = self.offsets
        return list(map(operator.sub, offsets[1:], offsets))

    def select(self, tasks: Iterable[int]) -> Bundle:
        """A bundle of the members ``tasks`` only (at least one)."""
        builder = BundleBuilder()
        view = memoryview(self.data)
        for t in tasks:
            k = self.position(t)
            builder.add(t, view[self.offsets[k]:self.offsets[k + 1]])
        (selected,) = builder.close()  # a part of a bundle fits in one
        return selected


class BundleBuilder:
    """Collects (task, pickle) pairs into bundles of at most ``BUNDLE_BYTES`` each."""

    def __init__(self) -> None:
        self.bundles: list[Bundle] = []
        self._tasks = array("l")
        self._offsets = array("q", [0])
        self._data = bytearray()

    def add(self, task: int, pickled: bytes | memoryview) -> None:
        if self._data and len(self._data) + len(pickled) > BUNDLE_BYTES:
            self._seal()
        self._tasks.append(task)
        self._data += pickled
        self._offsets.append(len(self._data))

    def close(self) -> list[Bundle]:
        """Every bundle made, the last one sealed too."""
        if self._tasks:
            self._seal()
        return self.bundles

    def _seal(self) -> None:
        self.bundles.append(Bundle(self._tasks, self._offsets, bytes(self._data)))
        self._tasks = array("l")
        self._offsets = array("q", [0])
        self._data = bytearray()
