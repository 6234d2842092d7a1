"""Task results between workers: a file in /dev/shm on one host, bytes in Redis across hosts.

Through Redis, an 8 MB block is serialized, signed (a hash over every byte),
sent to the server, copied there, sent again to each consumer and hashed
again: several copies and two full passes, on cores the tasks need. Workers
that see the same /dev/shm (the same *domain*, ``domain.py``) skip all that:
the producer writes the buffers once into a segment (``SharedMemoryStore``)
and Redis holds only a small signed *reference* under the value's key; a
consumer maps the segment copy-on-write, with no copy and no hash.

A reference names the producer's domain. A reader in another domain (a
worker on another host, or the client) reads bytes instead, from
``<key>:b``: the producer writes them along with the segment whenever it
knows of a live worker or a client in another domain. A reader that finds
neither (it joined after the value was written) asks a live worker of the
producer's domain to upload them (``uploads.py``).

Why a segment's contents need no signature: what gets unpickled is the
pickled header, which travels inside the signed reference; the segment holds
only the raw out-of-band buffers (array data), in a file owned by the
workers' user (mode 0600) on the reader's own machine, which nobody who can
only write to Redis can reach, and the signed reference says which file.

What a process stored, and the references it read, it keeps in a bounded
cache (``cache.py``): a later consumer in the same process rebuilds the value
from there, without a round trip, a download or a signature check. (Keeping
copies of downloaded bytes too was measured: on GEMM the copy cost as much
as the downloads it saved.)

Lifetimes: segment names start with ``fastdag-<hex of the run's key scope>-``,
so one sweep removes a run's segments, whichever worker wrote them
(``sweep_run``). A value that all its consumers have used is unlinked when
its Redis key is deleted (``delete_keys``).
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import sys
from collections.abc import Callable
from typing import Any

from ..core.serialize import dumps
from ..store.base import StoredRef
from ..store.redis import RedisStore, stored_keys
from ..store.shm import INLINE_THRESHOLD, SHM_DIR, SharedMemoryStore
from .cache import PieceCache
from .domain import shm_domain
from ..core.signing import PayloadRejected

MAGIC = b"FDR1"
HEAD = struct.Struct("<4s32sI")    # magic, tag, body length; then the body
META = struct.Struct("<I")         # body: JSON length, the JSON, the pickled header
SHM_MIN = 1 << 20                  # smaller values go to Redis as bytes: cheaper than a file
PEEK = 4096                        # bytes read to tell a reference from a value when deleting


def bytes_key(key: str) -> str:
    """Where the bytes of a value stored as a reference under ``key`` are, if anywhere."""
    return f"{key}:b"


def segment_prefix(scope: str) -> str:
    """The name prefix of every segment of the run whose keys start with ``scope``."""
    return "fastdag-" + scope.encode().hex()


def is_reference(first: bytes | memoryview | None) -> bool:
    return first is not None and bytes(first[:4]) == MAGIC


class Missing(KeyError):
    """A value is neither in Redis nor in any shared memory that can still hand it over."""

    def __init__(self, index: int, key: str, reason: str):
        super().__init__(key)
        self.index = index
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class HandOff:
    """Stores and loads task results under Redis keys, through /dev/shm where it can.

    ``cache_bytes``: how much this process keeps of what it stored
    (0: nothing). ``ask_upload(domain, key)`` blocks until a
    worker of ``domain`` has put the bytes of ``key`` under ``bytes_key(key)``,
    or raises KeyError (``uploads.Uploads.request``); without it, a value in
    another domain's /dev/shm only is Missing at once.
    """

    def __init__(self, store: RedisStore, shm: bool = True, shm_min: int = SHM_MIN,
                 directory: str = SHM_DIR, cache_bytes: int = 0,
                 ask_upload: Callable[[str, str], None] | None = None):
        self.redis = store
        self.client = store.client
        self.domain = shm_domain(directory)
        self.shm = shm and os.path.isdir(directory)
        self.shm_min = max(shm_min, INLINE_THRESHOLD)   # never an inline ref
        self.directory = directory
        self.ask_upload = ask_upload
        self.cache = PieceCache(cache_bytes)
        self.nonce = secrets.token_hex(4)        # this process's segment names never collide
        self.segments = SharedMemoryStore("fastdag-reader", directory=directory)
        self._writers: dict[str, SharedMemoryStore] = {}

    # -- writing --------------------------------------------------------------
    def queue_put(self, pipe: Any, scope: str, key: str, value: Any, *, remote: bool,
                  local: bool = True) -> int:
        """Add the writes that store ``value`` under ``key`` to ``pipe``; return its size.

        ``remote``: a reader may be in another domain, so bytes go to Redis
        too; ``local``: a reader may be in this one (if not, bytes only).
        """
        payload = dumps(value)
        size = payload.nbytes
        if self.shm and local and size - len(payload.header) >= self.shm_min:
            try:
                ref = self._writer(scope).put_payload(key, payload)
            except OSError:          # /dev/shm and the spill directory are full
                ref = None
            if ref is not None:
                if remote:
                    self.redis.queue_pieces(pipe, bytes_key(key),
                                            self.redis.encode_payload(bytes_key(key), payload))
                record = self._record(key, ref)
                pipe.set(key, record, ex=self.redis.ttl)
                self.cache.put(key, [record])
                return size
        pieces = self.redis.encode_payload(key, payload)
        self.redis.queue_pieces(pipe, key, pieces)
        self.cache.put(key, pieces)
        return size

    def _writer(self, scope: str) -> SharedMemoryStore:
        store = self._writers.get(scope)
        if store is None:
            # The whole header in the signed reference, however large: a
            # reference has no field for a header kept in the segment.
            store = self._writers[scope] = SharedMemoryStore(
                f"{segment_prefix(scope)}-{self.nonce}", directory=self.directory,
                header_in_ref_max=sys.maxsize)
        return store

    def _record(self, key: str, ref: StoredRef) -> bytes:
        meta = json.dumps({"d": self.domain, "s": ref.key, "z": ref.size, "l": ref.layout,
                           "k": ref.kind}).encode()
        body = META.pack(len(meta)) + meta + ref.header
        return HEAD.pack(MAGIC, self.redis.signer.tag(key, body), len(body)) + body

    # -- reading --------------------------------------------------------------
    def fetch(self, keys: list[str]) -> list:
        """The first pieces stored under ``keys`` (values or references), in one round trip."""
        return self.redis.fetch(keys)

    def get_key(self, key: str) -> Any:
        """The value stored under ``key``; Missing if lost, PayloadRejected if not signed."""
        return self.get_many([key])[0]

    def get_many(self, keys: list[str]) -> list[Any]:
        """The values stored under ``keys``: from the cache, /dev/shm or Redis.

        One round trip for all that are not cached. Raises Missing for the
        first one lost, PayloadRejected for one not signed with our key.
        """
        out: list[Any] = [None] * len(keys)
        todo = []
        for k, key in enumerate(keys):
            value = self._cached(key)
            if value is _ABSENT:
                todo.append(k)
            else:
                out[k] = value
        for k, first in zip(todo, self.fetch([keys[k] for k in todo])):
            if first is None:
                raise Missing(k, keys[k], f"no value under Redis key {keys[k]!r} "
                                          "(expired or deleted)")
            try:
                out[k] = self._load(keys[k], first)
            except Missing as exc:
                raise Missing(k, keys[k], exc.reason) from None
        return out

    def _cached(self, key: str) -> Any:
        """The value under ``key`` rebuilt from this process's cache, or _ABSENT."""
        pieces = self.cache.get(key)
        if pieces is None:
            return _ABSENT
        if not is_reference(pieces[0]):
            return self.redis.decode(key, pieces[0], pieces[1:], verify=False)
        return self._map(*self._parse(key, pieces[0], verify=False))

    def _load(self, key: str, first: bytes | memoryview) -> Any:
        """Verify and rebuild what ``fetch`` read under ``key``; cache a reference."""
        if not is_reference(first):
            return self.redis.decode(key, first)
        info, header = self._parse(key, first, verify=True)
        self.cache.put(key, [bytes(first)])
        value = self._map(info, header)
        return value if value is not _ABSENT else self._download(key, info["d"])

    def _download(self, key: str, domain: str) -> Any:
        """The bytes of a value in the /dev/shm of ``domain``, uploaded on request if need be."""
        bkey = bytes_key(key)
        first = self.redis.fetch([bkey])[0]
        if first is None:
            if self.ask_upload is None:
                raise Missing(0, key, f"value {key!r} is in shared memory of another host "
                                      f"(domain {domain}) and not in Redis")
            try:
                self.ask_upload(domain, key)
            except KeyError as exc:
                raise Missing(0, key, exc.args[0]) from None
            first = self.redis.fetch([bkey])[0]
            if first is None:
                raise Missing(0, key, f"value {key!r} was uploaded but is gone again")
        return self.redis.decode(bkey, first)

    def _map(self, info: dict, header: bytes) -> Any:
        """The value a reference names, mapped from /dev/shm; _ABSENT if not visible here."""
        if info["d"] != self.domain:
            return _ABSENT
        try:
            return self.segments.get(_stored_ref(info, header))
        except KeyError:
            return _ABSENT       # spilled to a directory this process does not share, or freed

    def _parse(self, key: str, record: bytes | memoryview, verify: bool) -> tuple[dict, bytes]:
        if len(record) < HEAD.size:
            raise PayloadRejected(f"reference under Redis key {key!r} is truncated")
        _, tag, n = HEAD.unpack_from(record)
        body = memoryview(record)[HEAD.size:HEAD.size + n]
        if len(body) != n:
            raise PayloadRejected(f"reference under Redis key {key!r} is truncated")
        if verify:
            self.redis.signer.verify(key, tag, body)
        (m,) = META.unpack_from(body)
        info = json.loads(bytes(body[META.size:META.size + m]))
        return info, bytes(body[META.size + m:])

    # -- serving readers elsewhere ------------------------------------------------
    def upload(self, key: str) -> str:
        """Put the bytes of the reference under ``key`` into Redis; "ok" or why not."""
        record = self.client.get(key)
        if not is_reference(record):
            return f"no reference under {key!r}"
        info, header = self._parse(key, record, verify=True)
        if info["d"] != self.domain:
            return f"value {key!r} is not in this host's shared memory"
        try:
            value = self.segments.get(_stored_ref(info, header))
        except KeyError:
            return f"the shared-memory segment of {key!r} is gone"
        pipe = self.client.pipeline(transaction=False)
        self.redis.queue_put(pipe, bytes_key(key), value)
        pipe.execute()
        return "ok"

    # -- lifetime ---------------------------------------------------------------
    def delete_keys(self, keys: list[str]) -> None:
        """Delete stored values: their Redis keys and chunks, bytes copies, segments here.

        Two round trips for any number of keys: read their heads, unlink.
        """
        if not keys:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            self.cache.drop(key)
            pipe.getrange(key, 0, PEEK - 1)
            pipe.getrange(bytes_key(key), 0, PEEK - 1)
        heads = pipe.execute()
        doomed = []
        for key, head, bhead in zip(keys, heads[::2], heads[1::2]):
            doomed += stored_keys(key, head)
            if bhead:
                doomed += stored_keys(bytes_key(key), bhead)
            if is_reference(head):
                self._unlink_segment(key, head)
        self.client.unlink(*doomed)

    def _unlink_segment(self, key: str, head: bytes) -> None:
        """Unlink the segment a reference names, if it is in this domain and signed by us."""
        if len(head) == PEEK:
            head = self.client.get(key) or b""       # a reference with a very long header
        try:
            info, _ = self._parse(key, head, verify=True)
        except PayloadRejected:
            return                                   # never unlink a file a forgery names
        if info["d"] == self.domain:
            self.segments.delete(StoredRef(key=info["s"], header=b""))

    def sweep_run(self, scope: str) -> int:
        """Unlink every segment of one run in this domain, whoever wrote it; count them."""
        self.forget(scope)
        return self.segments.sweep(segment_prefix(scope))

    def forget(self, scope: str) -> None:
        """Drop what this process keeps for a run (its segments stay)."""
        self._writers.pop(scope, None)
        self.cache.drop_prefix(scope)


_ABSENT = object()


def _stored_ref(info: dict, header: bytes) -> StoredRef:
    return StoredRef(key=info["s"], header=header, kind=info["k"], size=info["z"],
                     layout=[(o, n) for o, n in info["l"]])
