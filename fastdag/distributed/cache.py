"""A worker's bounded memory of the encoded results it stored itself.

When a worker later needs one of its own stored results (a fan-in it runs
after other workers finished their inputs, or a consumer in a later
message), it rebuilds the value from these bytes instead of downloading
them again: a memory copy instead of a network round trip and a signature
check. Rebuilding gives each consumer its own copy, so a task that modifies
its input in place cannot affect another consumer. Least recently used
entries go first once ``capacity`` bytes are held. Thread-safe: the I/O
thread fills it while the task thread reads it.
"""

from __future__ import annotations

import collections
import threading


class PieceCache:
    """Redis key -> encoded pieces, bounded by total bytes (LRU)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.size = 0
        self._data: collections.OrderedDict[str, list[bytes]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, pieces: list[bytes]) -> None:
        n = sum(len(p) for p in pieces)
        if n > self.capacity:
            return
        with self._lock:
            self._drop(key)
            self._data[key] = pieces
            self.size += n
            while self.size > self.capacity:
                _, old = self._data.popitem(last=False)
                self.size -= sum(len(p) for p in old)

    def get(self, key: str) -> list[bytes] | None:
        with self._lock:
            pieces = self._data.get(key)
            if pieces is not None:
                self._data.move_to_end(key)
            return pieces

    def drop(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self.size -= sum(len(p) for p in old)

    def drop_prefix(self, prefix: str) -> None:
        """Forget every entry of one run (its keys share a prefix)."""
        with self._lock:
            for key in [k for k in self._data if k.startswith(prefix)]:
                self._drop(key)

    def __len__(self) -> int:
        return len(self._data)
