"""Shared fixtures: executors, leak checks, and private redis-server processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

import fastdag as fd


def require_tool(name: str) -> str:
    """The path of the command-line tool ``name``; skip without it, but fail in CI.

    CI (``CI=true``) installs every tool the tests need (``.ci/run``), so a
    missing one there is a broken set-up that a skip would hide.
    """
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed, and CI must run every test (.ci/run)")
        pytest.skip(f"{name} is not installed")
    return path


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
    """A private redis-server on a free loopback port; can be killed and restarted.

    ``password``: the default user's (``requirepass``). ``user``: (name,
    password) of an ACL user, the default user then disabled. ``tls``: serve
    TLS only, with a certificate made for 127.0.0.1 by ``make_tls_files``.
    """

    def __init__(self, tmp_path, password: str | None = None,
                 user: tuple[str, str] | None = None, tls: bool = False):
        self.binary = require_tool("redis-server")
        self.port = free_port()
        self.password = password
        self.user = user
        self.dir = tmp_path
        self.tls = make_tls_files(tmp_path) if tls else None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f"{self.user[0]}:{self.user[1]}@" if self.user else \
            f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls['ca']}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        port = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls["cert"],
                "--tls-key-file", self.tls["key"], "--tls-ca-cert-file", self.tls["ca"],
                "--tls-auth-clients", "no"] if self.tls else ["--port", str(self.port)]
        cmd = [self.binary, "--bind", "127.0.0.1", *port, "--save", "",
               "--appendonly", "no", "--dir", str(self.dir)]
        if self.password:
            cmd += ["--requirepass", self.password]
        if self.user:
            name, password = self.user
            cmd += ["--user", name, "on", f">{password}", "~*", "&*", "+@all",
                    "--user", "default", "off"]
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


def make_tls_files(directory) -> dict[str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = require_tool("openssl")
    files = {name: str(directory / f"{name}.pem") for name in ("ca", "ca-key", "cert", "key")}
    csr, ext = str(directory / "server.csr"), directory / "server.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=fastdag test CA",
         "-keyout", files["ca-key"], "-out", files["ca"]],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", files["key"], "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", files["ca"], "-CAkey", files["ca-key"],
         "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", files["cert"]],
    ):
        subprocess.run([openssl, *args], check=True, capture_output=True)
    return files


@pytest.fixture
def redis_server(tmp_path):
    """A fresh redis-server for one test, killed afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
