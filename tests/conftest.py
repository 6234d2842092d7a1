"""Shared fixtures: executors, leak checks, and private redis-server processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

import fastdag as fd


def fastdag_segments(prefix: str = "fastdag-") -> set[str]:
    """Files in /dev/shm named ``prefix*``: pass an executor's prefix, since
    other processes on the machine (a parallel test run) make fastdag files too."""
    return {name for name in os.listdir("/dev/shm") if name.startswith(prefix)}


@pytest.fixture(scope="session")
def local_executor():
    """One LocalExecutor (2 workers) shared by the tests that only need a pool."""
    ex = fd.LocalExecutor(workers=2)
    yield ex
    ex.shutdown()


def executor_of_kind(kind: str, local: fd.LocalExecutor):
    """Yield a fresh executor of ``kind``, or ``local`` for "local"; clean up after."""
    if kind == "sync":
        yield fd.SyncExecutor()
    elif kind == "threads":
        with fd.ThreadExecutor(workers=4) as ex:
            yield ex
    else:
        yield local


@pytest.fixture(params=["sync", "threads", "local"])
def executor(request, local_executor):
    """Each of the three local executors in turn."""
    yield from executor_of_kind(request.param, local_executor)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on a free loopback port; can be killed and restarted."""

    def __init__(self, tmp_path, password: str | None = None):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.password = password
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
               "--appendonly", "no", "--dir", str(self.dir)]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    """A fresh redis-server for one test, killed afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
