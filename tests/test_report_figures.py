"""Fixes to `fastdag report`'s figures and `fastdag run --metrics PATH` (issue 14's last item)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import fastdag as fd
from fastdag.viz.figures import critical_path_figure, summary_rows, timeline_figure
from fastdag.metrics.sinks import load_metrics


@fd.task
def nap(x, *inputs):
    time.sleep(0.01)
    return x


def chain_with_waits() -> fd.Node:
    """A chain whose links wait on a slow side branch: the chain is not busy all along."""
    node = nap(0)
    for i in range(4):
        side = nap(nap(nap(i)))
        node = nap(i, node, side)
    return node


def test_timeline_names_the_start_up():
    with fd.LocalExecutor(2) as ex:  # first run: the workers start inside it
        chain_with_waits().compute(executor=ex)
    fig = timeline_figure(fd.last_run())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("start-up") for label in labels)
    assert not any("no task yet" in label for label in labels)


def test_critical_path_shows_its_waits():
    chain_with_waits().compute(executor=fd.ThreadExecutor(2))
    fig = critical_path_figure(fd.last_run())
    title = fig.axes[0].get_title()
    assert "waiting" in title and "between them" in title
    hatched = [p for p in fig.axes[0].patches if p.get_hatch()]
    assert hatched  # the waits are drawn, not only summed


def test_summary_has_one_short_row_per_setting_in_human_units():
    nap(1).compute(executor=fd.LocalExecutor(1, inline_threshold=65536, constant_cache=0))
    rows = dict(summary_rows(fd.last_run()))
    assert rows["setting: inline threshold"] == "64 KiB"
    assert rows["setting: workers"] == "1"
    assert all(len(value) <= 48 for value in rows.values())


def test_run_command_saves_metrics(tmp_path):
    path = tmp_path / "runs.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "fastdag.cli", "run", "tree_reduction",
                           "--size", "leaves=64", "--executor", "sync", "--metrics", str(path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    [report] = load_metrics(path)
    assert report.run.workflow == "tree_reduction" and report.run.tasks == 63
