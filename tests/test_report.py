"""`fastdag report`, `fastdag plot-bench` and draw_dag: files written, bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastdag as fd
from fastdag.metrics import tracking
from fastdag.viz.benchplot import load_bench, ratios
from fastdag.cli import main
from fastdag.viz.figures import FIGURES
from fastdag.viz.report import draw_dag

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@fd.task
def block(i):
    return np.full(512, i, dtype=np.float64)


@fd.task
def merge(a, b):
    return a + b


@fd.task
def norm(a):
    return float(np.linalg.norm(a))


def tree(leaves=16):
    level = [block(i) for i in range(leaves)]
    while len(level) > 1:
        level = [merge(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return norm(level[0])


# Report figures are 11 inches wide (the summary 8) at 110 dpi: plotting.new_figure.
REPORT_WIDTH = {name: (8 if name == "summary" else 11) * 110 for name in FIGURES}


def assert_png(path, width: int | None = None, chart: bool = True):
    """A PNG with a drawing in it: its size, ink, and (for a chart) coloured marks."""
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    height, got_width = rgb.shape[:2]
    assert got_width == width if width else got_width >= 300, (path, rgb.shape)
    assert height >= 150, (path, rgb.shape)
    ink = (rgb != rgb[0, 0]).any(axis=2)          # pixels unlike the background corner
    assert 0.01 < ink.mean() < 0.9, (path, ink.mean())
    if chart:  # bars, boxes or nodes in colour, not only black text and axes
        spread = rgb.max(axis=2).astype(int) - rgb.min(axis=2)
        assert (spread > 60).mean() > 0.001, (path, (spread > 60).mean())


def one_line_error(capsys, needle):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastdag ") and needle in lines[0], err


def test_report_writes_every_figure(executor, tmp_path, capsys):
    metrics_path = tmp_path / "m.parquet"
    executor.compute(tree(), metrics=metrics_path, name="tree16")
    run_id = tracking.last_run().run.run_id
    out = tmp_path / "plots"
    assert main(["report", str(metrics_path), "-o", str(out)]) == 0
    for name in FIGURES:
        assert_png(out / f"{name}.png", REPORT_WIDTH[name], chart=name != "summary")
    stdout = capsys.readouterr().out
    assert run_id in stdout and "utilisation" in stdout and "tree16" in stdout


def test_report_picks_a_run_by_id_or_all(tmp_path, capsys):
    ex = fd.SyncExecutor()
    ex.compute(tree(4), metrics=tmp_path / "runs", name="a")
    first = tracking.last_run().run.run_id
    ex.compute(tree(8), metrics=tmp_path / "runs", name="b")
    assert main(["report", str(tmp_path / "runs"), "-o", str(tmp_path / "one"),
                 "--run", first]) == 0
    assert first in capsys.readouterr().out
    assert main(["report", str(tmp_path / "runs"), "-o", str(tmp_path / "all"),
                 "--run", "all"]) == 0
    subdirs = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert len(subdirs) == 2 and subdirs[0].startswith("a-") and subdirs[1].startswith("b-")
    assert main(["report", str(tmp_path / "runs"), "--run", "nope"]) == 2
    one_line_error(capsys, "no run 'nope'")


@pytest.mark.parametrize("content,needle", [
    (b"", "is empty"),
    (b"PAR1 this is not parquet", "not a readable Parquet file"),
    (None, "does not exist"),
])
def test_report_rejects_bad_metrics_files(tmp_path, capsys, content, needle):
    path = tmp_path / "metrics.parquet"
    if content is not None:
        path.write_bytes(content)
    assert main(["report", str(path), "-o", str(tmp_path / "out")]) == 2
    one_line_error(capsys, needle)
    assert not (tmp_path / "out").exists()


def test_report_rejects_an_empty_directory(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    one_line_error(capsys, "holds no .parquet files")


def bench_json(path, entries):
    benchmarks = []
    for name, group, median in entries:
        benchmarks.append({"name": name, "group": group, "stats": {
            "median": median, "q1": median * 0.9, "q3": median * 1.1, "rounds": 5}})
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return path


def test_plot_bench_groups_by_workload_and_engine(tmp_path, capsys):
    path = bench_json(tmp_path / "bench.json", [
        ("test_tree_reduction[fastdag-local]", "tree_reduction", 0.05),
        ("test_tree_reduction[dask-threads]", "tree_reduction", 0.20),
        ("test_gemm[fastdag-local]", "gemm", 1.5),
        ("test_gemm[dask-threads]", "gemm", 1.0),
        ("test_gemm[serial]", None, 3.0),
    ])
    results = load_bench(path)
    assert {(r.workload, r.engine) for r in results} == {
        ("tree_reduction", "fastdag-local"), ("tree_reduction", "dask-threads"),
        ("gemm", "fastdag-local"), ("gemm", "dask-threads"), ("gemm", "serial")}
    r = ratios(results)
    assert r[("tree_reduction", "dask-threads")] == pytest.approx(4.0)
    assert r[("gemm", "dask-threads")] == 1.0 and r[("gemm", "serial")] == pytest.approx(3.0)
    assert main(["plot-bench", str(path), "-o", str(tmp_path / "plots")]) == 0
    assert_png(tmp_path / "plots" / "bench.png")
    assert "bench.png" in capsys.readouterr().out


@pytest.mark.parametrize("content,needle", [
    ("{not json", "not valid JSON"),
    ('{"benchmarks": []}', "holds no 'benchmarks'"),
    ('{"benchmarks": [{"name": "test_x[a]"}]}', "malformed entry"),
])
def test_plot_bench_rejects_bad_files(tmp_path, capsys, content, needle):
    path = tmp_path / "b.json"
    path.write_text(content)
    assert main(["plot-bench", str(path), "-o", str(tmp_path)]) == 2
    one_line_error(capsys, needle)


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_draw_dag_by_extension(tmp_path, ext):
    path = tmp_path / f"dag.{ext}"
    dag = tree(8).dag
    draw_dag(dag, path)
    data = path.read_bytes()
    assert data.startswith({"png": PNG_MAGIC, "svg": b"<?xml", "pdf": b"%PDF"}[ext])
    if ext == "png":
        assert_png(path)
    elif ext == "svg":  # a shape per node and per edge at least
        assert data.count(b"<path") >= len(dag) + len(dag.edges), data.count(b"<path")
    else:
        assert len(data) > 1000


def test_draw_dag_large_graph_without_labels(tmp_path):
    draw_dag(tree(256).dag, tmp_path / "big.png")
    assert_png(tmp_path / "big.png")


def test_report_without_dependency_records(tmp_path, capsys):
    """Executors that do not record the graph still get every figure."""
    from fastdag.metrics.sinks import ParquetSink

    fd.SyncExecutor().compute(tree(4))
    report = tracking.last_run()
    report._deps, report._tasks = [], None
    ParquetSink(tmp_path / "m.parquet").write(report)
    assert main(["report", str(tmp_path / "m.parquet"), "-o", str(tmp_path / "out")]) == 0
    for name in FIGURES:
        assert_png(tmp_path / "out" / f"{name}.png", REPORT_WIDTH[name],
                   chart=name not in ("summary", "critical_path"))  # no path to draw
    assert "not recorded" in capsys.readouterr().out
