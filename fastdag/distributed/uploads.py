"""Uploading, on request, a result that lives only in one host's /dev/shm.

A producer writes a large result's bytes to Redis as well as to /dev/shm only
when it knows of a reader in another domain (``handoff.py``). A worker that
joins from another host after the result was written has no bytes to read,
so it asks: it pushes the value's key onto the producer domain's request
list and waits on a reply list of its own. Every worker runs an
``UploadServer`` thread on its domain's list: it maps the segment, stores the
signed bytes under ``<key>:b`` and replies. Any live worker of the domain can
serve (a segment outlives the process that wrote it); if there is none, the
value went down with its host and the reader fails as for any lost input.

Requests are plain JSON, never unpickled. A forged one can only make a
worker copy a value that a signed reference names into Redis, where values
travel anyway.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from redis.exceptions import RedisError

from .handoff import HandOff
from .protocol import Keys, read_workers

WAIT = 2.0          # seconds between checks that the serving domain still has a live worker


class Uploads:
    """The reader's side: ``request(domain, key)`` blocks until the bytes are in Redis."""

    def __init__(self, client: Any, keys: Keys, ttl: int, timeout: float = 300.0):
        self.client = client
        self.keys = keys
        self.ttl = ttl
        self.timeout = timeout

    def request(self, domain: str, key: str) -> None:
        reply = self.keys.uploaded(secrets.token_hex(8))
        queue = self.keys.uploads(domain)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(queue, json.dumps({"key": key, "reply": reply}))
        pipe.expire(queue, self.ttl)
        pipe.execute()
        deadline = time.time() + self.timeout
        while True:
            got = self.client.blpop([reply], timeout=WAIT)
            if got:
                status = got[1].decode()
                if status != "ok":
                    raise KeyError(f"value {key!r} could not be uploaded: {status}")
                return
            live, _ = read_workers(self.client, self.keys)
            if not any(w.get("shm") == domain for w in live):
                raise KeyError(f"value {key!r} is in the shared memory of a host (domain "
                               f"{domain}) that has no live worker left")
            if time.time() > deadline:
                raise KeyError(f"no worker of domain {domain} uploaded value {key!r} "
                               f"within {self.timeout:.0f} s")


class UploadServer:
    """Serves the upload requests of one domain until ``stop`` is set (a daemon thread)."""

    def __init__(self, client: Any, keys: Keys, handoff: HandOff, stop: threading.Event):
        self.client = client
        self.keys = keys
        self.handoff = handoff
        self.stop = stop

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve, name="fastdag-uploads", daemon=True)
        thread.start()
        return thread

    def serve(self) -> None:
        queue = self.keys.uploads(self.handoff.domain)
        while not self.stop.is_set():
            try:
                got = self.client.blpop([queue], timeout=1)
                if got:
                    self.handle(got[1])
            except RedisError:
                self.stop.wait(1.0)            # the main loop reports outages

    def handle(self, raw: bytes) -> None:
        """Serve one request; requests that are not ours to answer are dropped."""
        try:
            request = json.loads(raw)
            key, reply = request["key"], request["reply"]
        except (ValueError, KeyError, TypeError):
            return
        if not (isinstance(key, str) and isinstance(reply, str)
                and key.startswith(self.keys.runs)
                and reply.startswith(self.keys.uploaded(""))):
            return
        try:
            status = self.handoff.upload(key)
        except RedisError:
            raise
        except Exception as exc:  # noqa: BLE001 - the reader must hear why, not time out
            status = f"{type(exc).__name__}: {exc}"
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(reply, status)
        pipe.expire(reply, 60)
        pipe.execute()
