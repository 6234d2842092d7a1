"""Distributed mode against someone who can write to Redis: forged and replayed
stream messages, replayed plans, and weak shared secrets (issue 11, items 8 and 9).

Each test runs a task with a side effect (a line appended to a file), plays
the attacker with a plain Redis client, and counts the lines: the task must
have run exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastdag as fd
from fastdag.distributed import PayloadRejected, WeakSecret
from fastdag.distributed.protocol import RunPlan, check_plan
from fastdag.core.plan import build_plan
from test_distributed import SECRET, workers  # noqa: F401 - workers is a fixture
from test_reliability import raise_bad_reduce

pytestmark = pytest.mark.redis


@fd.task
def mark(path):
    """Append one line to ``path``: how many times this ran."""
    with open(path, "a") as f:
        f.write("ran\n")
    return 1


@fd.task
def hold(path, timeout):
    """Keep the run going until ``path`` exists."""
    deadline = time.time() + timeout
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)
    return 2


@fd.task
def pair(a, b):
    return a + b


@pytest.fixture
def executor(redis_server):
    ex = fd.RedisExecutor(redis_server.url, secret=SECRET, poll=0.5, metrics=None)
    yield ex
    ex.shutdown(wait=False)


def runs_of(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def rejections(ex: fd.RedisExecutor) -> list[dict]:
    return [json.loads(r) for r in ex.client.lrange(ex.keys.rejections, 0, -1)]


def test_forged_and_replayed_messages_do_not_run_a_finished_task(executor, workers, tmp_path):
    log, go = tmp_path / "log", tmp_path / "go"
    node = pair(mark(str(log)), hold(str(go), 60))
    marked = next(i for i, t in enumerate(build_plan(node.dag).tasks) if t.name == "mark")
    future = executor.submit(node)                   # no worker yet: its message waits
    (_, captured), = executor.client.xrange(executor.keys.stream)
    workers.start(2)
    assert wait_until(lambda: runs_of(log) == 1)      # done; the run goes on in hold()
    stream, run = executor.keys.stream, future.run_id
    for forged in ({"run": run, "tasks": str(marked)},
                   {"run": run, "tasks": str(marked), "sig": os.urandom(32)},
                   {"run": run, "tasks": f"{marked},{marked}", "sig": captured[b"sig"]}):
        executor.client.xadd(stream, forged)
    for _ in range(3):                                # a signed message, copied back
        executor.client.xadd(stream, captured)
    wait_until(lambda: len(rejections(executor)) >= 6, timeout=30)
    go.touch()
    assert future.result(timeout=60) == 3
    assert runs_of(log) == 1
    reasons = [r["reason"] for r in rejections(executor)]
    assert sum("signed" in r or "malformed" in r for r in reasons) == 3, reasons
    assert sum("replay" in r for r in reasons) == 3, reasons


def test_replayed_plan_and_message_are_refused_after_the_run(executor, workers, tmp_path):
    log = tmp_path / "log"
    future = executor.submit(mark(str(log)))
    run = future.run_id
    captured = {k: executor.client.dump(k)
                for k in executor.client.scan_iter(match=executor.keys.run_pattern(run))}
    (_, message), = executor.client.xrange(executor.keys.stream)
    assert any(k.endswith(b":plan") for k in captured)
    workers.start(1)
    assert future.result(timeout=60) == 1

    def replay() -> None:                            # the attacker puts it all back
        for key, blob in captured.items():
            executor.client.restore(key, 0, blob, replace=True)
        executor.client.xadd(executor.keys.stream, message)

    replay()                                         # to the worker that saw the run end
    assert wait_until(lambda: executor.client.xlen(executor.keys.stream) == 0)
    time.sleep(0.5)
    assert runs_of(log) == 1
    workers.stop()
    workers.start(1)                                 # a worker that knows nothing of it
    before = len(rejections(executor))
    replay()
    wait_until(lambda: len(rejections(executor)) > before, timeout=30)
    time.sleep(0.5)
    assert runs_of(log) == 1
    assert len(rejections(executor)) > before and "replay" in rejections(executor)[0]["reason"]


def test_expired_plan_is_refused(executor, workers, tmp_path, monkeypatch):
    from fastdag.distributed import executor as client_module
    monkeypatch.setattr(client_module, "bind_plan",
                        lambda run, plan, lifetime: RunPlan(run, time.time() - 1, plan))
    log = tmp_path / "log"
    future = executor.submit(mark(str(log)))
    workers.start(1)
    with pytest.raises(PayloadRejected, match="expired"):
        future.result(timeout=60)
    assert runs_of(log) == 0


def test_plan_is_bound_to_its_run():
    plan = build_plan(mark("x").dag)
    assert check_plan(RunPlan("r-1", time.time() + 60, plan), "r-1") is plan
    with pytest.raises(PayloadRejected, match="not made for that run"):
        check_plan(RunPlan("r-1", time.time() + 60, plan), "r-2")
    with pytest.raises(PayloadRejected, match="not made for that run"):
        check_plan(plan, "r-1")                      # a bare Plan, as before binding


def test_listener_survives_garbage_events_and_unrebuildable_errors(executor, workers):
    """The client's listener thread: one bad event or error fails one run at most."""
    executor.client.rpush(executor.events, b"not json", b"[1, 2]", json.dumps({"run": 5}))
    workers.start(1)
    # its own reduce would not load here: it arrives rebuilt from its fields (core/portable.py)
    with pytest.raises(fd.TaskError, match="raised BadReduce") as info:
        executor.submit(raise_bad_reduce()).result(timeout=60)
    assert "lost in transit" in info.value.remote_traceback
    assert type(info.value.__cause__).__name__ == "BadReduce"
    assert executor.submit(pair(1, 2)).result(timeout=60) == 3


@pytest.mark.parametrize("secret", ["", "x", "fifteen-bytes!!"])
def test_short_secrets_are_refused(secret, monkeypatch):
    monkeypatch.delenv("FASTDAG_SECRET", raising=False)
    with pytest.raises(WeakSecret, match="at least 16"):
        fd.RedisExecutor("redis://127.0.0.1:1/0", secret=secret)
    env = {**os.environ, "FASTDAG_SECRET": secret or "x"}
    proc = subprocess.run([sys.executable, "-m", "fastdag.cli", "worker", "--redis",
                           "redis://127.0.0.1:1/0", "--concurrency", "1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "at least 16" in proc.stderr


def test_sixteen_byte_secret_is_accepted(monkeypatch):
    ex = fd.RedisExecutor("redis://127.0.0.1:1/0", secret="sixteen-bytes-ok", metrics=None)
    ex.client.close()
