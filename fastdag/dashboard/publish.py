"""An executor's events sent to a running ``fastdag dashboard`` server.

Data flow::

    executor thread                 publisher thread (every PUBLISH_EVERY s)
    ---------------                 ----------------------------------------
    EventBus --emit--> deque.append --> drain, encode as JSON (wire.py),
                       (nothing else)   sample workers' memory while a run goes,
                                        POST /api/publish --> the server's RunStore

``fd.LocalExecutor(dashboard="publish:http://127.0.0.1:8787/")`` (the URL
``fastdag dashboard`` printed, with its ``?token=`` when it has one). The
scheduler only appends to a bounded deque, so a slow or vanished server
never holds a run up: a batch the server does not take is dropped, with one
warning until a later batch gets through.
"""

from __future__ import annotations

import collections
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

from .. import events as ev
from . import wire

PUBLISH_EVERY = 0.25  # seconds between POSTs (and memory samples while a run goes)
POST_TIMEOUT = 5.0  # seconds a POST may take before its batch is dropped
MAX_PENDING = 1_000_000  # events kept while the server is slow; the oldest go first


class Publisher:
    """Sends ``executor``'s events to the dashboard at ``url`` until ``stop()``."""

    def __init__(self, executor: Any, url: str, memory_source: Any = None):
        self.url, self._post_url = _urls(url)
        self._pending: collections.deque = collections.deque(maxlen=MAX_PENDING)
        self._memory_source = memory_source
        self._going: set[str] = set()  # runs submitted and not finished: sample memory
        self._warned = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fastdag-dashboard-publish",
                                        daemon=True)
        self._thread.start()
        self.subscription = executor.subscribe(self._pending.append, batched=True)

    def _loop(self) -> None:
        while not self._stopping.wait(PUBLISH_EVERY):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """POST what came since the last call (publisher thread, and at stop)."""
        pending = self._pending
        events = [pending.popleft() for _ in range(len(pending))]
        for event in events:
            if type(event) is ev.RunSubmitted:
                self._going.add(event.run_id)
            elif type(event) is ev.RunFinished:
                self._going.discard(event.run_id)
        memory = self._sample() if self._going else []
        if events or memory:
            self._post(wire.encode(events, memory))

    def _sample(self) -> list[tuple[float, str, int]]:
        if self._memory_source is None:
            return []
        now = time.time()
        return [(now, worker, rss) for worker, rss in self._memory_source().items()]

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self._post_url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=POST_TIMEOUT):
                pass
        except (OSError, urllib.error.URLError) as exc:
            if not self._warned:
                self._warned = True
                warnings.warn(f"fastdag: the dashboard at {self.url} did not take the "
                              f"executor's events ({exc}); dropping them until it does",
                              RuntimeWarning, stacklevel=1)
            return
        self._warned = False

    def stop(self) -> None:
        """Stop listening, send what is left (bounded by POST_TIMEOUT); idempotent."""
        self.subscription.unsubscribe()
        self._stopping.set()
        self._thread.join(timeout=2 * POST_TIMEOUT)


def _urls(url: str) -> tuple[str, str]:
    """The page's URL as given, and the URL to POST events to (token kept)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"dashboard='publish:URL' needs the http:// URL that "
                         f"`fastdag dashboard` printed, not {url!r}")
    token = urllib.parse.parse_qs(parts.query).get("token", [""])[0]
    query = urllib.parse.urlencode({"token": token}) if token else ""
    post = urllib.parse.urlunsplit((parts.scheme, parts.netloc,
                                    parts.path.rstrip("/") + "/api/publish", query, ""))
    return url, post
