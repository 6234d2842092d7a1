"""The store interface and the reference that travels in control messages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StoredRef:
    """Where a stored value is and how to rebuild it.

    ``inline`` holds the buffers themselves for small values, which then need
    no store round trip at all; otherwise ``key`` names the stored object and
    ``layout`` gives each out-of-band buffer's (offset, length) within it.
    A large pickled header (a big dict or list, a Plan) is stored too, at
    ``header_span`` (offset, length), and ``header`` is then empty: refs
    travel in control messages, which must stay small.
    """

    key: str
    header: bytes
    kind: int = 0
    size: int = 0
    layout: list[tuple[int, int]] = field(default_factory=list)
    inline: list[bytes] | None = None
    header_span: tuple[int, int] | None = None

    def __reduce__(self):
        # Positional fields, no state dict: a report or batch naming 100,000
        # stored results (a wide fan-in) pickles and loads in half the time.
        return (StoredRef, (self.key, self.header, self.kind, self.size, self.layout,
                            self.inline, self.header_span))

    @property
    def nbytes(self) -> int:
        return len(self.header) + sum(n for _, n in self.layout) + \
            sum(len(b) for b in self.inline or ()) + (self.header_span or (0, 0))[1]


class ObjectStore(ABC):
    """put/get/delete/contains/nbytes: what every store offers its executors."""

    @abstractmethod
    def put(self, key: str, value: Any) -> StoredRef: ...

    @abstractmethod
    def get(self, ref: StoredRef) -> Any: ...

    @abstractmethod
    def delete(self, ref: StoredRef) -> None: ...

    @abstractmethod
    def contains(self, ref: StoredRef) -> bool: ...

    def nbytes(self, ref: StoredRef) -> int:
        return ref.nbytes
