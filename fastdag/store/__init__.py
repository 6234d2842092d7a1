"""Object stores: where results live between the task that makes them and its consumers.

Every store has the same small interface, in a sync and an async form:
``put(key, value) -> StoredRef``, ``get(ref)``, ``delete(ref)``,
``contains(ref)`` and ``nbytes(ref)``. A ``StoredRef`` is a small picklable
descriptor that control messages carry instead of the data.
"""

from .base import ObjectStore, StoredRef
from .memory import MemoryStore
from .shm import SharedMemoryStore

__all__ = ["ObjectStore", "StoredRef", "MemoryStore", "SharedMemoryStore"]
