"""An in-process store: a dict. For tests and for executors that share memory."""

from __future__ import annotations

import threading
from typing import Any

from .base import ObjectStore, StoredRef


class MemoryStore(ObjectStore):
    """Values kept as Python objects; the ref carries only the key."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: Any) -> StoredRef:
        with self._lock:
            self._data[key] = value
        return StoredRef(key=key, header=b"")

    def get(self, ref: StoredRef) -> Any:
        try:
            return self._data[ref.key]
        except KeyError:
            raise KeyError(f"no stored value {ref.key!r}") from None

    def delete(self, ref: StoredRef) -> None:
        with self._lock:
            self._data.pop(ref.key, None)

    def contains(self, ref: StoredRef) -> bool:
        return ref.key in self._data

    def __len__(self) -> int:
        return len(self._data)
