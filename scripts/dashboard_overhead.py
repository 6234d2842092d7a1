"""Cost of the dashboard on the tree of 4,096 leaves (LocalExecutor, 2 workers).

Each mode runs in its own process, N runs back to back, the modes
alternated ROUNDS times so that load from other jobs spreads over both:

  plain   LocalExecutor(2)
  nopage  LocalExecutor(2, dashboard=True), no browser
  page    LocalExecutor(2, dashboard=True) with the page open in Chromium
          (/usr/bin/chromium through Playwright), following every run live

Prints per mode the median wall time per run and the median CPU time of the
client process (all its threads: scheduler, dashboard server) per run.

    PYTHONPATH=$PWD python scripts/dashboard_overhead.py [N] [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(mode: str, n: int) -> tuple[list[float], list[float]]:
    """N runs in this process; (wall seconds, process CPU seconds) per run."""
    sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
    import fastdag as fd
    from test_bench_tree import EXPECTED, LEAVES, fastdag_tree
    ex = fd.LocalExecutor(2, dashboard=mode != "plain")
    fastdag_tree(64).compute(executor=ex)
    pw = page = None
    if mode == "page":
        from playwright.sync_api import sync_playwright
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(ex.dashboard_url)
        page.wait_for_selector("#legend li")
    wall, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        assert fastdag_tree(LEAVES).compute(executor=ex) == EXPECTED
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if page is not None:
        page.wait_for_function("window.fastdagDashboard.state()?.counts.done === 4095")
        pw.stop()
    ex.shutdown()
    return wall, cpu


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    results: dict[str, list[list[float]]] = {}
    for _ in range(rounds):
        for mode in ("plain", "nopage", "page"):
            out = subprocess.run([sys.executable, __file__, "--one", mode, str(n)],
                                 capture_output=True, text=True, check=True).stdout
            wall, cpu = eval(out.strip().splitlines()[-1])  # noqa: S307 - our own child's output
            results.setdefault(mode, [[], []])
            results[mode][0] += wall
            results[mode][1] += cpu
    base = statistics.median(results["plain"][0]), statistics.median(results["plain"][1])
    for mode, (wall, cpu) in results.items():
        w, c = statistics.median(wall), statistics.median(cpu)
        print(f"{mode:7} wall median {w * 1e3:6.1f} ms (x{w / base[0]:.3f})   "
              f"client CPU median {c * 1e3:5.1f} ms (x{c / base[1]:.3f})   {len(wall)} runs")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(list(measure(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
