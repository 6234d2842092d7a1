"""HMAC-SHA256 signatures on everything a fastdag process unpickles from Redis.

Unpickling runs code, and anyone who can write to the Redis server could
otherwise make every worker run theirs. So every pickled payload that
crosses Redis (plans, results, failures) carries an HMAC-SHA256 tag computed
with a key shared by the client and the workers (``FASTDAG_SECRET``), over
the payload *and the Redis key it is stored under* (so a valid payload
cannot be replayed under another key). A reader checks the tag before it
unpickles anything and raises ``PayloadRejected`` otherwise.

Task messages on the stream carry only a run id and task indices, which are
parsed as integers and never unpickled, so they are not signed.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .errors import FastdagError

SECRET_ENV = "FASTDAG_SECRET"
TAG_SIZE = 32


class PayloadRejected(FastdagError):
    """A payload read from Redis is unsigned or its signature does not match."""


class MissingSecret(FastdagError):
    """No shared key is configured and insecure mode was not asked for."""


class WeakSecret(FastdagError, ValueError):
    """The shared key is shorter than ``MIN_SECRET_BYTES``: too easy to guess."""


MIN_SECRET_BYTES = 16


class Signer:
    """Signs and verifies byte strings bound to a Redis key name.

    ``insecure=True`` (only by explicit request) uses an empty key: payloads
    are still framed and checked for corruption, but anyone can forge them.
    """

    def __init__(self, secret: str | bytes | None = None, insecure: bool = False):
        if secret is None:
            secret = os.environ.get(SECRET_ENV) or None
        elif not secret and insecure:
            secret = None   # RedisExecutor(secret="", insecure=True): no key, as asked
        if secret is None and not insecure:
            raise MissingSecret(
                f"no shared key: set {SECRET_ENV} (the same value on the client and every "
                "worker), or ask explicitly for insecure mode")
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise WeakSecret(
                f"the shared key ({SECRET_ENV} or secret=) is {len(secret)} bytes; at least "
                f"{MIN_SECRET_BYTES} are needed (e.g. python -c 'import secrets; "
                "print(secrets.token_hex(32))')")
        self._key = secret or b""
        self.insecure = secret is None

    def tag(self, key: str, *parts: bytes | memoryview) -> bytes:
        """The HMAC-SHA256 tag of ``parts`` stored under Redis key ``key``."""
        mac = hmac.new(self._key, key.encode(), hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.digest()

    def verify(self, key: str, tag: bytes | memoryview, *parts: bytes | memoryview) -> None:
        """Raise PayloadRejected unless ``tag`` signs ``parts`` under ``key``."""
        if len(tag) != TAG_SIZE or not hmac.compare_digest(bytes(tag), self.tag(key, *parts)):
            raise PayloadRejected(f"payload under Redis key {key!r} is unsigned or wrongly "
                                  "signed (a different FASTDAG_SECRET, or tampered with)")
