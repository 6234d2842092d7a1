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

``--same-process BLOCKS``: steadier, one executor and one process, blocks of
10 runs alternated between no subscriber and the dashboard's store
subscribed (no page): what the events and the store cost, without the
difference between two processes' workers and heaps.
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


def same_process(blocks: int) -> None:
    """Median client CPU per run, dashboard store subscribed or not, in one process."""
    sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
    import fastdag as fd
    from fastdag.dashboard import serve_executor
    from test_bench_tree import EXPECTED, LEAVES, fastdag_tree
    ex = fd.LocalExecutor(2)
    fastdag_tree(64).compute(executor=ex)
    server = serve_executor(ex, True)
    server.subscription.unsubscribe()
    cpu: dict[str, list[float]] = {"plain": [], "nopage": []}
    for _ in range(blocks):
        for mode in cpu:
            sub = ex.subscribe(server.store.receive, batched=True) if mode == "nopage" else None
            for _ in range(10):
                c = time.process_time()
                assert fastdag_tree(LEAVES).compute(executor=ex) == EXPECTED
                cpu[mode].append(time.process_time() - c)
            if sub is not None:
                sub.unsubscribe()
    server.stop()
    ex.shutdown()
    base = statistics.median(cpu["plain"])
    for mode, values in cpu.items():
        c = statistics.median(values)
        print(f"{mode:7} client CPU median {c * 1e3:5.2f} ms (x{c / base:.3f})   {len(values)} runs")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--same-process"]:
        same_process(int(sys.argv[2]) if len(sys.argv) > 2 else 15)
    elif sys.argv[1:2] == ["--one"]:
        print(list(measure(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
