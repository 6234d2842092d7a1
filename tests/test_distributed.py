"""Distributed mode against real redis-server and real ``fastdag worker`` processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

import fastdag as fd
from fastdag.distributed import PayloadRejected, RedisUnavailable
from fastdag.distributed import requirements
from fastdag.core.signing import MissingSecret, Signer
from fastdag.store.redis import RedisStore
from conftest import fastdag_segments

pytestmark = pytest.mark.redis

SECRET = "test-secret-0123456789"
TESTS = str(Path(__file__).parent)


# -- helpers -------------------------------------------------------------------
class Workers:
    """``fastdag worker`` processes for one test; all killed at teardown."""

    def __init__(self, url: str):
        self.url = url
        self.procs: list[subprocess.Popen] = []

    def start(self, n: int = 1, concurrency: int = 1, secret: str | None = SECRET,
              idle_timeout: float = 1.0, extra: tuple[str, ...] = (),
              env_extra: dict[str, str] | None = None) -> list[subprocess.Popen]:
        env = {k: v for k, v in os.environ.items() if k != "FASTDAG_SECRET"}
        env.update(env_extra or {})
        env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")])
        if secret is not None:
            env["FASTDAG_SECRET"] = secret
        cmd = [sys.executable, "-m", "fastdag.cli", "worker", "--redis", self.url,
               "--concurrency", str(concurrency), "--idle-timeout", str(idle_timeout), *extra]
        started = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
                   for _ in range(n)]
        self.procs += started
        return started

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def workers(redis_server):
    w = Workers(redis_server.url)
    yield w
    w.stop()


@pytest.fixture
def executor(redis_server):
    ex = fd.RedisExecutor(redis_server.url, secret=SECRET, poll=0.5)
    yield ex
    ex.shutdown(wait=False)
    from fastdag.metrics import sinkwriter
    sinkwriter.flush(timeout=10)     # reports reach the Redis sink before the server stops


def wait_for_workers(ex: fd.RedisExecutor, n: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(ex.workers()) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{n} workers did not register in {timeout} s")


@contextlib.contextmanager
def executor_with_one_worker(url: str, poll: float) -> Iterator[fd.RedisExecutor]:
    """A RedisExecutor with one ``fastdag worker`` up; the worker and the executor
    stopped after, the metrics writes waited for."""
    from fastdag.metrics import sinkwriter
    workers = Workers(url)
    ex = fd.RedisExecutor(url, secret=SECRET, poll=poll)
    try:
        workers.start(1)
        wait_for_workers(ex, 1)
        yield ex
    finally:
        ex.shutdown(wait=False)
        sinkwriter.flush(timeout=10)
        workers.stop()


def run_keys(ex: fd.RedisExecutor) -> list[bytes]:
    return list(ex.client.scan_iter(match=f"{ex.keys.prefix}:run:*"))


# -- tasks (importable by the workers through PYTHONPATH) ------------------------
@fd.task
def leaf(i):
    return i


@fd.task
def add(a, b):
    return a + b


@fd.task
def scale(x, k):
    return x * k


@fd.task(nout=2)
def split(x):
    return x, -x


@fd.task
def total(parts):
    return sum(parts)


@fd.task
def pick(d):
    return d["a"][0] + d["b"]


@fd.task
def array(n, seed):
    return np.random.default_rng(seed).standard_normal(n)


@fd.task
def dot(a, b):
    return float(a @ b)


@fd.task
def append_one(xs):
    xs.append(1)
    return list(xs)


@fd.task
def make_list(n):
    return list(range(n))


@fd.task
def blas_threads(i):
    from threadpoolctl import threadpool_info
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@fd.task
def fails(x):
    raise ValueError(f"bad input {x}")


@fd.task
def slow(i, marker_dir, seconds):
    Path(marker_dir, f"{i}-{os.getpid()}").touch()
    time.sleep(seconds)
    return i * i


def tree(n: int):
    xs = [leaf(i) for i in range(n)]
    while len(xs) > 1:
        xs = [add(xs[k], xs[k + 1]) if k + 1 < len(xs) else xs[k] for k in range(0, len(xs), 2)]
    return xs[0]


def mixed_graph():
    """Chains, fan-out, fan-in, nested arguments, nout, item access, numpy data."""
    t = tree(100)
    a, b = split(t)
    fan = [scale(a, k) for k in range(10)]
    nested = pick({"a": [t], "b": b})
    big = array(200_000, 1)            # 1.6 MB: travels through Redis if consumed elsewhere
    arrays = [array(1000, s) for s in range(8)]
    dots = [dot(x, y) for x in arrays[:4] for y in arrays[4:]]
    return [total(fan), nested, dot(big, big), total(dots), t]


def _same(a, b) -> bool:
    """Equal values, arrays within float rounding (BLAS may split sums differently)."""
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-9, atol=1e-12)
    if isinstance(a, float):
        return a == pytest.approx(b)
    if hasattr(a, "size") and hasattr(a, "tobytes"):      # Pillow images
        return a.size == b.size and a.tobytes() == b.tobytes()
    return a == b


# -- end to end ------------------------------------------------------------------
@pytest.mark.parametrize("nworkers", [2, 4])
def test_results_match_local_executor(executor, workers, local_executor, nworkers):
    workers.start(nworkers)
    wait_for_workers(executor, nworkers)
    nodes = mixed_graph()
    got = executor.compute(*nodes)
    want = local_executor.compute(*nodes)
    assert got[:2] == want[:2] and got[4] == want[4] == 4950
    assert got[2] == pytest.approx(want[2]) and got[3] == pytest.approx(want[3])
    assert executor.compute(tree(4096)) == 4096 * 4095 // 2
    report = fd.last_run()
    assert report.run.executor == "redis" and len(report.tasks) == 8191
    assert len({t.worker for t in report.tasks}) >= 2, "the work was not shared"
    assert run_keys(executor) == [], "a finished run left keys behind"
    from fastdag.metrics import sinkwriter
    from fastdag.metrics.sinks import RedisSink
    assert sinkwriter.flush(timeout=30)
    stored = RedisSink(executor.url).read([report.run.run_id])
    assert len(stored) == 1 and len(stored[0].tasks) == 8191     # the Redis metrics sink


def test_registered_workloads_match_local(executor, workers, local_executor):
    from fastdag import workloads
    sizes = {"tree_reduction": "leaves=256", "gemm": "n=256,block=64",
             "wordcount": "size=256KB,chunk=64KB", "image_transform": "width=256,height=256,tile=64",
             "svd1": "rows=4000,cols=20,block=1000", "svd2": "n=200,block=50,k=5"}
    workers.start(2)
    wait_for_workers(executor, 2)
    for name, wl in workloads.WORKLOADS.items():
        params = wl.params(sizes.get(name))
        built = wl.build(params)
        nodes = built if isinstance(built, (tuple, list)) else (built,)
        got = executor.compute(*nodes)
        want = local_executor.compute(*nodes)
        expected = wl.reference(params)
        verdict = wl.check(got, expected)
        assert verdict.ok, f"{name} on Redis: {verdict}"
        assert wl.check(want, expected).ok
        assert _same(got, want), f"{name}: Redis and LocalExecutor results differ"


def test_array_results_are_writeable_and_async_runs_share_workers(executor, workers):
    workers.start(2)
    futures = [executor.submit(array(10_000, s)) for s in range(3)]
    futures.append(tree(64).compute_async(executor=executor))
    pair = fd.compute_async(tree(8), tree(16), executor=executor)
    arrays = [f.result(timeout=60) for f in futures[:3]]
    for s, arr in enumerate(arrays):
        np.testing.assert_array_equal(arr, np.random.default_rng(s).standard_normal(10_000))
        arr[0] = 1.0   # results handed to the caller are writeable
    assert futures[3].result(timeout=60) == 64 * 63 // 2
    assert pair.result(timeout=60) == (28, 120)


def _default_executor_kind(_: int) -> tuple[str, int]:
    inner = fd.task(lambda x: x + 1)(1).compute()
    return type(fd.get_default_executor()).__name__, inner


def test_nested_compute_on_a_worker_runs_inline(executor, workers):
    """A task's own compute() runs in its worker's thread: `fastdag worker` sets that up."""
    workers.start(1)
    wait_for_workers(executor, 1)
    assert executor.compute(fd.task(_default_executor_kind)(0)) == ("SyncExecutor", 2)


def test_each_task_sees_its_inputs_unchanged(executor, workers):
    # one worker runs every task: they must not see each other's writes into a
    # captured list, a shared result or one the caller asked for
    workers.start(1)
    wait_for_workers(executor, 1)
    original, length = [1, 2], fd.task(len)
    got = executor.compute(*[append_one(original) for _ in range(3)], length(original))
    assert got == ([1, 2, 1],) * 3 + (2,) and original == [1, 2]
    shared = make_list(2)
    got = executor.compute(*[append_one(shared) for _ in range(3)], length(shared), shared)
    assert got == ([0, 1, 1],) * 3 + (2, [0, 1])


def test_task_error_carries_worker_traceback(executor, workers):
    workers.start(1)
    with pytest.raises(fd.TaskError) as info:
        executor.compute(fails(add(leaf(1), leaf(2))))
    err = info.value
    assert err.task.startswith("fails-")
    assert isinstance(err.__cause__, ValueError) and "bad input 3" in str(err.__cause__)
    assert "on worker" in err.remote_traceback and "in fails" in err.remote_traceback
    assert "raise ValueError" in str(err)
    assert run_keys(executor) == []
    report = fd.last_run()  # the failed run is reported, with the tasks that did run
    assert report.run.state == "failed" and "bad input 3" in report.run.error
    assert sorted(t.function for t in report.tasks) == ["add", "leaf", "leaf"]
    # the workers survive a task error and keep serving
    assert executor.compute(tree(16)) == 120


def test_unmet_requirement_is_refused(executor, workers):
    workers.start(1)

    @fd.task(requires=["numpy>=1.0"])
    def ok(x):
        return x + 1

    @fd.task(requires=["numpy>=999"])
    def too_new(x):
        return x

    @fd.task(requires=["fastdag-no-such-package"])
    def missing(x):
        return x

    assert executor.compute(ok(leaf(1))) == 2
    with pytest.raises(fd.TaskError, match=r"requirement not satisfied.*numpy .* is installed"):
        executor.compute(too_new(leaf(1)))
    with pytest.raises(fd.TaskError, match="fastdag-no-such-package is not installed"):
        executor.compute(missing(leaf(1)))


def test_killed_worker_tasks_are_reclaimed(executor, workers, tmp_path):
    procs = workers.start(2, idle_timeout=1.0)
    wait_for_workers(executor, 2)
    pids = {p.pid for p in procs}
    nodes = [slow(i, str(tmp_path), 1.0) for i in range(6)]
    future = executor.submit(total(nodes))
    deadline = time.time() + 20
    victim = None
    while victim is None and time.time() < deadline:
        for marker in tmp_path.iterdir():
            pid = int(marker.name.split("-")[1])
            if pid in pids:
                victim = pid
                break
        time.sleep(0.02)
    assert victim is not None, "no task started"
    os.kill(victim, signal.SIGKILL)
    assert future.result(timeout=60) == sum(i * i for i in range(6))
    ran_by = {int(m.name.split("-")[1]) for m in tmp_path.iterdir()}
    survivor = (pids - {victim}).pop()
    assert survivor in ran_by
    assert len(list(tmp_path.iterdir())) > 6, "the killed worker's task was not run again"
    assert run_keys(executor) == []


@pytest.mark.parametrize("restart, message", [(False, "Redis"), (True, "restarted|connection")],
                         ids=["killed", "restarted"])
def test_redis_lost_mid_run_raises(executor, workers, redis_server, tmp_path, restart, message):
    executor.metrics = None          # no report to write to a server that is gone
    workers.start(1)
    future = executor.submit(total([slow(i, str(tmp_path), 0.5) for i in range(20)]))
    wait_for_marker(tmp_path)
    redis_server.stop()
    if restart:
        redis_server.start()
    start = time.time()
    with pytest.raises(RedisUnavailable, match=message):
        future.result(timeout=60)
    assert time.time() - start < 30


def test_tampered_plan_is_rejected(executor, workers, redis_server):
    future = executor.submit(tree(8))     # no worker yet: the plan waits in Redis
    run = future.run_id
    key = executor.keys.run(run, "plan")
    blob = bytearray(executor.client.get(key))
    blob[-1] ^= 0xFF
    executor.client.set(key, bytes(blob))
    workers.start(1)
    with pytest.raises(PayloadRejected, match="wrongly signed"):
        future.result(timeout=60)
    rejections = [json.loads(r) for r in executor.client.lrange(executor.keys.rejections, 0, -1)]
    assert rejections and rejections[0]["run"] == run


def test_wrong_secret_is_rejected(redis_server, workers):
    workers.start(1, secret="another-secret-0123456789")
    ex = fd.RedisExecutor(redis_server.url, secret=SECRET, poll=0.5)
    try:
        with pytest.raises(PayloadRejected):
            ex.compute(tree(4))
    finally:
        ex.shutdown(wait=False)


def test_worker_refuses_to_start_without_secret(redis_server, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "FASTDAG_SECRET"}
    proc = subprocess.run([sys.executable, "-m", "fastdag.cli", "worker", "--redis",
                           redis_server.url, "--concurrency", "1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "FASTDAG_SECRET" in proc.stderr
    monkeypatch.delenv("FASTDAG_SECRET", raising=False)
    with pytest.raises(MissingSecret):
        fd.RedisExecutor(redis_server.url)
    assert Signer(insecure=True).insecure


def test_concurrency_starts_that_many_processes(executor, workers):
    (sup,) = workers.start(1, concurrency=2)
    wait_for_workers(executor, 2)
    names = {w["pid"] for w in executor.workers()}
    assert sup.pid not in names and len(names) == 2
    assert executor.compute(tree(256)) == 256 * 255 // 2
    # 2 processes never run more BLAS threads than there are cores (idle ones spin)
    share = max(1, (os.cpu_count() or 1) // 2)
    for threads in executor.compute(*[blas_threads(i) for i in range(4)]):
        assert threads and all(n == share for n in threads), threads
    sup.terminate()
    sup.wait(timeout=15)
    for pid in names:
        with pytest.raises(ProcessLookupError):
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)


def wait_for_marker(directory: Path, timeout: float = 30.0) -> None:
    """Wait until a ``slow`` task has left its marker file in ``directory``."""
    deadline = time.time() + timeout
    while not any(directory.iterdir()):
        if time.time() > deadline:
            raise AssertionError(f"no task started within {timeout} s")
        time.sleep(0.02)


def test_cancel_stops_the_run(executor, workers, tmp_path):
    workers.start(1)
    future = executor.submit(total([slow(i, str(tmp_path), 0.3) for i in range(30)]))
    wait_for_marker(tmp_path)
    assert future.cancel()
    # The worker finishes the task in hand and learns of the cancel within
    # RECHECK (0.5 s); after that no task of the run may start. Without the
    # cancel, the 30 tasks of 0.3 s would go on starting for about 9 s.
    time.sleep(2.0)
    ran = len(list(tmp_path.iterdir()))
    time.sleep(2.0)
    assert len(list(tmp_path.iterdir())) == ran, "tasks kept starting after the cancel"
    assert ran < 15
    assert executor.compute(tree(8)) == 28    # the worker moved on


# -- the store and the helpers ----------------------------------------------------
def test_redis_store_chunks_signs_and_deletes(redis_server):
    from fastdag.distributed.protocol import connect
    client = connect(redis_server.url)
    store = RedisStore(client, Signer("k" * 16), ttl=60, chunk_size=1 << 20)
    value = {"a": np.arange(400_000, dtype=np.float64), "b": "text"}   # 3.2 MB
    ref = store.put("t:x", value)
    assert sorted(client.keys("t:x*")) == [b"t:x", b"t:x:1", b"t:x:2", b"t:x:3"]
    assert 0 < client.ttl("t:x:3") <= 60
    got = store.get(ref)
    np.testing.assert_array_equal(got["a"], value["a"])
    got["a"][0] = -1.0                                                 # writeable
    assert store.contains(ref) and store.nbytes(ref) > 3_200_000
    piece = bytearray(client.get("t:x:2"))
    piece[100] ^= 1
    client.set("t:x:2", bytes(piece))
    with pytest.raises(PayloadRejected):
        store.get(ref)
    with pytest.raises(PayloadRejected):
        RedisStore(client, Signer("other-key-0123456789")).get(store.put("t:y", 1))
    store.delete(ref)
    assert client.keys("t:x*") == [] and not store.contains(ref)
    client.set("t:raw", b"abc")
    got = store.fetch(["t:raw", "t:none", "t:raw"])
    assert bytes(got[0]) == b"abc" and got[1] is None and bytes(got[2]) == b"abc"
    assert client.ping() and client.get("t:raw") == b"abc"     # the connection is still in sync
    client.close()


# How each kind of server is secured, the secret in its URL, and a URL that must be refused.
_SECURED = {
    "password": dict(password="pa55word"),
    "acl-user": dict(user=("fastdag-app", "s3cret-pw")),
    "tls": dict(tls=True),
}


@pytest.mark.parametrize("kind", list(_SECURED))
def test_password_acl_user_and_tls_through_the_url(tmp_path, kind):
    from conftest import RedisServer
    server = RedisServer(tmp_path, **_SECURED[kind])
    server.start()
    workers = Workers(server.url)
    try:
        workers.start(1)
        ex = fd.RedisExecutor(server.url, secret=SECRET, poll=0.5)
        try:
            assert ex.compute(tree(32)) == 32 * 31 // 2
        finally:
            ex.shutdown(wait=False)
        if kind == "tls":  # the same server over plain TCP: refused, not a hang
            wrong, error = f"redis://127.0.0.1:{server.port}/0", redis.exceptions.ConnectionError
        else:
            secret = "pa55word" if kind == "password" else "s3cret-pw"
            wrong, error = server.url.replace(secret, "guess"), redis.exceptions.AuthenticationError
        with pytest.raises(redis.exceptions.RedisError) as info:
            fd.RedisExecutor(wrong, secret=SECRET, poll=0.5).compute(tree(4))
        assert type(info.value) is error, repr(info.value)
    finally:
        workers.stop()
        server.stop()


def test_cluster_keeps_subtrees_and_one_fanout_branch():
    from fastdag.distributed.cluster import Cluster
    from fastdag.core.plan import build_plan
    t = tree(8)
    plan = build_plan(t.dag)
    roots = [i for i, d in enumerate(plan.deps) if not d]
    whole = Cluster(plan)
    whole.admit(roots)
    assert whole.members == set(range(len(plan)))      # all leaves: the whole tree is local
    half = Cluster(plan)
    half.admit(roots[:4])
    assert len(half.members) == 4 + 3                   # a 4-leaf subtree, not the root
    root = plan.outputs[0]
    assert root not in half.members
    for i in sorted(half.members, key=lambda i: len(plan.deps[i])):
        done = half.completed(i)
    assert done.external == [(root, 2)]                 # its last task feeds the root's counter
    src = leaf(1)
    branches = [scale(src, k) for k in range(5)]
    plan = build_plan(fd.DAG(branches))
    c = Cluster(plan)
    c.admit([i for i, d in enumerate(plan.deps) if not d])
    assert len(c.members) == 2                          # the source and one branch
    done = c.completed(next(i for i, d in enumerate(plan.deps) if not d))
    assert len(done.local_ready) == 1 and len(done.queued) == 4


def test_requirement_parsing_without_packaging(monkeypatch):
    assert requirements._satisfies_simple("1.26.4", ">=1.20,<2") is True
    assert requirements._satisfies_simple("2.0.1", ">=1.20,<2") is False
    assert requirements._satisfies_simple("10.2.0", "~=10.1") is True
    assert requirements._satisfies_simple("11.0", "~=10.1") is False
    assert requirements._satisfies_simple("3.0", "==3") is True
    assert requirements.check(("numpy", "cloudpickle>=1")) == []
    assert "not installed" in requirements.check(("fastdag-nope>=1",))[0]


@pytest.mark.slow
def test_repeated_kills_during_fan_in_and_fan_out(redis_server, workers, executor):
    """Kill a worker at random moments of a tree + fan-out graph; every run completes."""
    import random

    @fd.task
    def sleepy_add(a, b):
        time.sleep(0.01)
        return a + b

    @fd.task
    def sleepy_scale(x, k):
        time.sleep(0.01)
        return x * k

    def graph(n):
        xs = list(range(n))
        while len(xs) > 1:
            xs = [sleepy_add(xs[k], xs[k + 1]) for k in range(0, len(xs), 2)]
        return total([sleepy_scale(xs[0], k) for k in range(40)])

    procs = workers.start(3)
    rng = random.Random(7)
    want = sum(range(512)) * sum(range(40))
    for _ in range(4):
        wait_for_workers(executor, 3)
        future = executor.submit(graph(512))
        time.sleep(rng.uniform(0.1, 1.5))
        victim = rng.choice([p for p in procs if p.poll() is None])
        victim.kill()
        victim.wait()
        procs.remove(victim)
        assert future.result(timeout=120) == want
        procs += workers.start(1)
    assert run_keys(executor) == []


def test_task_that_kills_every_worker_fails_the_run(executor, workers):
    @fd.task
    def fatal(x):
        os._exit(3)

    workers.start(1, concurrency=2, extra=("--max-deliveries", "2"))
    wait_for_workers(executor, 2)
    start = time.time()
    with pytest.raises(fd.WorkerCrashedError, match="died 3 times"):
        executor.compute(fatal(leaf(1)))
    assert time.time() - start < 60
    wait_for_workers(executor, 2)          # the supervisor replaced the dead processes
    assert executor.compute(tree(16)) == 120


# -- large results between workers: /dev/shm on one host, bytes across hosts ---------
@fd.task
def big(seed, n=400_000):
    """3.2 MB: over the size from which results go through /dev/shm."""
    return np.random.default_rng(seed).standard_normal(n)


@fd.task
def weigh(x, k):
    return float(x.sum() * k)


@fd.task
def made(x, marker_dir):
    Path(marker_dir, "made").touch()
    return x


@fd.task
def slow_weigh(x, seconds):
    time.sleep(seconds)
    return float(x.sum())


@fd.task
def slow_big(i, marker_dir, seconds):
    Path(marker_dir, f"{i}-{os.getpid()}").touch()
    time.sleep(seconds)
    return np.random.default_rng(i).standard_normal(400_000)


def big_graph(n: int = 6):
    """Large arrays that cross workers (pairs of leaves from both batches), a large output."""
    xs = [big(s) for s in range(n)]
    pairs = [add(xs[i], xs[j]) for i in range(n) for j in range(i + 1, n)]
    return total([dot(p, p) for p in pairs]), add(xs[0], xs[n - 1])


def big_graph_expected(n: int = 6):
    xs = [np.random.default_rng(s).standard_normal(400_000) for s in range(n)]
    pairs = [xs[i] + xs[j] for i in range(n) for j in range(i + 1, n)]
    return sum(float(p @ p) for p in pairs), xs[0] + xs[n - 1]


def our_segments(ex: fd.RedisExecutor) -> set[str]:
    """The /dev/shm segments of this executor's runs (other processes may have their own)."""
    from fastdag.distributed.handoff import segment_prefix
    prefix = segment_prefix(f"{ex.keys.runs}{ex.token}-")
    return {s for s in fastdag_segments() if s.startswith(prefix)}


def redis_input_bytes(ex: fd.RedisExecutor) -> int:
    return int(ex.client.info("stats")["total_net_input_bytes"])


def test_same_host_workers_hand_large_results_over_in_shared_memory(executor, workers):
    from test_shared_memory import mapped
    workers.start(2)
    wait_for_workers(executor, 2)
    before = redis_input_bytes(executor)
    got_total, got_pair = executor.compute(*big_graph())
    moved = redis_input_bytes(executor) - before
    want_total, want_pair = big_graph_expected()
    assert got_total == pytest.approx(want_total)
    np.testing.assert_array_equal(got_pair, want_pair)
    assert mapped(got_pair), "the client copied an output it could map"
    got_pair[0] = 1.0                                            # writeable all the same
    assert len({t.worker for t in fd.last_run().tasks}) == 2
    # 6 leaves, 15 sums and the output, 3.2 MB each, would be over 70 MB through Redis
    assert moved < 1_000_000, f"{moved} bytes went through Redis"
    captured = np.random.default_rng(9).standard_normal(500_000)    # 4 MB in the plan
    before = redis_input_bytes(executor)
    assert executor.compute(weigh(captured, 2)) == pytest.approx(2 * captured.sum())
    assert redis_input_bytes(executor) - before < 1_000_000, "the plan went through Redis"
    assert run_keys(executor) == [] and our_segments(executor) == set()


def test_workers_on_other_hosts_get_bytes(executor, workers):
    workers.start(1, env_extra={"FASTDAG_SHM_DOMAIN": "host-a"})
    workers.start(1, env_extra={"FASTDAG_SHM_DOMAIN": "host-b"})
    wait_for_workers(executor, 2)
    time.sleep(0.5)                  # each has seen the other's heartbeat
    got_total, got_pair = executor.compute(*big_graph())
    want_total, want_pair = big_graph_expected()
    assert got_total == pytest.approx(want_total)
    np.testing.assert_array_equal(got_pair, want_pair)
    assert len({t.worker for t in fd.last_run().tasks}) == 2
    assert run_keys(executor) == [] and our_segments(executor) == set()


def test_worker_joining_from_another_host_asks_for_an_upload(executor, workers, tmp_path):
    """A result stored only in host A's /dev/shm (A knew of no other host) reaches B."""
    workers.start(1, env_extra={"FASTDAG_SHM_DOMAIN": "host-a"})
    wait_for_workers(executor, 1)
    x = made(big(3), str(tmp_path))
    # A keeps the slow branch; the others are queued, and B, started later, takes them
    node = total([slow_weigh(x, 3.0)] + [weigh(x, k) for k in range(1, 5)])
    future = executor.submit(node)
    deadline = time.time() + 30
    while not (tmp_path / "made").exists() and time.time() < deadline:
        time.sleep(0.01)
    workers.start(1, env_extra={"FASTDAG_SHM_DOMAIN": "host-b"})
    want = float(np.random.default_rng(3).standard_normal(400_000).sum()) * (1 + 1 + 2 + 3 + 4)
    assert future.result(timeout=60) == pytest.approx(want)
    assert len({t.worker for t in future.report.tasks}) == 2, "B ran nothing"
    assert run_keys(executor) == [] and our_segments(executor) == set()


def test_no_segments_left_after_failure_or_killed_worker(executor, workers, tmp_path):
    procs = workers.start(2, idle_timeout=1.0)
    wait_for_workers(executor, 2)
    with pytest.raises(fd.TaskError):
        executor.compute(fails(dot(add(big(0), big(1)), add(big(2), big(3)))))
    assert run_keys(executor) == [] and our_segments(executor) == set()
    pids = {p.pid for p in procs}
    xs = [slow_big(i, str(tmp_path), 0.5) for i in range(6)]
    future = executor.submit(total([dot(xs[i], xs[5 - i]) for i in range(3)]))
    victim = None
    deadline = time.time() + 30
    while victim is None:
        assert time.time() < deadline, "no task started on the workers within 30 s"
        victim = next((int(m.name.split("-")[1]) for m in tmp_path.iterdir()
                       if int(m.name.split("-")[1]) in pids), None)
        time.sleep(0.02)
    time.sleep(0.6)                  # it has stored a result in /dev/shm by now
    os.kill(victim, signal.SIGKILL)
    xs_ = [np.random.default_rng(i).standard_normal(400_000) for i in range(6)]
    assert future.result(timeout=60) == pytest.approx(sum(float(xs_[i] @ xs_[5 - i])
                                                            for i in range(3)))
    assert run_keys(executor) == [] and our_segments(executor) == set()


def test_upload_on_request_and_janitor(redis_server):
    """In one process: a reader in another domain gets bytes uploaded on request;
    the janitor sweeps the segments of runs that ended."""
    import threading
    from fastdag.distributed.handoff import HandOff, is_reference
    from fastdag.distributed.janitor import Janitor
    from fastdag.distributed.protocol import Keys, connect
    from fastdag.distributed.uploads import Uploads, UploadServer
    client = connect(redis_server.url)
    keys = Keys(f"t{os.getpid()}")
    store = RedisStore(client, Signer("k" * 16), ttl=60)
    here = HandOff(store)
    there = HandOff(store, ask_upload=Uploads(client, keys, ttl=60, timeout=10).request)
    here.domain, there.domain = "host-a", "host-b"
    forged = RedisStore(client, Signer("not-the-key-0123456789"), ttl=60)
    pipe = client.pipeline(transaction=False)
    HandOff(forged).queue_put(pipe, keys.run("r0", ""), keys.value("r0", 0),
                              np.arange(300_000.0), remote=False)
    pipe.execute()
    with pytest.raises(PayloadRejected, match="wrongly signed"):
        here.get_key(keys.value("r0", 0))                     # a reference signed with another key
    here.delete_keys([keys.value("r0", 0)])                   # never unlinks what a forgery names
    assert here.sweep_run(keys.run("r0", "")) == 1
    scope = keys.run("r1", "")
    key, value = keys.value("r1", 0), np.arange(300_000.0)
    pipe = client.pipeline(transaction=False)
    here.queue_put(pipe, scope, key, value, remote=False)
    pipe.execute()
    first = here.fetch([key])[0]
    assert is_reference(first) and len(first) < 1000           # only a reference in Redis
    np.testing.assert_array_equal(here.get_key(key), value)
    with pytest.raises(KeyError, match="no live worker"):
        there.get_key(key)                                     # host A has no worker up
    stop = threading.Event()
    client.hset(keys.workers, "a:1", json.dumps({"shm": "host-a", "time": time.time()}))
    server = UploadServer(client, keys, here, stop).start()
    try:
        np.testing.assert_array_equal(there.get_key(key), value)
    finally:
        stop.set()
        server.join()
    segments = {s for s in fastdag_segments() if s.startswith(f"fastdag-{scope.encode().hex()}")}
    assert len(segments) == 1
    here.delete_keys([key])
    assert client.keys(f"{key}*") == [] and not any(os.path.exists(f"/dev/shm/{s}")
                                                    for s in segments)
    # the janitor: a failed run is swept at once; a finished one after a grace period
    janitor = Janitor(here, client, period=0.0)
    for run, state in (("r2", "failed"), ("r3", "done")):
        pipe = client.pipeline(transaction=False)
        here.queue_put(pipe, keys.run(run, ""), keys.value(run, 0), value, remote=False)
        pipe.hset(keys.run(run, "meta"), "state", state)
        pipe.execute()
        janitor.track(keys.run(run, ""), keys.run(run, "meta"), client_here=True)
    prefix = {run: f"fastdag-{keys.run(run, '').encode().hex()}" for run in ("r2", "r3")}

    def left(run):
        return [s for s in fastdag_segments() if s.startswith(prefix[run])]

    janitor.check()
    assert left("r2") == [] and len(left("r3")) == 1
    janitor.check()
    assert left("r3") == []
    client.close()


def test_a_run_with_no_worker_serving_says_so_then_runs_when_one_comes(executor, workers,
                                                                      monkeypatch):
    from fastdag.distributed import executor as redis_executor
    monkeypatch.setattr(redis_executor, "NO_WORKERS_WARN_S", 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        future = executor.submit(add(leaf(1), leaf(2)))
        deadline = time.time() + 10
        while time.time() < deadline and not caught:
            time.sleep(0.1)
        time.sleep(1.0)  # more checks: still one warning
    said = [str(w.message) for w in caught if "no worker serves" in str(w.message)]
    assert len(said) == 1 and "fastdag worker --redis" in said[0]
    workers.start(1)
    assert future.result(timeout=30) == 3
