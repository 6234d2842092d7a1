"""Executors of one process publishing their runs to a `fastdag dashboard` server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings

import pytest

import fastdag as fd
from fastdag.dashboard import RunStore
from fastdag.dashboard.publish import Publisher
from fastdag.metrics.runs import HOST
from test_dashboard import browser, page, state  # noqa: F401 - the Chromium fixtures

pytest.importorskip("aiohttp")


@fd.task
def gated(i, gate):
    """Waits until the file ``gate`` exists: the run stays live until the test says."""
    while not os.path.exists(gate):
        time.sleep(0.01)
    return i


@fd.task
def plus(xs):
    return sum(xs)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def wait_for_run(url: str, run_id: str, **wanted) -> dict:
    """The run record once it has the ``wanted`` fields (generous deadline: a loaded host)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = {r["id"]: r for r in get(url + "api/runs")["runs"]}
        run = runs.get(run_id)
        if run is not None and all(run[k] == v for k, v in wanted.items()):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never had {wanted}: {runs.get(run_id)}")


@pytest.fixture(scope="module")
def cli_dashboard():
    """`fastdag dashboard --port 0` in its own process; its URL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "fastdag.cli", "dashboard", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert "fastdag dashboard: http://127.0.0.1:" in line, line
        assert "publish:" in proc.stderr.readline()
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_run_published_to_the_cli_server_is_seen_live_then_done(cli_dashboard, tmp_path):
    gate = str(tmp_path / "open")
    node = plus([gated(i, gate) for i in range(8)])
    with fd.LocalExecutor(2, dashboard="publish:" + cli_dashboard) as ex:
        assert ex.dashboard_url == cli_dashboard
        future = ex.submit(node, name="published")
        live = wait_for_run(cli_dashboard, future.run_id, state="running")
        assert live["name"] == "published" and live["tasks"] == 9 and live["done"] < 9
        open(gate, "w").close()
        assert future.result(timeout=120) == 28
        done = wait_for_run(cli_dashboard, future.run_id, state="done", done=9)
        workers = sorted(f"{HOST}:{pid}" for pid in ex.worker_pids())
    assert done["executor"] == "local" and done["makespan"] > 0
    detail = get(cli_dashboard + f"api/runs/{future.run_id}")
    assert sorted(detail["tasks"]["task"]) == list(range(9))
    assert sum(len(d) for d in detail["graph"]["deps"]) == 8
    assert detail["graph"]["names"][0].startswith("gated-")
    kinds = [e["type"] for e in detail["events"]["items"]]
    assert kinds[0] == "RunSubmitted" and kinds[-1] == "RunFinished"
    assert {w for _, w, _ in detail["memory"]} <= set(workers) and detail["memory"]


def test_the_page_of_the_cli_server_follows_a_published_run(cli_dashboard, tmp_path, page):
    page.goto(cli_dashboard)
    page.wait_for_selector("#legend li")
    gate = str(tmp_path / "open")
    with fd.LocalExecutor(2, dashboard="publish:" + cli_dashboard) as ex:
        future = ex.submit(plus([gated(i, gate) for i in range(8)]), name="published-page")
        page.wait_for_function(f"window.fastdagDashboard.state()?.run === '{future.run_id}'",
                               timeout=60_000)
        assert state(page)["counts"]["done"] < 9
        open(gate, "w").close()
        future.result(timeout=120)
        page.wait_for_function("document.getElementById('status').dataset.state === 'done'",
                               timeout=60_000)
    assert page.text_content("#status").startswith("done: 9/9 done")


def test_aiohttp_is_imported_only_when_a_page_connects():
    """An executor's dashboard nobody opened costs no aiohttp objects in the client."""
    code = (
        "import sys, urllib.request, fastdag as fd\n"
        "with fd.LocalExecutor(2, dashboard=True) as ex:\n"
        "    fd.task(sum)([1, 2]).compute(executor=ex)\n"
        "    print('before', 'aiohttp' in sys.modules)\n"
        "    urllib.request.urlopen(ex.dashboard_url + 'api/runs', timeout=60).read()\n"
        "    print('after', 'aiohttp' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.stdout.split() == ["before", "False", "after", "True"], done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_vanished_server_costs_one_warning_and_no_run(tmp_path):
    gate = tmp_path / "open"
    gate.touch()
    url = f"http://127.0.0.1:{free_port()}/"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fd.LocalExecutor(2, dashboard="publish:" + url) as ex:
            for _ in range(3):
                assert plus([gated(i, str(gate)) for i in range(4)]).compute(executor=ex) == 6
                time.sleep(0.6)  # two publishing ticks, each failing
    dropped = [w for w in caught if "did not take" in str(w.message)]
    assert len(dropped) == 1, [str(w.message) for w in caught]
    assert url in str(dropped[0].message)


def test_a_token_server_takes_events_only_with_its_token():
    from fastdag.dashboard.server import DashboardServer
    server = DashboardServer(RunStore(), "127.0.0.1", 0, token="s3cret")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for url in (server.url.replace("s3cret", "wrong"), server.url):
                ex = fd.SyncExecutor()
                publisher = Publisher(ex, url)
                plus([1, 2]).compute(executor=ex, name=url[-6:])
                publisher.stop()
        assert [r["name"] for r in server.store.list()] == ["s3cret"]
        assert len([w for w in caught if "403" in str(w.message)]) == 1
    finally:
        server.stop()


@pytest.mark.parametrize("body, content_type, code", [
    (b'{"events": [["RunFinished", "r", 1.0]]}', "application/json", 400),  # fields missing
    (b'{"events": [["os.system", "r"]]}', "application/json", 400),
    (b'not json', "application/json", 400),
    (b'{"events": []}', "text/plain", 415),  # what a cross-site form could send
])
def test_publish_takes_only_fastdag_events_as_json(body, content_type, code):
    from fastdag.dashboard.server import DashboardServer
    server = DashboardServer(RunStore())
    try:
        request = urllib.request.Request(server.url + "api/publish", data=body, method="POST",
                                         headers={"Content-Type": content_type})
        with pytest.raises(urllib.error.HTTPError, match=str(code)):
            urllib.request.urlopen(request, timeout=30)
        assert server.store.list() == []
    finally:
        server.stop()


def test_publish_url_must_be_http():
    with pytest.raises(ValueError, match="publish:URL"):
        fd.LocalExecutor(2, dashboard="publish:127.0.0.1:8787")
