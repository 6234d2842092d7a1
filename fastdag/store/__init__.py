"""Object stores: where results live between the task that makes them and its consumers.

    producer ──put──> StoredRef (small, picklable; travels in control messages)
    consumer ──get(ref)──> value     memory (dict), shm (/dev/shm files, zero-copy
                                     reads), redis (distributed), constants (cached
                                     graph constants), arena (fd.result_array)

Below the engine; imports only ``core`` (``serialize``, ``signing``).

Every store has the same small interface, in a sync and an async form:
``put(key, value) -> StoredRef``, ``get(ref)``, ``delete(ref)``,
``contains(ref)`` and ``nbytes(ref)``. A ``StoredRef`` is a small picklable
descriptor that control messages carry instead of the data.
"""

from .base import ObjectStore, StoredRef
from .memory import MemoryStore
from .shm import SharedMemoryStore

__all__ = ["ObjectStore", "StoredRef", "MemoryStore", "SharedMemoryStore"]
