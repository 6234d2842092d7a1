"""The web dashboard: its JSON API, the CLI, the trace export, and the page in Chromium.

Browser tests drive Debian's Chromium (/usr/bin/chromium, installed by
.ci/run) through Playwright for Python; they are skipped only outside CI
when either is missing. Set FASTDAG_SCREENSHOTS=DIR to save screenshots of
the main views (README's are made so: plots/dashboard/).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import fastdag as fd
from fastdag.dashboard import RunStore, serve_store
from fastdag.dashboard.server import _is_loopback
from fastdag.dashboard.trace import chrome_trace

CHROMIUM = "/usr/bin/chromium"


@fd.task
def load(i):
    time.sleep(0.001 * (i % 4))
    return list(range(i % 20))


@fd.task
def slow_load(i):
    """A load long enough (100 of them: 0.5 s on 2 workers) for memory samples every 0.25 s."""
    time.sleep(0.01)
    return list(range(i % 20))


@fd.task
def clean(x):
    if len(x) != 1:  # quick_load's lists are 1 long: no sleep in the 10,000-task run
        time.sleep(0.002)
    return [v * 2 for v in x]


@fd.task
def merge(a, b):
    return a + b


@fd.task
def explode(x):
    raise ValueError(f"bad input <img src=x onerror=window.pwned=1> {x}")


@fd.task
def quick_load(i):
    return [i]


def pipeline(n: int, first=load) -> fd.Node:
    """n loads, each cleaned, merged pairwise: 3n - 1 tasks, 3 functions."""
    level = [clean(first(i)) for i in range(n)]
    while len(level) > 1:
        level = [merge(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def dash_workers(ex: fd.LocalExecutor) -> list[str]:
    from fastdag.metrics.runs import HOST
    return [f"{HOST}:{pid}" for pid in ex.worker_pids()]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def dash():
    ex = fd.LocalExecutor(2, dashboard=True)
    yield ex
    ex.shutdown()


# -- the API, without a browser ------------------------------------------------
def test_api_lists_runs_and_gives_tasks_edges_and_events_in_order(dash):
    assert dash.dashboard_url.startswith("http://127.0.0.1:")
    assert pipeline(16).compute(executor=dash, name="api-run") is not None
    runs = get(dash.dashboard_url + "api/runs")["runs"]
    run = [r for r in runs if r["name"] == "api-run"][-1]
    assert run["state"] == "done" and run["tasks"] == run["done"] == 47
    assert run["executor"] == "local" and run["makespan"] > 0
    detail = get(dash.dashboard_url + f"api/runs/{run['id']}")
    assert sorted(detail["tasks"]["task"]) == list(range(47))
    assert len(detail["tasks"]["worker"]) == 47 and detail["workers"]
    assert sum(len(d) for d in detail["graph"]["deps"]) == 46  # edges of the tree
    kinds = [e["type"] for e in detail["events"]["items"]]
    assert kinds[0] == "RunSubmitted" and kinds[-1] == "RunFinished" and "TaskBatch" in kinds
    times = [e["time"] for e in detail["events"]["items"]]
    assert times == sorted(times)
    later = get(dash.dashboard_url + f"api/runs/{run['id']}?rows_from=40&events_from=1")
    assert later["tasks"]["task"] == detail["tasks"]["task"][40:] and "graph" not in later
    with pytest.raises(urllib.error.HTTPError, match="404"):
        get(dash.dashboard_url + "api/runs/no-such-run")


def test_live_channel_says_which_runs_changed(dash):
    with urllib.request.urlopen(dash.dashboard_url + "api/live", timeout=30) as stream:
        first = json.loads(stream.readline().decode().removeprefix("data: "))
        future = dash.submit(pipeline(4), name="sse-run")
        future.result(timeout=60)
        while True:
            line = stream.readline().decode()
            if line.startswith("data: "):
                runs = json.loads(line.removeprefix("data: "))["runs"]
                if future.run_id in runs:
                    break
    assert future.run_id not in first["runs"]


def test_a_token_is_required_off_loopback():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.5")
    from fastdag.dashboard.server import DashboardServer
    server = DashboardServer(RunStore(), "127.0.0.1", 0, token="s3cret")
    try:
        assert server.url.endswith("/?token=s3cret")
        with pytest.raises(urllib.error.HTTPError, match="403"):
            get(server.url.split("?")[0] + "api/runs")
        assert get(server.url.split("?")[0] + "api/runs?token=s3cret") == {"runs": []}
    finally:
        server.stop()


def test_missing_aiohttp_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(ImportError, match=r"pip install 'fastdag\[dashboard\]'"):
        fd.LocalExecutor(1, dashboard=True)


def test_bad_dashboard_argument():
    with pytest.raises(ValueError, match="dashboard= takes"):
        fd.LocalExecutor(1, dashboard=-5)


@pytest.fixture(params=["parquet", pytest.param("redis", marks=pytest.mark.redis)])
def metrics_store(request, tmp_path):
    """Where a run's metrics go: a Parquet file, or a private redis-server."""
    if request.param == "parquet":
        yield str(tmp_path / "m.parquet")
        return
    from conftest import RedisServer
    server = RedisServer(tmp_path)
    server.start()
    yield server.url
    server.stop()


def test_cli_serves_runs_from_a_metrics_store(metrics_store):
    pipeline(8).compute(executor=fd.SyncExecutor(), metrics=metrics_store, name="stored")
    from fastdag.metrics.sinkwriter import flush
    flush()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "fastdag.cli", "dashboard", metrics_store,
                             "--port", "0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert "fastdag dashboard: http://127.0.0.1:" in line, line
        url = line.split()[2]
        runs = get(url + "api/runs")["runs"]
        assert [(r["name"], r["tasks"], r["state"]) for r in runs] == [("stored", 23, "done")]
        detail = get(url + f"api/runs/{runs[0]['id']}")
        assert sorted(detail["tasks"]["task"]) == list(range(23))
        assert detail["graph"]["functions"].count("clean") == 8
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_dashboard_rejects_a_missing_store(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastdag.cli", "dashboard",
                           str(tmp_path / "none.parquet")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_chrome_trace_has_a_track_per_worker_and_flows(tmp_path):
    with fd.LocalExecutor(2) as ex:
        pipeline(32).compute(executor=ex)
    report = fd.last_run()
    trace = chrome_trace(report)
    events = trace["traceEvents"]
    tracks = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert tracks == {t.worker for t in report.tasks}
    spans = [e for e in events if e["ph"] == "X"]
    assert sorted(e["name"] for e in spans) == sorted(t.task_key for t in report.tasks)
    assert all(e["ts"] >= 0 and e["dur"] >= 0 for e in spans)
    starts = [e for e in events if e["ph"] == "s"]
    assert len(starts) == len([e for e in events if e["ph"] == "f"])
    moved = sum(1 for t in report.tasks for d in t.deps
                if report.tasks[[u.index for u in report.tasks].index(d)].worker != t.worker)
    assert len(starts) == moved
    path = tmp_path / "m.parquet"
    report_path = tmp_path / "run.json"
    pipeline(4).compute(executor=fd.SyncExecutor(), metrics=str(path))
    from fastdag.metrics.sinkwriter import flush
    flush()
    from fastdag.cli import main
    assert main(["trace", str(path), "-o", str(report_path)]) == 0
    assert len([e for e in json.loads(report_path.read_text())["traceEvents"]
                if e["ph"] == "X"]) == 11


def test_store_folds_events_of_a_stored_run_like_live_ones():
    store = RunStore()
    ex = fd.SyncExecutor()
    with ex.subscribe(store.receive, batched=True):
        pipeline(8).compute(executor=ex, name="live")
    live = store.detail(store.list()[0]["id"])
    other = RunStore()
    other.add_report(fd.last_run())
    stored = other.detail(other.list()[0]["id"])
    assert sorted(live["tasks"]["task"]) == sorted(stored["tasks"]["task"]) == list(range(23))
    assert live["graph"]["deps"] == stored["graph"]["deps"]
    assert stored["run"]["state"] == live["run"]["state"] == "done"


# -- the page, in Chromium -----------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM) or not _has_playwright():
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {CHROMIUM} and playwright (.ci/run installs them)")
        pytest.skip(f"needs {CHROMIUM} and playwright")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    folder = os.environ.get("FASTDAG_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def state(page) -> dict:
    return page.evaluate("window.fastdagDashboard.state()")


def show_run(page, dash, node: fd.Node, name: str, fails: bool = False) -> str:
    """Run ``node`` on ``dash``, open the page on that run; the run id."""
    future = dash.submit(node, name=name)
    if fails:
        with pytest.raises(fd.TaskError):
            future.result(timeout=120)
    else:
        future.result(timeout=120)
    page.goto(dash.dashboard_url)
    page.click(f'#runs button[data-run="{future.run_id}"]')
    page.wait_for_function(f"window.fastdagDashboard.state()?.run === "
                           f"{json.dumps(future.run_id)}")
    return future.run_id


def test_page_loads(dash, page):
    page.goto(dash.dashboard_url)
    page.wait_for_selector("#legend li")
    assert page.title() == "fastdag dashboard"
    assert page.locator("#legend li").count() == 6


def test_live_run_reaches_all_done(dash, page):
    page.goto(dash.dashboard_url)
    page.wait_for_selector("#legend li")
    future = dash.submit(pipeline(100, first=slow_load), name="live-run")  # 299 tasks
    page.wait_for_function(f"window.fastdagDashboard.state()?.run === '{future.run_id}'",
                           timeout=60_000)
    seen_partial = state(page)["counts"]["done"] < 299
    future.result(timeout=120)
    page.wait_for_function("document.getElementById('status').dataset.state === 'done'",
                           timeout=60_000)
    assert state(page)["counts"]["done"] == 299
    assert page.text_content("#status").startswith("done: 299/299 done")
    assert "to shared memory" in page.text_content("#progress")  # 2 workers share results
    # Worker memory: sampled by the server while the run went, drawn by the page.
    memory = get(dash.dashboard_url + f"api/runs/{future.run_id}")["memory"]
    assert {worker for _, worker, _ in memory} == set(dash_workers(dash))
    assert all(rss > 10 * 2**20 for _, _, rss in memory)  # a Python process: > 10 MiB
    assert state(page)["memorySamples"] == len(memory)
    shot(page, "live-done")
    print(f"the page saw the run part done: {seen_partial}")


def test_replay_scrubbed_to_the_middle_shows_part_done(dash, page):
    run_id = show_run(page, dash, pipeline(64), "replay-run")
    assert state(page)["counts"]["done"] == 191
    # The middle of the tasks' span (a loaded machine may take long to start the first).
    detail = get(dash.dashboard_url + f"api/runs/{run_id}")
    run, tasks = detail["run"], detail["tasks"]
    middle_t = (min(tasks["start"]) + max(tasks["end"])) / 2
    page.fill("#scrub", str(round(1000 * (middle_t - run["start"]) / run["makespan"])))
    page.dispatch_event("#scrub", "input")
    middle = state(page)["counts"]
    assert 0 < middle["done"] < 191 and middle["waiting"] + middle["ready"] > 0
    assert page.text_content("#status").startswith("replay:")
    shot(page, "replay-middle")
    page.fill("#scrub", "0")
    page.dispatch_event("#scrub", "input")
    assert state(page)["counts"]["done"] == 0
    page.select_option("#speed", "100")
    page.click("#play")
    page.wait_for_function("window.fastdagDashboard.state().counts.done === 191",
                           timeout=30_000)


def test_clicking_a_task_shows_details_and_lineage(dash, page):
    show_run(page, dash, pipeline(16), "click-run")
    leaf = next(t for t in fd.last_run().tasks if t.function == "load")
    i = page.evaluate(f"window.fastdagDashboard.findTask({json.dumps(leaf.task_key)})")
    assert i >= 0
    point = page.evaluate(f"window.fastdagDashboard.taskPoint({i})")
    page.mouse.click(point["x"], point["y"])
    assert state(page)["selected"] == i
    fields = page.text_content("#fields")
    assert leaf.task_key in fields and "load" in fields and "done" in fields
    # A load feeds one clean and then the 4 merges up to the root (16 leaves).
    assert "0 upstream, 5 downstream" in fields
    shot(page, "task-lineage")


def test_a_failed_task_shows_its_traceback_as_text(dash, page):
    show_run(page, dash, merge(explode(7), clean(load(3))), "failing-run", fails=True)
    assert page.text_content("#status").startswith("failed:")
    failed = page.evaluate("Object.keys(window.fastdagDashboard.failures())")
    assert len(failed) == 1
    point = page.evaluate(f"window.fastdagDashboard.taskPoint({failed[0]})")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector("#traceback:not([hidden])")
    text = page.text_content("#traceback")
    assert "in explode" in text and "<img src=x onerror=window.pwned=1>" in text
    assert page.evaluate("window.pwned") is None
    assert page.locator("#details img").count() == 0
    shot(page, "failed-traceback")


def test_ten_thousand_tasks_paint_fast(page):
    store = RunStore()
    ex = fd.SyncExecutor()
    with ex.subscribe(store.receive, batched=True):
        pipeline(3334, quick_load).compute(executor=ex, name="ten-thousand")  # 10,001 tasks
    server = serve_store(store)
    try:
        started = time.perf_counter()
        page.goto(server.url)
        page.wait_for_function("window.fastdagDashboard.state()?.counts.done === 10001",
                               timeout=60_000)
        shown = time.perf_counter() - started
        repaint = page.evaluate("window.fastdagDashboard.paintMs()")
        page.fill("#scrub", "500")
        page.dispatch_event("#scrub", "input")
        scrub = page.evaluate("window.fastdagDashboard.paintMs()")
        shot(page, "ten-thousand")
    finally:
        server.stop()
    print(f"10,001 tasks: shown {shown:.2f} s after navigation, repaint {repaint:.0f} ms, "
          f"scrubbed repaint {scrub:.0f} ms")
    assert shown < 10  # generous under load; README quotes the measured figures
    assert repaint < 1000 and scrub < 1000


def test_events_of_old_runs_nobody_looked_at_are_dropped():
    from fastdag.dashboard.model import MAX_RUNS
    store = RunStore()
    ex = fd.SyncExecutor()
    with ex.subscribe(store.receive, batched=True):
        ids = [ex.submit(merge(1, i)).run_id for i in range(MAX_RUNS + 5)]
    store.trim()
    assert len(store._pending) == 4 * MAX_RUNS  # submitted, started, finished, run done
    assert [r["id"] for r in store.list()] == ids[5:]


def test_report_html_is_one_file_that_shows_the_run_offline(tmp_path, page):
    def odd(x):
        return x

    odd.__name__ = odd.__qualname__ = "</script><b>odd</b>"  # must stay text
    path = tmp_path / "m.parquet"
    merge(pipeline(8), fd.task(odd)([1])).compute(executor=fd.SyncExecutor(), metrics=str(path),
                                                name="offline")
    from fastdag.cli import main
    assert main(["report", str(path), "--html", "-o", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert main(["report", str(path), "--html", "-o", str(tmp_path / "named.html")]) == 0
    assert (tmp_path / "named.html").read_text() == html  # -o a file: that file
    assert "static/" not in html and "<script type=\"module\">" in html
    page.route(re.compile(r"^https?://"), lambda route: route.abort())  # offline
    page.goto((tmp_path / "out" / "report.html").as_uri())
    page.wait_for_function("window.fastdagDashboard.state()?.counts.done === 25")
    assert page.text_content("#title").startswith("offline")
    assert "</script><b>odd</b>" in page.text_content("#progress")
    assert page.locator("b").count() == 0
    shot(page, "report-html")


def test_a_big_run_is_shown_by_level_and_function(page):
    """Past the store's threshold the page asks for the aggregate view (a low
    threshold here stands for the 50,000 tasks of the default)."""
    store = RunStore(aggregate_over=1000)
    ex = fd.SyncExecutor()
    with ex.subscribe(store.receive, batched=True):
        pipeline(1000, quick_load).compute(executor=ex, name="big")  # 2,999 tasks
    server = serve_store(store)
    try:
        run_id = store.list()[0]["id"]
        summary = get(server.url + f"api/runs/{run_id}?aggregate=1")
        assert sum(g["count"] for g in summary["groups"]) == 2999
        assert {g["function"] for g in summary["groups"] if g["level"] == 0} == {"quick_load"}
        assert all(g["ended"][-1] == g["count"] for g in summary["groups"])
        page.goto(server.url)
        page.wait_for_function("window.fastdagDashboard.state()?.counts.done === 2999")
        assert state(page)["aggregated"]
        assert "by level and function" in page.text_content("#hint")
        detail = get(server.url + f"api/runs/{run_id}")
        middle_t = (min(detail["tasks"]["start"]) + max(detail["tasks"]["end"])) / 2
        page.fill("#scrub", str(round(1000 * (middle_t - detail["run"]["start"])
                                      / detail["run"]["makespan"])))
        page.dispatch_event("#scrub", "input")
        assert 0 < state(page)["counts"]["done"] < 2999
        shot(page, "aggregated")
    finally:
        server.stop()
