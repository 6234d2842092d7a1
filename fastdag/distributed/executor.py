"""RedisExecutor: the client side of distributed mode.

``submit`` ships a run to Redis in one pipeline: the signed Plan, the run's
metadata (state, task count, where to send events), and the graph's root
tasks cut into batches on the task stream, in the order a depth-first walk
from the outputs meets them, so one batch holds the leaves of whole
subtrees and a worker can run each subtree without touching Redis (see
``cluster.py``). There is no central scheduler after that:
workers move the run forward among themselves through counters in Redis.

Completion without polling: one background thread per executor blocks on
this client's event list (BLPOP) and resolves a run's Future when a worker
pushes its "done", "error", "rejected" or "crashed" event. Between events it
checks, once per ``poll`` seconds, that each run's state still exists, so a
Redis server that restarted (and lost the run) is reported as an error
instead of a wait forever; a server that is down raises at once.

Events (``events.py``): ``RunSubmitted`` from ``submit``; the listener turns
the metrics records workers push to Redis into ``TaskBatch`` and
``DataMoved`` ("redis") events once per ``poll`` and when the run ends, the
worker heartbeats into ``WorkerStarted`` / ``WorkerDied``, an "error" event
into ``TaskFailed``, and ends each run with ``RunFinished``, from which the
run recorder has the report before the future resolves.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from ..core.errors import (CancelledError, FastdagError, SerializationError, WorkerCrashedError,
                      describe_exception, unloadable_result)
from ..core.graph import DAG, Node
from .. import events as fd_events
from ..core.records import INDEX, OUTPUT_BYTES, STORE_S
from ..metrics.runs import HOST
from ..core.plan import Plan, build_plan
from ..core.runner import received_error
from ..store.redis import DEFAULT_TTL, RedisStore
from ..engine.executor import Executor, RunFuture, as_dag
from .handoff import HandOff, Missing
from .protocol import (Keys, bind_plan, connect, ensure_group, message_fields, read_workers,
                       redacted)
from ..core.signing import PayloadRejected, Signer
from .uploads import Uploads


class RedisUnavailable(FastdagError):
    """The Redis server went away, or lost a run's state (restarted or flushed)."""


# Seconds a run may wait with no live worker before the client says so (once).
NO_WORKERS_WARN_S = 10.0


@dataclass
class _Run:
    plan: Plan
    future: RunFuture
    start: float
    records_seen: int = 0  # metrics records already given to event subscribers


class RedisExecutor(Executor):
    """Runs graphs on ``fastdag worker`` processes that share a Redis server.

    ``url``: ``redis://[user:password@]host:port/db``, or ``rediss://`` for TLS.
    ``secret``: the HMAC key shared with the workers (default: $FASTDAG_SECRET);
    without one the executor refuses to start unless ``insecure=True``.
    ``prefix`` namespaces the keys, so several deployments can share a server.
    ``batches_per_worker``: the roots are cut into this many batches per live
    worker. One gives each worker the largest subgraphs it can run without
    Redis (best for data-heavy graphs such as blocked GEMM); more even out
    the load when roots lead to work of very different cost, since a worker
    never takes over tasks another worker has already claimed.
    ``metrics``: where run reports go (see ``fastdag.metrics.sinks``); the default,
    True, is the Redis metrics sink on this same server; None turns it off.
    """

    name = "redis"

    def __init__(self, url: str, *, secret: str | bytes | None = None, insecure: bool = False,
                 prefix: str = "fastdag", ttl: int = DEFAULT_TTL, poll: float = 1.0,
                 socket_timeout: float = 30.0, batches_per_worker: int = 1,
                 metrics: Any = True, dashboard: bool | int | str = False):
        if batches_per_worker < 1:
            raise ValueError(f"batches_per_worker must be >= 1, got {batches_per_worker}")
        self.signer = Signer(secret, insecure)   # first: a weak or missing key stops here
        self.batches_per_worker = batches_per_worker
        self.metrics = self._metrics_sink(url, ttl) if metrics is True else metrics
        self.url = url
        self.keys = Keys(prefix)
        self.ttl = ttl
        self.poll = poll
        self.client = connect(url, socket_timeout=max(socket_timeout, poll + 5))
        self.store = RedisStore(self.client, self.signer, ttl=ttl)
        self.handoff = HandOff(self.store, ask_upload=Uploads(self.client, self.keys, ttl).request)
        self.token = f"{HOST}-{os.getpid()}-{secrets.token_hex(3)}"
        self.events = self.keys.client_events(self.token)
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._grouped = False
        self._counter = itertools.count(1)
        self._known_workers: set[str] = set()  # as last seen by workers()
        self._told_no_workers = False  # warned that runs wait with no worker serving
        self._serve_dashboard(dashboard)

    @staticmethod
    def _metrics_sink(url: str, ttl: int) -> Any:
        try:
            from ..metrics.sinks import RedisSink
        except ImportError:      # no sink layer: reports stay in memory (future.report)
            return None
        return RedisSink(url, ttl=ttl)

    def settings(self) -> dict[str, Any]:
        return {"url": redacted(self.url), "prefix": self.keys.prefix, "ttl": self.ttl,
                "batches_per_worker": self.batches_per_worker}

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.workers() if w.get("host") == HOST]

    def workers(self) -> list[dict[str, Any]]:
        """Live workers, from their heartbeats (a change is a WorkerStarted / WorkerDied event)."""
        out, dead = read_workers(self.client, self.keys)
        if dead:
            self.client.hdel(self.keys.workers, *dead)
        self._note_workers({w["name"] for w in out})
        return out

    def _note_workers(self, live: set[str]) -> None:
        """Tell subscribers which workers appeared or went silent since the last look."""
        with self._lock:
            started, gone = live - self._known_workers, self._known_workers - live
            self._known_workers = live
        for name in sorted(started):
            fd_events.worker_changed(self.event_bus, name, None)
        for name in sorted(gone):  # no exit code: its heartbeat stopped
            fd_events.worker_changed(self.event_bus, name, -1)

    # -- submitting ---------------------------------------------------------
    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        if self._closed:
            raise RuntimeError("this RedisExecutor has been shut down")
        dag, single = as_dag(dag_or_nodes)
        plan = build_plan(dag)
        run = f"{self.token}-{next(self._counter)}"
        future = RunFuture(run, single, on_cancel=lambda: self._cancel(run),
                           events=self.event_bus)
        future.tasks_total = len(plan)
        self._track(future, options)
        fd_events.run_submitted(self.event_bus, run, self.name, plan, options.get("name", ""),
                                self.settings())
        try:
            self._start(run, plan, future)
        except BaseException as exc:
            fd_events.run_finished(self.event_bus, run, time.time(), exc)
            future.fail_unstarted(exc)
            raise
        self._ensure_listener()
        return future

    def _start(self, run: str, plan: Plan, future: RunFuture) -> None:
        """Put the plan, the run's metadata and its root batches into Redis."""
        if not self._grouped:
            ensure_group(self.client, self.keys)
            self._grouped = True
        scope = self.keys.run(run, "")
        live = self.workers()
        pipe = self.client.pipeline(transaction=False)
        try:
            # Arrays captured in the graph travel in the plan: through /dev/shm
            # to workers on this host, as bytes if some worker may be elsewhere.
            self.handoff.queue_put(
                pipe, scope, self.keys.run(run, "plan"), bind_plan(run, plan, self.ttl),
                remote=not live or any(w.get("shm") != self.handoff.domain for w in live))
        except Exception as exc:  # noqa: BLE001
            self.handoff.sweep_run(scope)
            err = SerializationError(f"the graph cannot be pickled to send it to workers: "
                                     f"{type(exc).__name__}: {exc}")
            err.__cause__ = exc
            raise err from exc
        meta = self.keys.run(run, "meta")
        pipe.hset(meta, mapping={"state": "running", "ntasks": len(plan), "ndone": 0,
                                 "events": self.events, "shm": self.handoff.domain})
        pipe.expire(meta, self.ttl)
        nbatches = self.batches_per_worker * max(1, len(live))
        batches = _root_batches(plan, nbatches)
        for batch in batches:
            pipe.xadd(self.keys.stream, message_fields(self.signer, self.keys, run,
                                                       ",".join(map(str, batch))))
        for batch in batches:  # on the task stream: ready, for whichever worker reads it
            fd_events.tasks_ready(self.event_bus, run, batch, "")
        with self._lock:
            self._runs[run] = _Run(plan, future, time.time())
            self._wake.notify_all()
        try:
            pipe.execute()
        except Exception:
            with self._lock:
                self._runs.pop(run, None)
            self.handoff.sweep_run(scope)
            raise

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, daemon=True,
                                                name=f"fastdag-redis-{self.token}")
                self._thread.start()

    # -- waiting for events -------------------------------------------------
    def _listen(self) -> None:
        """The listener thread: never ends silently while runs wait on it."""
        try:
            self._listen_loop()
        except BaseException as exc:  # noqa: BLE001
            self._fail_all(FastdagError(f"the Redis executor's listener thread died: "
                                        f"{describe_exception(exc)}"))

    def _listen_loop(self) -> None:
        """Block on this client's event list; resolve runs; notice a lost server."""
        import redis
        last_check = time.time()
        while True:
            with self._lock:
                while not self._runs and not self._closed:
                    self._wake.wait()
                if self._closed and not self._runs:
                    return
            try:
                got = self.client.blpop([self.events], timeout=self.poll)
                if got:
                    self._on_event(_parse_event(got[1]))
                if not got or time.time() - last_check > self.poll:
                    last_check = time.time()
                    self._check_runs()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._fail_all(RedisUnavailable(
                    f"lost the connection to Redis at {redacted(self.url)}: {exc}"))
            except Exception as exc:  # noqa: BLE001 - never die silently with runs waiting
                self._fail_all(FastdagError(f"the Redis executor's listener failed: "
                                            f"{type(exc).__name__}: {exc}"))

    def _check_runs(self) -> None:
        with self._lock:
            runs = list(self._runs.items())
        if not runs:
            return
        pipe = self.client.pipeline(transaction=False)
        for run, _ in runs:
            pipe.hmget(self.keys.run(run, "meta"), ["state", "ndone"])
        for (run, state), (status, ndone) in zip(runs, pipe.execute()):
            if status is None:
                self._resolve(run, exc=RedisUnavailable(
                    f"run {run} vanished from Redis at {redacted(self.url)}: the server was "
                    "restarted or flushed, or its keys expired, while the run was going"))
            else:
                state.future.tasks_done = int(ndone or 0)
                self._emit_records(run, state)
        live = self.workers()  # workers that started or went silent meanwhile
        waiting = time.time() - min(state.start for _, state in runs)
        if not live and waiting > NO_WORKERS_WARN_S and not self._told_no_workers:
            self._told_no_workers = True
            warnings.warn(f"fastdag: runs have waited {waiting:.0f} s and no worker serves "
                          f"{redacted(self.url)} (prefix {self.keys.prefix!r}); start some with "
                          "`fastdag worker --redis URL` (same prefix and FASTDAG_SECRET)",
                          RuntimeWarning, stacklevel=1)
        if live:  # a later spell without workers is told again
            self._told_no_workers = False

    def _on_event(self, ev: dict[str, Any]) -> None:
        run = ev.get("run", "")
        if not isinstance(run, str):
            return
        with self._lock:
            state = self._runs.get(run)
        if state is None:
            return
        kind = ev.get("kind")
        plan = state.plan
        try:
            if kind == "done":
                self._resolve(run, outputs=self._outputs(run, plan))
                return
            if kind == "error":
                sent = self.store.get_key(self.keys.run(run, "error"))
                exc: BaseException = received_error(plan.name(sent.index), sent)
                self._emit_records(run, state)
                fd_events.task_failed(self.event_bus, run, sent.index, "", exc)
            elif kind == "rejected":
                exc = PayloadRejected(f"worker {ev.get('worker')} rejected a payload of run "
                                      f"{run}: {ev.get('reason')}")
            elif kind == "crashed":
                names = ", ".join(plan.name(i) for i in ev.get("tasks", [])[:5])
                exc = WorkerCrashedError(
                    f"the workers running task(s) {names} died {ev.get('deliveries')} times "
                    "(killed by a signal, os._exit or out of memory?); giving up",
                    task=plan.name(ev["tasks"][0]) if ev.get("tasks") else "")
            else:
                exc = FastdagError(f"unknown event from a worker: {ev!r}")
        except Exception as err:  # noqa: BLE001 - e.g. a tampered result or error record
            exc = err
        self._resolve(run, exc=exc)

    def _outputs(self, run: str, plan: Plan) -> list[Any]:
        unique = list(dict.fromkeys(plan.outputs))
        keys = [self.keys.value(run, o) for o in unique]
        try:
            values = dict(zip(unique, self.handoff.get_many(keys)))
        except (Missing, PayloadRejected, RedisError):
            raise
        except Exception as exc:  # noqa: BLE001 - name the result that does not load here
            for o, key in zip(unique, keys):
                try:
                    self.handoff.get_key(key)
                except Exception:  # noqa: BLE001
                    raise unloadable_result(plan.name(o), exc) from exc
            raise
        return [values[o] for o in plan.outputs]

    def _resolve(self, run: str, outputs: list[Any] | None = None,
                 exc: BaseException | None = None) -> None:
        """Finish a run either way, attach its report, and delete its keys."""
        with self._lock:
            state = self._runs.pop(run, None)
        if state is None:
            return
        future = state.future
        try:
            self._emit_records(run, state)  # the last ones: the recorder's report is whole
        except Exception:  # noqa: BLE001 - a report is not worth failing the run over
            pass
        fd_events.run_finished(self.event_bus, run, state.start, exc)
        try:
            # Before resolving: whoever waits on the future finds Redis clean.
            self._delete_run(run)
        except Exception:  # noqa: BLE001 - the TTL removes what is left
            pass
        if exc is None:
            future.tasks_done = future.tasks_total
            future.finish(outputs or [])
        else:
            future.fail(exc)

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            self._resolve(run, exc=exc)

    # -- metrics --------------------------------------------------------------
    def _emit_records(self, run: str, state: _Run) -> None:
        """Give subscribers the metrics records workers pushed since the last call.

        As ``TaskBatch`` events, and a ``DataMoved`` ("redis") for each result
        a worker put into Redis: the records whose store time it measured
        (``RAW_FIELDS`` store_s, output_bytes: the bytes it put).
        """
        rows = self.client.lrange(self.keys.metrics(run), state.records_seen, -1)
        state.records_seen += len(rows)
        records = [(w, tuple(f)) for w, *f in map(json.loads, rows)]
        fd_events.record_rows(self.event_bus, run, records)
        if self.event_bus.active:
            now = time.time()
            moved = [fd_events.DataMoved(run, now, int(f[INDEX]), w, int(f[OUTPUT_BYTES]), "redis")
                     for w, f in records if f[STORE_S] > 0]
            if moved:
                self.event_bus.emit_many(moved)

    # -- ending runs ----------------------------------------------------------
    def _cancel(self, run: str) -> None:
        with self._lock:
            state = self._runs.pop(run, None)
        if state is None:
            return
        fd_events.run_finished(self.event_bus, run, state.start, CancelledError("the run was cancelled"))
        try:
            self.client.hset(self.keys.run(run, "meta"), "state", "cancelled")
            self._delete_run(run, keep_meta=True)
        except Exception:  # noqa: BLE001 - the TTL removes what is left
            pass

    def _delete_run(self, run: str, keep_meta: bool = False) -> None:
        """Delete a finished run's keys (workers seeing no meta drop its messages).

        First mark it ended for as long as its plan is valid: a plan or message
        replayed into Redis later is refused (``protocol.BEGIN``).
        """
        self.client.set(self.keys.ended(run), 1, ex=self.ttl)
        meta = self.keys.run(run, "meta")
        doomed = [k for k in self.client.scan_iter(match=self.keys.run_pattern(run), count=1000)]
        if keep_meta:
            doomed = [k for k in doomed if k != meta.encode()]
            self.client.expire(meta, 60)
        for k in range(0, len(doomed), 1000):
            self.client.unlink(*doomed[k:k + 1000])
        self.handoff.sweep_run(self.keys.run(run, ""))

    def shutdown(self, wait: bool = True) -> None:
        """Wait for (or, with ``wait=False``, cancel) pending runs; stop the listener."""
        with self._lock:
            if self._closed:
                return
            pending = [s.future for s in self._runs.values()]
        if wait:
            for f in pending:
                try:
                    f.exception()
                except BaseException:  # noqa: BLE001 - cancelled futures raise here
                    pass
        else:
            for f in pending:
                f.cancel()
        with self._lock:
            self._closed = True
            for run, state in list(self._runs.items()):
                state.future.fail(CancelledError(f"run {run}: executor shut down"))
            self._runs.clear()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.poll + 5)
        self._stop_dashboard()
        try:
            self.client.delete(self.events)
        except Exception:  # noqa: BLE001
            pass
        self.client.close()
        self._wait_for_metrics()


def _parse_event(raw: bytes) -> dict[str, Any]:
    """A worker's event; an unreadable one (garbage written to the list) is ignored."""
    try:
        ev = json.loads(raw)
    except ValueError:
        return {}
    return ev if isinstance(ev, dict) else {}


def _root_batches(plan: Plan, batches: int) -> list[list[int]]:
    """The graph's roots in the order the outputs need them, cut into batches.

    A depth-first walk from the outputs meets the roots that feed the same
    consumers one after the other (the two leaves of a pair, the blocks of
    one matrix product), so a contiguous batch holds whole subgraphs that a
    worker can run without asking Redis for anything (``cluster.py``).
    """
    deps = plan.deps
    seen = bytearray(len(plan))
    roots: list[int] = []
    for out in plan.outputs:
        stack = [out]
        while stack:
            i = stack.pop()
            if seen[i]:
                continue
            seen[i] = 1
            if not deps[i]:
                roots.append(i)
            else:
                stack.extend(reversed(deps[i]))
    size = max(1, -(-len(roots) // batches))
    return [roots[k:k + size] for k in range(0, len(roots), size)]
