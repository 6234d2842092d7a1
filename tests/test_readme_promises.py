"""One test for each README promise that had none (issue 16, item 10).

No ``__main__`` guard needed; the start-up warning on a small /dev/shm; BLAS
threads per local worker; distributed workers that reconnect after a Redis
restart; ``fastdag worker --insecure``; ``fastdag worker --no-shm``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import fastdag as fd
from fastdag.executors import local
from tasks import inc

SCRIPT = '''
import fastdag as fd

print("script imported", flush=True)     # workers must never import this file


@fd.task
def square(x):
    return x * x


offset = 7
shifted = fd.task(lambda x: x + offset)   # a lambda over a global of __main__

with fd.LocalExecutor(workers=2) as ex:
    print("total", ex.compute(shifted(fd.task(sum)([square(i) for i in range(10)]))))
'''


def test_script_without_main_guard_runs_on_local_workers(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["script imported", f"total {285 + 7}"], proc.stdout


@pytest.mark.parametrize("free_mib, warns", [(100, True), (1024, False)])
def test_start_up_warns_when_dev_shm_is_small(monkeypatch, free_mib, warns):
    monkeypatch.setattr(local, "shm_free_bytes", lambda *a: free_mib * 2**20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fd.LocalExecutor(workers=1) as ex:
            assert inc(1).compute(executor=ex) == 2
    ours = [str(w.message) for w in caught if "--shm-size" in str(w.message)]
    if warns:
        assert len(ours) == 1 and f"only {free_mib} MiB free" in ours[0], ours
    else:
        assert ours == []


@fd.task
def blas_threads(_):
    from threadpoolctl import threadpool_info
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.mark.parametrize("workers", [1, 2])
def test_each_local_worker_gets_cores_over_workers_blas_threads(workers):
    share = max(1, (os.cpu_count() or 1) // workers)
    with fd.LocalExecutor(workers=workers) as ex:
        seen = ex.compute(*[blas_threads(i) for i in range(2 * workers)])
    assert all(threads and set(threads) == {share} for threads in seen), (share, seen)


# -- distributed mode ---------------------------------------------------------------
@pytest.fixture
def dist():
    """test_distributed's helpers (it needs the redis client, an optional extra)."""
    import test_distributed
    return test_distributed


@pytest.fixture
def workers(redis_server, dist):
    w = dist.Workers(redis_server.url)
    yield w
    w.stop()


@pytest.mark.redis
@pytest.mark.parametrize("down_s", [0.0, 2.0], ids=["restart", "down-2s"])
def test_workers_reconnect_after_redis_restarts(redis_server, workers, dist, down_s):
    """A quick restart shows as a lost consumer group; a longer outage as refused connections."""
    (proc,) = workers.start(1)
    with fd.RedisExecutor(redis_server.url, secret=dist.SECRET, poll=0.5, metrics=None) as ex:
        dist.wait_for_workers(ex, 1)
        assert ex.compute(dist.tree(8)) == 28
    redis_server.stop()
    time.sleep(down_s)
    redis_server.start()                       # same port, empty: nothing survives
    with fd.RedisExecutor(redis_server.url, secret=dist.SECRET, poll=0.5, metrics=None) as ex:
        dist.wait_for_workers(ex, 1, timeout=60)
        assert [w["pid"] for w in ex.workers()] == [proc.pid]   # the same process, back
        assert ex.submit(dist.tree(16)).result(timeout=60) == 120
    assert proc.poll() is None


@pytest.mark.redis
def test_insecure_worker_and_executor_run_without_a_secret(redis_server, workers, dist,
                                                           monkeypatch):
    monkeypatch.delenv("FASTDAG_SECRET", raising=False)
    (proc,) = workers.start(1, secret=None, extra=("--insecure",))
    with fd.RedisExecutor(redis_server.url, insecure=True, poll=0.5, metrics=None) as ex:
        dist.wait_for_workers(ex, 1)
        assert ex.compute(dist.tree(8)) == 28
    assert proc.poll() is None


@pytest.mark.redis
def test_no_shm_worker_sends_results_through_redis(redis_server, workers, dist):
    from test_shared_memory import mapped
    workers.start(1, extra=("--no-shm",))
    with fd.RedisExecutor(redis_server.url, secret=dist.SECRET, poll=0.5, metrics=None) as ex:
        dist.wait_for_workers(ex, 1)
        before = dist.redis_input_bytes(ex)
        got = ex.compute(dist.add(dist.big(0), dist.big(1)))        # 3.2 MB
        moved = dist.redis_input_bytes(ex) - before
        want = np.random.default_rng(0).standard_normal(400_000) + \
            np.random.default_rng(1).standard_normal(400_000)
        np.testing.assert_array_equal(got, want)
        assert moved > got.nbytes, f"only {moved} bytes went through Redis"
        assert not mapped(got), "the result came through /dev/shm despite --no-shm"
        assert dist.our_segments(ex) == set()
