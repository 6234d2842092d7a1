"""When a worker removes a run's /dev/shm segments: as soon as nobody can need them.

Normally the client sweeps a run's segments (all workers' in its domain) when
it resolves the run, after reading its outputs. That covers successful runs,
failures, cancellation and killed workers. A worker sweeps too, for the cases
the client cannot cover:

* the run failed or was cancelled while this worker was running it: it may
  write a segment after the client's sweep (its next report to Redis then
  tells it the run is over, and it sweeps at once);
* the client is in another domain (another host): it never sees this
  domain's segments;
* the client died: the run's state stays in Redis until its TTL.

For those, each worker remembers the runs it wrote segments for and, every
``period`` seconds, asks Redis about them. A run that is gone, failed or
cancelled is swept. A finished run is swept at once if its client is
elsewhere; if its client is here it gets one more period to read the
outputs, since sweeping is then the client's job.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .handoff import HandOff


class Janitor:
    """Tracks the runs this worker wrote segments for; sweeps them when they end."""

    def __init__(self, handoff: HandOff, client: Any, period: float = 30.0):
        self.handoff = handoff
        self.client = client
        self.period = period
        self._runs: dict[str, tuple[str, bool]] = {}   # scope -> (meta key, client here)
        self._done_seen: set[str] = set()
        self._lock = threading.Lock()
        self._next = 0.0

    def track(self, scope: str, meta: str, client_here: bool) -> None:
        with self._lock:
            self._runs[scope] = (meta, client_here)

    def ended(self, scope: str, state: bytes | None, client_here: bool) -> None:
        """A run this worker took part in is over (``state`` as Redis has it)."""
        self.handoff.forget(scope)
        if state == b"done" and client_here:
            return                   # the client sweeps once it has the outputs
        with self._lock:
            self._runs.pop(scope, None)
            self._done_seen.discard(scope)
        self.handoff.sweep_run(scope)

    def check(self, now: float | None = None) -> None:
        """At most once a period: sweep tracked runs that ended (the heartbeat calls it)."""
        now = time.time() if now is None else now
        if now < self._next:
            return
        self._next = now + self.period
        with self._lock:
            runs = list(self._runs.items())
        if not runs:
            return
        pipe = self.client.pipeline(transaction=False)
        for _, (meta, _) in runs:
            pipe.hget(meta, "state")
        for (scope, (_, client_here)), state in zip(runs, pipe.execute()):
            if state == b"running":
                continue
            if state == b"done" and client_here:
                with self._lock:
                    first = scope not in self._done_seen
                    self._done_seen.add(scope)
                if first:
                    continue                     # one more period for the client
            self.ended(scope, None, client_here)
