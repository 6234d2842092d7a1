"""A client killed mid-run takes its workers with it and leaves nothing past the next start.

A client script (written to tmp_path) runs a LocalExecutor on a long task
whose input is a large stored result; the test kills it with SIGKILL or
SIGTERM once the task has started, and checks that the workers are gone
within seconds and that no /dev/shm file of the dead client survives: at
once after SIGTERM, after the next executor's start after SIGKILL. The same
for the worker processes of a ``fastdag worker --concurrency 2`` supervisor.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fastdag as fd
from conftest import fastdag_segments

DEADLINE = 20.0  # seconds for anything that should take about one

CLIENT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import fastdag as fd

    @fd.task
    def big():
        return np.ones(4_000_000)  # 32 MB: stored in /dev/shm (the caller wants it)

    @fd.task
    def slow(a, marker):
        open(marker, "w").close()
        time.sleep(120)
        return float(a.sum())

    ex = fd.LocalExecutor(workers=2)
    b = big()
    future = ex.submit([b, slow(b, sys.argv[1])])
    print(json.dumps({"prefix": ex.prefix, "workers": ex.worker_pids()}), flush=True)
    future.result()
""")


def running(pid: int) -> bool:
    """Whether ``pid`` still runs code (a zombie waiting for init to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until(condition, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"after {timeout:.0f} s: {what}")
        time.sleep(0.05)


def read_line(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"the client printed nothing in {timeout:.0f} s"
    line = proc.stdout.readline()
    assert line, f"the client exited ({proc.wait()}) before starting its run"
    return line


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def client(tmp_path):
    """Start the client script; yield (process, its prefix, its worker pids, marker)."""
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    marker = tmp_path / "task-started"
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], stdout=subprocess.PIPE,
                            text=True)
    info = json.loads(read_line(proc))
    try:
        wait_until(marker.exists, "the long task did not start", timeout=60)
        yield proc, info["prefix"], info["workers"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_all(info["workers"])  # in case they outlived it (the bug this file is about)


def segments(prefix: str) -> set[str]:
    return fastdag_segments(prefix + "-")


def test_sigkill_of_the_client_kills_its_workers_and_the_next_start_sweeps(client):
    proc, prefix, workers = client
    assert len(segments(prefix)) >= 2, "expected the status file and the stored 32 MB result"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not any(running(p) for p in workers),
               f"workers {[p for p in workers if running(p)]} outlive their SIGKILLed client")
    with fd.LocalExecutor(workers=1) as ex:
        assert ex.compute(fd.task(abs)(-1)) == 1
        left = segments(prefix)
        assert left == set(), f"a new executor's start left the dead client's files: {left}"


def test_sigterm_of_the_client_cleans_up_like_ctrl_c(client):
    proc, prefix, workers = client
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the client did not exit {DEADLINE:.0f} s after SIGTERM") from None
    assert code == -signal.SIGTERM, f"the client should still end as SIGTERM ends it, got {code}"
    wait_until(lambda: not any(running(p) for p in workers),
               f"workers {[p for p in workers if running(p)]} outlive their SIGTERMed client")
    assert segments(prefix) == set(), "SIGTERM left the client's /dev/shm files behind"


def test_the_start_up_sweep_spares_live_clients_and_other_users(tmp_path):
    from fastdag.store import files
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    dead = f"fastdag-{gone}.{'ab' * 8}"       # its pid runs no more, here
    elsewhere = f"fastdag-{gone}.{'cd' * 8}"  # the same, but it holds its lock: it runs in
    alive = f"fastdag-{os.getpid()}.{'ef' * 8}"  # another pid namespace sharing /dev/shm
    names = [f"{dead}-{'0' * 16}-status", f"{dead}-0.0-{'1' * 16}",
             f"{elsewhere}-{'0' * 16}-status", f"{elsewhere}-c-{'2' * 16}",
             f"{alive}-c-{'3' * 16}"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    theirs = tmp_path / f"{dead}-c-{'4' * 16}"
    theirs.write_bytes(b"x")
    if os.geteuid() == 0:
        os.chown(theirs, 65534, 65534)
    lock = os.open(tmp_path / names[2], os.O_RDONLY)
    files.hold(lock)
    try:
        assert files.sweep_orphans([str(tmp_path)]) == 2 + (os.geteuid() != 0)
        left = set(os.listdir(tmp_path))
        assert left == set(names[2:]) | ({theirs.name} if os.geteuid() == 0 else set())
    finally:
        os.close(lock)
    assert files.sweep_orphans([str(tmp_path)]) == 2  # its lock released: the client is gone


@fd.task
def pid_of_worker(_):
    return os.getpid()


def test_workers_started_from_a_thread_that_ends_keep_running():
    """Workers die with their parent *thread* (PR_SET_PDEATHSIG): not the caller's one."""
    with fd.LocalExecutor(workers=1) as ex:
        first: list[int] = []
        caller = threading.Thread(target=lambda: first.append(pid_of_worker(0).compute(executor=ex)))
        caller.start()
        caller.join()
        time.sleep(1.0)  # a worker killed with its starting thread would be gone by now
        assert pid_of_worker(1).compute(executor=ex) == first[0]


LIFELINE_PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", '''
    import os, sys, time
    from fastdag.engine import lifeline
    lifeline._set_pdeathsig = lambda signum: None   # only the watcher thread guards
    lifeline.exit_with_parent(int(sys.argv[1]))
    while True:
        sum(range(10**6))                             # busy in Python, never reading anything
    ''', str(__import__("os").getpid())])
    print(child.pid, flush=True)
    time.sleep(120)
""")


def test_the_watcher_thread_ends_an_orphan_without_the_parent_death_signal(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(LIFELINE_PARENT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(read_line(proc))
    try:
        time.sleep(0.5)
        assert running(child), "the child should run while its parent does"
        proc.kill()
        proc.wait()
        wait_until(lambda: not running(child), "an orphan busy in Python did not notice its "
                   "parent died", timeout=10)
    finally:
        kill_all([child])
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the fastdag worker supervisor ------------------------------------------------------
def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc/*/stat: field 4 is the parent pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != b"Z":
                found.append(int(entry))
    return found


@pytest.mark.redis
def test_sigkill_of_a_worker_supervisor_ends_its_workers(redis_server):
    env = {**os.environ, "FASTDAG_SECRET": "test-secret-123456"}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "fastdag.cli", "worker", "--redis", redis_server.url,
         "--concurrency", "2"], env=env, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        wait_until(lambda: len(children_of(supervisor.pid)) == 2,
                   "the supervisor did not start 2 workers", timeout=60)
        children = children_of(supervisor.pid)
        time.sleep(2.0)  # let them get as far as waiting on Redis
        assert all(running(p) for p in children)
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        wait_until(lambda: not any(running(p) for p in children),
                   f"workers {[p for p in children if running(p)]} outlive their SIGKILLed "
                   "supervisor")
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        kill_all(children)
