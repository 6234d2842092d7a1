"""The Redis key layout and the atomic scripts that client and workers share.

Keys (``P`` is the namespace prefix, ``fastdag`` by default)::

    P:tasks                 stream of ready work, consumer group "workers":
                            entries {run, tasks: "i,j,k"} (task indices), sig:
                            HMAC of stream, run and tasks (``message_fields``)
    P:workers               hash worker id -> JSON heartbeat (live workers)
    P:rejections            list of JSON records of payloads workers refused
    P:uploads:<domain>      list of JSON requests to the workers of one /dev/shm
                            domain: put a value's bytes into Redis (uploads.py)
    P:uploaded:<token>      the reply list of one upload request
    P:metrics:<run>         list of JSON task records of one run, filled by the
                            workers; the client turns them into the run's report
                            (which the Redis metrics sink stores under
                            fastdag:reports:*, see metrics.sinks)
    P:client:<token>        list of JSON events for one client (done / error)
    P:run:<run>:meta        hash: state (running | failed | cancelled), ntasks,
                            ndone, events (the client's event list)
    P:run:<run>:plan        the signed, pickled RunPlan: the Plan, its run id, its expiry
    P:run:<run>:owner       hash i -> the stream message that runs i (BEGIN script)
    P:ended:<run>           set by the client when the run ends, kept as long as its
                            plan is valid: a replayed plan or message finds it
    P:run:<run>:v:<i>       the signed result of task i (chunks at :v:<i>:<k>)
    P:run:<run>:error       the signed, pickled Failure of the first failed task
    P:run:<run>:done        bitmap: task i has completed (set once)
    P:run:<run>:count       hash i -> inputs of i completed (WUKONG fan-in counter)
    P:run:<run>:claim       hash i -> stream message that runs i, or "q" if queued
    P:run:<run>:uses        hash i -> consumers of i that have finished
    P:run:<run>:acked       set of stream messages whose work is complete

Replays: the client and the workers sign every stream message (HMAC over
the stream's key, the run and the tasks; the COMPLETE script is handed the
signatures of the messages it adds), and a worker drops one that does not
verify. A signed message copied back into the stream is a duplicate: the
BEGIN script lets a task start only from the first message that named it
(or a re-delivery of that same message, after its worker died), never once
it is done, and never after the run ended. A plan names its run and an
expiry, so it cannot serve another run or outlive its time.

Why the scripts: a worker finishing a task must, atomically, mark it done,
bump its consumers' counters, take the consumer whose counter it completed,
queue the others, and count the run's progress. Doing this in one Lua
script makes it idempotent: a message re-run after its worker died finds
the task already marked done, changes no counter, and gets back exactly the
consumers the dead worker had claimed, so the run neither loses nor
duplicates work.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from ..core.plan import Plan
from ..core.signing import PayloadRejected, Signer

GROUP = "workers"
HEARTBEAT_FRESH = 10.0     # seconds: a worker heartbeat older than this is not counted
QUEUED = "q"


@dataclass(frozen=True)
class Keys:
    """Key names under one namespace prefix."""

    prefix: str = "fastdag"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:tasks"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def rejections(self) -> str:
        return f"{self.prefix}:rejections"

    def uploads(self, domain: str) -> str:
        return f"{self.prefix}:uploads:{domain}"

    def uploaded(self, token: str) -> str:
        return f"{self.prefix}:uploaded:{token}"

    def metrics(self, run: str) -> str:
        return f"{self.prefix}:metrics:{run}"

    def client_events(self, token: str) -> str:
        return f"{self.prefix}:client:{token}"

    @property
    def runs(self) -> str:
        """What every run's keys start with."""
        return f"{self.prefix}:run:"

    def run(self, run: str, part: str) -> str:
        return f"{self.prefix}:run:{run}:{part}"

    def value(self, run: str, i: int) -> str:
        return f"{self.prefix}:run:{run}:v:{i}"

    def ended(self, run: str) -> str:
        return f"{self.prefix}:ended:{run}"

    def begin_keys(self, run: str) -> list[str]:
        """KEYS of the BEGIN script, in its order."""
        return [self.run(run, "owner"), self.run(run, "done"), self.ended(run)]

    def run_pattern(self, run: str) -> str:
        return f"{self.prefix}:run:{run}:*"

    def complete_keys(self, run: str) -> list[str]:
        """KEYS of the COMPLETE script, in its order."""
        return [self.run(run, "done"), self.run(run, "count"), self.run(run, "claim"),
                self.stream, self.run(run, "meta"), self.run(run, "uses"),
                self.run(run, "acked")]


# KEYS: owner, done, ended
# ARGV: message id, ttl, then the message's tasks
# Returns the tasks this message may run: those no other message owns and not
# done, or owned by this very message (a re-delivery after its worker died).
BEGIN = r"""
if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
local mid = ARGV[1]
local out = {}
for k = 3, #ARGV do
  local t = ARGV[k]
  local owner = redis.call('HGET', KEYS[1], t)
  if owner == mid or (not owner and redis.call('GETBIT', KEYS[2], tonumber(t)) == 0) then
    if not owner then redis.call('HSET', KEYS[1], t, mid) end
    table.insert(out, t)
  end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return out
"""

# KEYS: done, count, claim, stream, meta, uses, acked
# ARGV: message id, run id, ttl, group, ack (0/1), n completed groups, then per
#   completed task: t, n_ext, (c, need, sig) * n_ext, n_push, (tasks csv, sig) * n_push
#   (sig: the signature of a message of that one consumer / those tasks)
#   then, if ack: n_used, d * n_used  (inputs consumed by this message's tasks)
# Returns {state, kept consumers, {d, uses} pairs (ack only)}.
COMPLETE = r"""
local state = redis.call('HGET', KEYS[5], 'state')
local mid, run, ttl, group = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if state ~= 'running' then
  if ARGV[5] == '1' then
    redis.call('XACK', KEYS[4], group, mid)
    redis.call('XDEL', KEYS[4], mid)
  end
  return {state or 'gone', {}, {}}
end
local ack = ARGV[5] == '1'
local ngroups = tonumber(ARGV[6])
local pos = 7
local kept = {}
local newly = 0
for g = 1, ngroups do
  local t = tonumber(ARGV[pos])
  local next_ext = tonumber(ARGV[pos + 1])
  pos = pos + 2
  local was = redis.call('SETBIT', KEYS[1], t, 1)
  if was == 0 then
    newly = newly + 1
    local took = false
    for j = 1, next_ext do
      local c, need = ARGV[pos], tonumber(ARGV[pos + 1])
      if redis.call('HINCRBY', KEYS[2], c, 1) == need then
        if not took then
          took = true
          redis.call('HSET', KEYS[3], c, mid)
          table.insert(kept, c)
        else
          redis.call('HSET', KEYS[3], c, 'q')
          redis.call('XADD', KEYS[4], '*', 'run', run, 'tasks', c, 'sig', ARGV[pos + 2])
        end
      end
      pos = pos + 3
    end
    local npush = tonumber(ARGV[pos])
    pos = pos + 1
    for j = 1, npush do
      redis.call('XADD', KEYS[4], '*', 'run', run, 'tasks', ARGV[pos], 'sig', ARGV[pos + 1])
      pos = pos + 2
    end
  else
    -- Re-run of a message whose worker died: hand back what it had claimed.
    for j = 1, next_ext do
      local c = ARGV[pos]
      pos = pos + 3
      if redis.call('HGET', KEYS[3], c) == mid then table.insert(kept, c) end
    end
    pos = pos + 1 + 2 * tonumber(ARGV[pos])
  end
end
if newly > 0 then
  local n = redis.call('HINCRBY', KEYS[5], 'ndone', newly)
  if n == tonumber(redis.call('HGET', KEYS[5], 'ntasks')) then
    redis.call('HSET', KEYS[5], 'state', 'done')
    local events = redis.call('HGET', KEYS[5], 'events')
    redis.call('RPUSH', events, cjson.encode({kind = 'done', run = run}))
    redis.call('EXPIRE', events, ttl)
  end
  for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ttl) end
end
local uses = {}
if ack then
  local nused = tonumber(ARGV[pos])
  pos = pos + 1
  if redis.call('SADD', KEYS[7], mid) == 1 then
    redis.call('EXPIRE', KEYS[7], ttl)
    for j = 1, nused do
      local d = ARGV[pos + j - 1]
      table.insert(uses, d)
      table.insert(uses, redis.call('HINCRBY', KEYS[6], d, 1))
    end
    redis.call('EXPIRE', KEYS[6], ttl)
  end
  redis.call('XACK', KEYS[4], group, mid)
  redis.call('XDEL', KEYS[4], mid)
end
return {redis.call('HGET', KEYS[5], 'state'), kept, uses}
"""


@dataclass
class RunPlan:
    """What the client signs as a run's plan: bound to the run and valid until ``expires``."""

    run: str
    expires: float     # time.time() after which no worker accepts it
    plan: Plan


def bind_plan(run: str, plan: Plan, lifetime: float) -> RunPlan:
    """``plan`` bound to ``run``, valid for ``lifetime`` seconds."""
    return RunPlan(run=run, expires=time.time() + lifetime, plan=plan)


def check_plan(bound: Any, run: str) -> Plan:
    """The Plan inside ``bound``; PayloadRejected unless it is this run's, and not expired."""
    if not isinstance(bound, RunPlan) or bound.run != run:
        raise PayloadRejected(f"the plan under run {run!r} was not made for that run (replayed?)")
    if bound.expires < time.time():
        raise PayloadRejected(f"the plan of run {run!r} expired (replayed?)")
    return bound.plan


def message_fields(signer: Signer, keys: Keys, run: str, tasks: str) -> dict[str, Any]:
    """A stream entry that runs ``tasks`` (comma-separated indices) of ``run``, signed."""
    return {"run": run, "tasks": tasks, "sig": message_tag(signer, keys, run, tasks)}


def message_tag(signer: Signer, keys: Keys, run: str, tasks: str) -> bytes:
    """The signature of a message of ``tasks`` of ``run`` on this namespace's stream."""
    return signer.tag(keys.stream, run.encode(), b"\0", tasks.encode())


def read_message(signer: Signer, keys: Keys, fields: dict) -> tuple[str, list[int]]:
    """(run, tasks) of a stream entry; PayloadRejected if unsigned, forged or malformed."""
    try:
        run, tasks, sig = fields[b"run"], fields[b"tasks"], fields[b"sig"]
        signer.verify(keys.stream, sig, run, b"\0", tasks)
        return run.decode(), [int(x) for x in tasks.split(b",")]
    except (KeyError, ValueError, UnicodeDecodeError):
        raise PayloadRejected(f"malformed stream message {sorted(fields)!r}") from None


def connect(url: str, *, socket_timeout: float = 30.0, pool_size: int = 16) -> Any:
    """A redis-py client for ``url`` (redis://, rediss:// for TLS, user:password@).

    Timeouts and health checks make a dead or unreachable server raise
    instead of hanging; ``socket_timeout`` must exceed the blocking reads'
    own timeouts (a few seconds), which it does by default.
    """
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry
    host = urlparse(url).hostname or ""
    if not host:
        raise ValueError(f"not a Redis URL: {url!r}")
    return redis.Redis.from_url(
        url, socket_timeout=socket_timeout, socket_connect_timeout=5.0,
        health_check_interval=15, max_connections=pool_size,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 2))


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def event(kind: str, run: str, **fields: Any) -> str:
    """A client event as JSON (never pickled: the client may read it unverified)."""
    return json.dumps({"kind": kind, "run": run, **fields})


def read_workers(client: Any, keys: Keys, fresh: float = HEARTBEAT_FRESH
                 ) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Live workers (heartbeat younger than ``fresh`` seconds), and the names of
    workers silent for over 60 times that (killed without saying goodbye)."""
    now = time.time()
    live, dead = [], []
    for name, raw in client.hgetall(keys.workers).items():
        info = json.loads(raw)
        age = now - info.get("time", 0)
        if age < fresh:
            live.append({"name": name.decode(), **info})
        elif age > 60 * fresh:
            dead.append(name)
    return live, dead


def ensure_group(client: Any, keys: Keys) -> None:
    """Create the task stream and its consumer group if they do not exist."""
    import redis
    try:
        client.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
