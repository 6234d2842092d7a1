"""The ``fastdag worker`` process: takes messages from the Redis stream and runs them.

One message is a batch of ready tasks of one run. The worker runs it depth
first and keeps going with the cluster of tasks it owns (``cluster.py``):
chains, fan-ins fed from here, and fan-ins whose counter it completed. A
result leaves the worker only if a consumer outside the cluster, a queued
fan-out branch or the caller needs it. Everything a finished task changes in
Redis (its stored result, its consumers' counters, queued branches, the
run's progress) is sent in one pipeline ending in the COMPLETE script, and
only when it changes something another worker or the client is waiting for;
otherwise completions are batched. Those pipelines run on a single I/O
thread, in order, while the task thread goes on computing. Large results
go to workers on the same host through /dev/shm, with only a signed
reference in Redis (``handoff.py``). What this worker stored is also kept
encoded in a bounded cache (``cache.py``), so a later consumer here rebuilds
it without downloading it.

Failure handling:

* A task raises: its Failure (with the worker's traceback) is stored signed
  under the run's error key, the run is marked failed, and the client is
  told through its event list. Other workers drop that run's messages.
* A worker dies: its message stays pending in the consumer group. A live
  worker refreshes the idle time of the message it is running (``XCLAIM
  JUSTID`` from a heartbeat thread), so only a dead worker's message goes
  idle; after ``idle_timeout`` another worker takes it with ``XAUTOCLAIM``
  and re-runs it (the COMPLETE script makes that idempotent). A message
  delivered more than ``max_deliveries`` times fails the run with
  WorkerCrashedError instead of killing worker after worker.
* A payload with a bad signature is never unpickled: the worker records the
  rejection (``P:rejections``) and fails the run with the reason.
* Redis unreachable: the worker logs it and reconnects with back-off.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from ..core.records import OUTPUT_BYTES, STORE_S
from ..metrics.runs import HOST
from ..core.plan import Plan
from ..core.guard import writeable
from ..core.runner import Failure, describe_failure, nbytes, send_failure
from ..engine.step import TaskFailed, own_inputs, run_task, unsendable
from ..store.redis import DEFAULT_TTL, RedisStore
from . import requirements
from .cluster import Cluster
from .handoff import HandOff, Missing
from .janitor import Janitor
from .protocol import (BEGIN, COMPLETE, GROUP, Keys, check_plan, connect, ensure_group, event,
                       message_tag, read_message, read_workers, redacted)
from ..core.signing import PayloadRejected, Signer
from .uploads import Uploads, UploadServer

FLUSH_INTERVAL = 0.1       # seconds between progress reports inside a long message
RECHECK = 0.5              # seconds a run's "running" state is trusted without asking Redis
QUEUE_MESSAGES = 64        # a fan-out's queued branches go out in at most this many messages
ENDED_KEPT = 10_000        # ended runs a worker remembers, to refuse their replays


class MissingRequirement(RuntimeError):
    """This worker lacks a package a task declared in ``requires``."""


@dataclass
class WorkerConfig:
    """How a worker connects and when it reclaims a dead worker's messages."""

    url: str
    prefix: str = "fastdag"
    idle_timeout: float = 30.0     # seconds a message may sit unrefreshed before reclaim
    max_deliveries: int = 3
    ttl: int = DEFAULT_TTL
    block: float = 1.0             # seconds one XREADGROUP waits
    cache_bytes: int = 512 << 20   # own stored results kept to avoid downloading them again
    shm: bool = True               # hand large results to same-host workers through /dev/shm


@dataclass
class RunContext:
    """What a worker caches about one run."""

    run: str
    plan: Plan
    events: str
    scope: str                     # what the run's keys start with
    client_here: bool              # the client shares this worker's /dev/shm
    running_at: float = 0.0        # when Redis last said the run is running
    checked: dict[int, list[str]] = field(default_factory=dict)   # id(Task) -> unmet


@dataclass
class MessageRun:
    """What one stream message holds while its tasks run (``Worker._run_message``)."""

    cluster: Cluster
    stack: list[int]                                          # tasks to run here, last first
    values: dict[int, Any] = field(default_factory=dict)      # results tasks here still need
    unsent: dict[int, Any] = field(default_factory=dict)      # stored ones not in Redis yet
    stored: set[int] = field(default_factory=set)             # results this message stores
    used: list[int] = field(default_factory=list)             # stored inputs read, for COMPLETE
    puts: list[tuple[int, Any, list]] = field(default_factory=list)   # (task, value, record)
    groups: list[tuple] = field(default_factory=list)         # completions not yet sent
    records: list[list] = field(default_factory=list)         # their metrics records
    inflight: collections.deque[tuple[Future, list[int]]] = field(
        default_factory=collections.deque)                    # sends, and the tasks they store

    def take(self) -> tuple[list, list, list]:
        """The puts, completions and records not sent yet, for one send."""
        taken = self.puts, self.groups, self.records
        self.puts, self.groups, self.records = [], [], []
        return taken

    def take_back(self) -> None:
        """Collect the sends that are done (or all, with nothing left to run): their
        results are in Redis now, and the fan-ins they claimed join the cluster."""
        while self.inflight and (self.inflight[0][0].done() or not self.stack):
            fut, sent = self.inflight.popleft()
            kept = fut.result()
            for i in sent:
                self.unsent.pop(i, None)
            if kept:
                self.cluster.admit(kept)
                self.stack.extend(reversed(kept))


class _RunStopped(Exception):
    """The run was failed, cancelled or cleaned up while this message ran."""


class Worker:
    """One worker: a loop over stream messages plus a heartbeat thread."""

    def __init__(self, config: WorkerConfig, signer: Signer):
        self.config = config
        self.keys = Keys(config.prefix)
        self.client = connect(config.url)
        self.store = RedisStore(self.client, signer, ttl=config.ttl)
        self.complete_sha = ""
        self.begin = self.client.register_script(BEGIN)
        self.name = f"{HOST}:{os.getpid()}"
        self.runs: collections.OrderedDict[str, RunContext] = collections.OrderedDict()
        # Runs seen ending: never run again here, whatever Redis says later (a replay).
        self.ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.uploads = Uploads(self.client, self.keys, config.ttl)
        self.handoff = HandOff(self.store, shm=config.shm, cache_bytes=config.cache_bytes,
                               ask_upload=self.uploads.request)
        self.janitor = Janitor(self.handoff, self.client)
        self.others = False            # a live worker elsewhere may read what this one stores
        self.io = ThreadPoolExecutor(1, thread_name_prefix="fastdag-io")
        self.current: bytes | None = None
        self.stop = threading.Event()
        self._next_claim = 0.0
        self.tasks_run = 0

    # -- main loop ----------------------------------------------------------
    def serve(self) -> None:
        """Run messages until ``stop`` is set; survive Redis outages."""
        import redis
        beat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        beat.start()
        UploadServer(self.client, self.keys, self.handoff, self.stop).start()
        backoff = 0.5
        grouped = False
        while not self.stop.is_set():
            try:
                if not grouped:
                    ensure_group(self.client, self.keys)
                    self.complete_sha = self.client.script_load(COMPLETE)
                    grouped = True
                message = self._next_message()
                backoff = 0.5
                if message is not None:
                    self.process(*message)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                grouped = False
                self.current = None
                log(f"Redis at {redacted(self.config.url)} unreachable ({exc}); "
                    f"retrying in {backoff:.1f} s")
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as exc:  # noqa: BLE001 - e.g. NOGROUP after a server restart
                grouped = False
                self.current = None
                log(f"unexpected {type(exc).__name__}: {exc}; retrying in {backoff:.1f} s")
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        try:
            self.client.hdel(self.keys.workers, self.name)
        except Exception:  # noqa: BLE001 - leaving anyway
            pass

    def _next_message(self) -> tuple[bytes, dict] | None:
        cfg, keys = self.config, self.keys
        now = time.time()
        if now >= self._next_claim:
            self._next_claim = now + cfg.idle_timeout / 2
            _, entries, *_ = self.client.xautoclaim(
                keys.stream, GROUP, self.name, min_idle_time=int(cfg.idle_timeout * 1000),
                start_id="0-0", count=1)
            for mid, fields in entries:
                if not fields:
                    continue
                pending = self.client.xpending_range(keys.stream, GROUP, min=mid, max=mid, count=1)
                deliveries = pending[0]["times_delivered"] if pending else 1
                if deliveries > cfg.max_deliveries:
                    self._give_up(mid, fields, deliveries)
                    continue
                log(f"reclaimed message {mid.decode()} of a dead worker "
                    f"(delivery {deliveries})")
                return mid, fields
        block = int(min(cfg.block, cfg.idle_timeout / 2) * 1000)
        got = self.client.xreadgroup(GROUP, self.name, {keys.stream: ">"}, count=1,
                                     block=max(1, block))
        if got:
            mid, fields = got[0][1][0]
            return mid, fields
        return None

    def _heartbeat(self) -> None:
        """Advertise this worker and keep the running message from looking abandoned."""
        period = max(0.1, min(2.0, self.config.idle_timeout / 3))
        domain = self.handoff.domain
        info = {"host": HOST, "pid": os.getpid(), "shm": domain}
        first = True
        while first or not self.stop.wait(period):
            first = False
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.hset(self.keys.workers, self.name,
                          json.dumps({**info, "time": time.time(), "tasks": self.tasks_run}))
                mid = self.current
                if mid is not None:
                    pipe.xclaim(self.keys.stream, GROUP, self.name, 0, [mid], justid=True)
                pipe.execute()
                live, _ = read_workers(self.client, self.keys)
                self.others = any(w.get("shm") != domain for w in live)
                self.janitor.check()
            except Exception:  # noqa: BLE001 - the main loop reports outages
                pass

    # -- one message --------------------------------------------------------
    def process(self, mid: bytes, fields: dict) -> None:
        try:
            run, tasks = read_message(self.store.signer, self.keys, fields)
        except PayloadRejected as exc:
            self._drop_forged(mid, fields, str(exc))
            run = fields.get(b"run", b"").decode(errors="replace")
            if run:
                # A forgery, unless the run's plan fails to verify too: then this
                # worker's key is not the client's, and the client must hear it.
                self._settle(run, mid, 0, self._context, run)
            return
        self.current = mid
        try:
            self._settle(run, mid, tasks[0], self._start, run, mid, tasks)
        finally:
            self.current = None

    def _start(self, run: str, mid: bytes, tasks: list[int]) -> None:
        ctx = self._context(run)
        if ctx is None:
            self._ack(mid)
            return
        # Only the first message naming a task may run it: a copy is a replay.
        allowed = [int(t) for t in self.begin(keys=self.keys.begin_keys(run),
                                              args=[mid, self.config.ttl, *tasks])]
        if len(allowed) < len(tasks):
            self._record_rejection(run, mid, f"tasks {sorted(set(tasks) - set(allowed))} are "
                                   "done, ended or run by another message (a replay?)")
        if not allowed:
            self._ack(mid)
            return
        self._run_message(ctx, mid.decode(), allowed)

    def _settle(self, run: str, mid: bytes, task: int, work: Any, *args: Any) -> None:
        """Call ``work(*args)`` for message ``mid``; end the message as the outcome says.

        Redis errors propagate (the main loop reconnects; the message stays
        pending and is claimed again); any other error fails the run.
        """
        try:
            work(*args)
        except PayloadRejected as exc:
            self._reject(run, mid, str(exc))
        except TaskFailed as failed:
            self._fail(run, mid, failed.failure)
        except _RunStopped:
            self._ack(mid)
        except RedisError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug here must fail the run, not hang it
            err = RuntimeError(f"internal error in worker {self.name}: "
                               f"{type(exc).__name__}: {exc}")
            self._fail(run, mid, describe_failure(task, err.with_traceback(exc.__traceback__), 1))

    def _context(self, run: str) -> RunContext | None:
        if run in self.ended:
            return None
        ctx = self.runs.get(run)
        if ctx is not None and time.time() - ctx.running_at < RECHECK:
            return ctx          # a stopped run shows at the next send; not worth a round trip
        meta = self.keys.run(run, "meta")
        state, events, client_domain = self.client.hmget(meta, ["state", "events", "shm"])
        client_here = client_domain is not None and client_domain.decode() == self.handoff.domain
        if state != b"running":
            self._end(run, state, client_here)
            return None
        if ctx is None:
            plan = check_plan(self.handoff.get_key(self.keys.run(run, "plan")), run)
            ctx = self.runs[run] = RunContext(run=run, plan=plan, events=events.decode(),
                                              scope=self.keys.run(run, ""),
                                              client_here=client_here)
            self.janitor.track(ctx.scope, meta, client_here)
            while len(self.runs) > 8:
                self._forget(next(iter(self.runs)))
        ctx.running_at = time.time()
        return ctx

    def _forget(self, run: str) -> None:
        """Drop what this worker keeps in memory for a run."""
        self.runs.pop(run, None)
        self.handoff.forget(self.keys.run(run, ""))

    def _end(self, run: str, state: bytes | None, client_here: bool | None = None) -> None:
        """A run is over (``state`` as Redis has it): forget it, sweep its segments here."""
        ctx = self.runs.get(run)
        if client_here is None:
            client_here = ctx is not None and ctx.client_here
        self.ended[run] = None
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)
        self._forget(run)
        self.janitor.ended(self.keys.run(run, ""), state, client_here)

    def _run_message(self, ctx: RunContext, mid: str, batch: list[int]) -> None:
        """Run a batch and the cluster it pulls in; send completions from the I/O thread.

        Storing results and running the COMPLETE script happen on ``self.io``
        (one thread, so flushes reach Redis in order) while this thread goes
        on computing; hashing and socket writes release the GIL. A flush
        returns the fan-ins this worker claimed, which join the cluster when
        they come back; with nothing else to run, this thread waits for them.
        """
        state = MessageRun(Cluster(ctx.plan), batch[::-1])
        state.cluster.admit(batch)
        clock = time.time
        last_flush = ready_at = clock()
        try:
            while state.stack or state.inflight:
                state.take_back()
                if not state.stack:
                    continue
                done, ready_at = self._step(ctx, state, state.stack.pop(), ready_at)
                if done.external or done.queued or ready_at - last_flush > FLUSH_INTERVAL:
                    # Records travel with the completions they describe: the run
                    # may end (and the client read them) before the final send.
                    puts, groups, records = state.take()
                    state.inflight.append((self.io.submit(self._send, ctx, mid, puts, groups,
                                                          records=records),
                                           [i for i, _, _ in puts]))
                    last_flush = clock()
            # The last send has no consumer to claim (those were flushed at
            # once): the I/O thread finishes the message while this one goes on.
            puts, groups, records = state.take()
            final = self.io.submit(self._settle, ctx.run, mid.encode(), batch[0], self._send,
                                   ctx, mid, puts, groups, state.used, records)
            final.add_done_callback(_log_error)
        except TaskFailed:
            self._keep_records(ctx, state.take()[2])  # the run's report keeps what did run
            raise
        finally:
            for fut, _ in state.inflight:   # an error: let the I/O thread finish first
                fut.cancel()
            futures_wait([fut for fut, _ in state.inflight])

    def _step(self, ctx: RunContext, state: MessageRun, t: int, ready_at: float
              ) -> tuple[Any, float]:
        """Task ``t``'s step (``engine/step.py``) with its inputs from here or Redis;
        keep, queue for storing or release what it touched. Returns the cluster's
        news of ``t`` (``Cluster.completed``) and when it ended."""
        plan, values, unsent, cluster = ctx.plan, state.values, state.unsent, state.cluster
        start = time.time()
        self._check_requirements(ctx, t)
        deps = plan.deps[t]
        inputs = {d: values[d] if d in values else unsent[d]
                  for d in deps if d in values or d in unsent}
        if len(inputs) < len(deps):
            inputs.update(self._fetch(ctx, t, [d for d in deps if d not in inputs]))
        fetched = time.time()
        own_inputs(plan, t, inputs)
        value, attempts = run_task(plan, t, inputs)
        value = writeable(value)  # not a guarded input's read-only view
        end = time.time()
        done = cluster.completed(t)
        if cluster.member_uses.get(t, 0) > 0:
            values[t] = value
        for d in cluster.release(t):
            values.pop(d, None)
        in_bytes = 0
        for d in deps:
            in_bytes += nbytes(inputs[d])
            if d not in cluster.done or d in state.stored:
                state.used.append(d)
        del inputs
        # The worker's name, then records.RAW_FIELDS (store time and output
        # bytes filled in by _send once stored).
        record = [self.name, t, start, end, fetched - start, 0.0, in_bytes, nbytes(value),
                  attempts, ready_at]
        state.records.append(record)
        if plan.wanted[t] or done.external or done.queued:
            state.puts.append((t, value, record))
            unsent[t] = value
            state.stored.add(t)
        del value
        self.tasks_run += 1
        state.groups.append((t, done.external, _split(done.queued)))
        state.stack.extend(reversed(done.local_ready))
        return done, end

    def _send(self, ctx: RunContext, mid: str, puts: list[tuple[int, Any, list]],
              groups: list[tuple], used: list[int] | None = None,
              records: list[list] | None = None) -> list[int]:
        """Store results, then report completions (and, with ``used``, ack the message).

        One pipeline ending in the COMPLETE script: Redis runs it in order,
        so no counter moves before the inputs it announces are stored.
        Returns the consumers this worker claimed.
        """
        pipe = self.client.pipeline(transaction=False)
        for t, value, record in puts:
            began = time.time()
            record[1 + OUTPUT_BYTES] = self._queue_put(pipe, ctx, t, value)
            record[1 + STORE_S] = time.time() - began
        ack = used is not None
        args: list[Any] = [mid, ctx.run, self.config.ttl, GROUP, int(ack), len(groups)]
        signer, keys, run = self.store.signer, self.keys, ctx.run
        for t, external, queued in groups:
            args += [t, len(external)]
            for c, need in external:   # signed in case the script queues c as a message
                args += [c, need, message_tag(signer, keys, run, str(c))]
            args.append(len(queued))
            for tasks in queued:
                args += [tasks, message_tag(signer, keys, run, tasks)]
        if ack:
            args.append(len(used))
            args.extend(used)
        keys = self.keys.complete_keys(ctx.run)
        if records:
            _push_records(pipe, self.keys.metrics(ctx.run), records, self.config.ttl)
        pipe.evalsha(self.complete_sha, len(keys), *keys, *args)
        try:
            state, kept, uses = pipe.execute()[-1]
        except NoScriptError:  # the server restarted and lost its script cache
            self.complete_sha = self.client.script_load(COMPLETE)
            state, kept, uses = self.client.evalsha(self.complete_sha, len(keys), *keys, *args)
        if state == b"running":
            ctx.running_at = time.time()
        elif state != b"done":
            self._end(ctx.run, state)
            raise _RunStopped
        if state == b"done" and ack:
            self._end(ctx.run, state)
        if uses:
            plan = ctx.plan
            free = [self.keys.value(ctx.run, int(uses[k])) for k in range(0, len(uses), 2)
                    if int(uses[k + 1]) >= len(plan.dependents[int(uses[k])])
                    and not plan.wanted[int(uses[k])]]
            self.handoff.delete_keys(free)
        return [int(c) for c in kept]

    def _queue_put(self, pipe: Any, ctx: RunContext, t: int, value: Any) -> int:
        key = self.keys.value(ctx.run, t)
        wanted = ctx.plan.wanted[t]
        try:
            return self.handoff.queue_put(
                pipe, ctx.scope, key, value,
                remote=self.others or bool(wanted and not ctx.client_here),
                local=bool(ctx.plan.dependents[t]) or ctx.client_here)
        except Exception as exc:  # noqa: BLE001 - the task's failure, not the worker's
            raise unsendable(ctx.plan, t, value, exc, "through Redis") from None

    def _fetch(self, ctx: RunContext, t: int, missing: list[int]) -> dict[int, Any]:
        try:
            values = self.handoff.get_many([self.keys.value(ctx.run, d) for d in missing])
        except Missing as exc:
            d = missing[exc.index]
            err = KeyError(f"input {ctx.plan.name(d)!r} of task {ctx.plan.name(t)!r} is "
                           f"lost: {exc.reason}")
            raise TaskFailed(describe_failure(t, err, 1)) from None
        return dict(zip(missing, values))

    def _check_requirements(self, ctx: RunContext, t: int) -> None:
        task = ctx.plan.tasks[t]
        if not task.requires:
            return
        unmet = ctx.checked.get(id(task))
        if unmet is None:
            unmet = ctx.checked[id(task)] = requirements.check(task.requires)
        if unmet:
            exc = MissingRequirement(
                f"worker {self.name} refuses task {ctx.plan.name(t)!r}: requirement not "
                f"satisfied here: {'; '.join(unmet)} (workers never install packages; "
                "install them on every worker host)")
            raise TaskFailed(Failure(index=t, exc=exc, traceback="", attempts=0))

    # -- ending a message badly ----------------------------------------------
    def _ack(self, mid: bytes) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.keys.stream, GROUP, mid)
        pipe.xdel(self.keys.stream, mid)
        pipe.execute()

    def _keep_records(self, ctx: RunContext, records: list[list]) -> None:
        if records:
            pipe = self.client.pipeline(transaction=False)
            _push_records(pipe, self.keys.metrics(ctx.run), records, self.config.ttl)
            pipe.execute()

    def _fail_run(self, run: str, mid: bytes | None, payload: str) -> None:
        meta = self.keys.run(run, "meta")
        events = self.client.hget(meta, "events")
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(meta, "state", "failed")
        if events:
            pipe.rpush(events, payload)
            pipe.expire(events, self.config.ttl)
        if mid is not None:
            pipe.xack(self.keys.stream, GROUP, mid)
            pipe.xdel(self.keys.stream, mid)
        pipe.execute()
        self._end(run, b"failed")

    def _fail(self, run: str, mid: bytes, failure: Failure) -> None:
        failure.traceback = f"[on worker {self.name}]\n{failure.traceback}"
        self.store.put(self.keys.run(run, "error"), send_failure(failure))
        self._fail_run(run, mid, event("error", run, task=failure.index, worker=self.name))

    def _reject(self, run: str, mid: bytes, reason: str) -> None:
        log(f"rejected a payload of run {run}: {reason}")
        record = json.dumps({"worker": self.name, "run": run, "reason": reason,
                             "time": time.time()})
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.keys.rejections, record)
        pipe.ltrim(self.keys.rejections, 0, 999)
        pipe.execute()
        self._fail_run(run, mid, event("rejected", run, reason=reason, worker=self.name))

    def _drop_forged(self, mid: bytes, fields: dict, reason: str) -> None:
        """Delete a stream message that is not signed with our key; record why."""
        self._record_rejection(fields.get(b"run", b"?").decode(errors="replace"), mid, reason)
        self._ack(mid)

    def _record_rejection(self, run: str, mid: bytes, reason: str) -> None:
        log(f"refused stream message {mid.decode()} of run {run}: {reason}")
        record = json.dumps({"worker": self.name, "run": run, "reason": reason,
                             "message": mid.decode(), "time": time.time()})
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.keys.rejections, record)
        pipe.ltrim(self.keys.rejections, 0, 999)
        pipe.execute()

    def _give_up(self, mid: bytes, fields: dict, deliveries: int) -> None:
        try:
            run, tasks = read_message(self.store.signer, self.keys, fields)
        except PayloadRejected as exc:
            self._drop_forged(mid, fields, str(exc))
            return
        log(f"message {mid.decode()} of run {run} was delivered {deliveries} times; "
            "failing the run")
        self._fail_run(run, mid, event("crashed", run, tasks=tasks, deliveries=deliveries))


def _log_error(fut: Future) -> None:
    """Report what went wrong in a send nobody waits for (a Redis outage: the message
    stays pending, and is claimed again once Redis is back)."""
    exc = fut.exception() if not fut.cancelled() else None
    if exc is not None:
        log(f"finishing a message failed: {type(exc).__name__}: {exc}")


def _split(tasks: list[int]) -> list[str]:
    """Queued fan-out branches as message payloads: at most QUEUE_MESSAGES messages."""
    if not tasks:
        return []
    size = -(-len(tasks) // QUEUE_MESSAGES)
    return [",".join(map(str, tasks[k:k + size])) for k in range(0, len(tasks), size)]


def log(message: str) -> None:
    print(f"fastdag worker {HOST}:{os.getpid()}: {message}", file=sys.stderr, flush=True)


def run_worker(config: WorkerConfig, signer: Signer, blas_threads: int | None = None) -> int:
    """Serve until SIGTERM/SIGINT; the body of ``fastdag worker --concurrency 1``."""
    if blas_threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(blas_threads)
    worker = Worker(config, signer)

    def stop(signum, frame):  # noqa: ARG001
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"serving {redacted(config.url)} (prefix {config.prefix!r}"
        f"{', INSECURE: payloads not authenticated' if signer.insecure else ''})")
    worker.serve()
    return 0


def _push_records(pipe: Any, key: str, records: list[list], ttl: int) -> None:
    """Queue on ``pipe`` the metrics records the client turns into the run's report."""
    pipe.rpush(key, *[json.dumps(r) for r in records])
    pipe.expire(key, ttl)
