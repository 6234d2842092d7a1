"""The dashboard on a run of 1,000,001 tasks (SyncExecutor), in headless Chromium.

Runs the graph with the dashboard's store subscribed, serves it, opens the
page (/usr/bin/chromium through Playwright) and prints how long the page
took to show the run (the first time including the server folding the
run's events), a repaint, and a repaint after scrubbing.

    PYTHONPATH=$PWD python scripts/dashboard_million.py [LEAVES]
"""

from __future__ import annotations

import sys
import time

import fastdag as fd
from fastdag.dashboard import RunStore, serve_store


@fd.task
def load(i):
    return [i]


@fd.task
def clean(x):
    return [v * 2 for v in x]


@fd.task
def merge(a, b):
    return a + b


def graph(leaves: int) -> fd.Node:
    """``leaves`` loads, each cleaned, merged pairwise: 3 * leaves - 1 tasks."""
    level = [clean(load(i)) for i in range(leaves)]
    while len(level) > 1:
        level = [merge(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def main() -> None:
    from playwright.sync_api import sync_playwright
    leaves = int(sys.argv[1]) if len(sys.argv) > 1 else 333_334
    total = 3 * leaves - 1
    store = RunStore()
    ex = fd.SyncExecutor()
    node = graph(leaves)
    with ex.subscribe(store.receive, batched=True):
        started = time.perf_counter()
        node.compute(executor=ex, name="million", progress=False)
    print(f"ran {total:,} tasks in {time.perf_counter() - started:.1f} s")
    server = serve_store(store)
    done = f"window.fastdagDashboard.state()?.counts.done === {total}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for what in ("first view (the server folds the run's events)", "after a reload"):
            started = time.perf_counter()
            page.goto(server.url)
            page.wait_for_function(done, timeout=300_000)
            print(f"{what}: shown {time.perf_counter() - started:.2f} s after navigation")
        print(f"repaint {page.evaluate('window.fastdagDashboard.paintMs()'):.1f} ms")
        page.fill("#scrub", "500")
        page.dispatch_event("#scrub", "input")
        print(f"repaint after scrubbing {page.evaluate('window.fastdagDashboard.paintMs()'):.1f} ms")
        browser.close()
    server.stop()


if __name__ == "__main__":
    main()
