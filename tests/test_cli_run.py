"""``fastdag run`` and ``fastdag demo``: output, exit codes, one-line errors.

Most runs go through ``fastdag.cli.main`` in this process on the sync or
thread executor (fast); one goes through the installed console script on
the process pool, as a user would run it.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from fastdag.cli import main

SMALL = {
    "tree_reduction": ("leaves=1024", 1023),
    "gemm": ("n=64,block=32", 2 * 4 + 8 + 4 + 1),
    "wordcount": ("size=32k,chunk=8k", 4 * 3 + 3),
    "image_transform": ("width=128,height=96,tile=32", 12 * 5 + 1),
    "svd1": ("rows=512,cols=8,block=128", 6 * 4 + 6),
    "svd2": ("n=96,block=32,k=4,power_iters=1", 3 * 9 + 9 + 7 * 3 + 4),
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("executor", ["sync", "threads"])
def test_run_each_workload(capsys, name, executor):
    size, tasks = SMALL[name]
    code, out, err = run(capsys, "run", name, "--size", size, "--executor", executor, "--workers", "2")
    assert code == 0, out + err
    assert re.search(rf"^tasks +{tasks} \(depth \d+\)", out, re.M), out
    assert re.search(r"^wall time +\d+\.\d+ s", out, re.M)
    assert re.search(r"^check +OK: ", out, re.M)


def test_run_console_script_on_processes():
    proc = subprocess.run(
        [sys.executable, "-m", "fastdag.cli", "run", "gemm", "--size", "n=96,block=32",
         "--executor", "local", "--workers", "2"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pool       local, 2 workers" in proc.stdout
    assert re.search(r"^tasks +55 ", proc.stdout, re.M)  # 3x3 blocks: 18 generated, 27 products, 9 sums, 1
    assert "check      OK" in proc.stdout


def test_run_wordcount_on_a_user_file(capsys, tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("The cat saw the other cat.\n" * 500)
    code, out, _ = run(capsys, "run", "wordcount", "--input", str(path), "--size", "chunk=1k",
                       "--executor", "sync")
    assert code == 0
    assert "3000 words, 4 distinct" in out  # the, cat, saw, other


def test_run_no_check(capsys):
    code, out, _ = run(capsys, "run", "tree_reduction", "--size", "64", "--executor", "sync", "--no-check")
    assert code == 0 and "check      skipped" in out


def test_failed_check_exits_1(capsys, tmp_path):
    # A flat spectrum and a sketch with no room to spare: the top singular
    # values come out visibly wrong, and the check must say so.
    path = tmp_path / "flat.npy"
    np.save(path, np.random.default_rng(0).standard_normal((120, 120)))
    code, out, _ = run(capsys, "run", "svd2", "--input", str(path), "--executor", "sync",
                       "--size", "n=120,block=40,k=10,oversample=0,power_iters=0")
    assert code == 1
    assert re.search(r"^check +FAILED: ", out, re.M)


@pytest.mark.parametrize("argv, message", [
    (["run", "wordcount", "--input", "/no/such/file.txt"], "text file not found: /no/such/file.txt"),
    (["run", "svd2", "--size", "n=50,k=60"], "k=60 is larger than the matrix allows"),
    (["run", "gemm", "--size", "n=64,block=0"], "block must be positive"),
    (["run", "gemm", "--size", "n=64,blok=8"], "unknown size key 'blok'"),
    (["run", "nope"], "unknown workload 'nope'"),
    (["run", "gemm", "--input", "x.npy"], "gemm generates its input"),
    (["run", "svd1", "--input", "/no/such.npy"], "matrix file not found"),
    (["run", "tree_reduction", "--workers", "0"], "--workers must be at least 1"),
    (["demo", "--workers", "0"], "--workers must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv, "--executor", "sync")
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_image_pillow_cannot_open(capsys, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\x00" * 100)
    code, _, err = run(capsys, "run", "image_transform", "--input", str(bad), "--executor", "sync")
    assert code == 2
    assert err.startswith("fastdag: error: Pillow cannot open") and len(err.strip().splitlines()) == 1


def test_ragged_block_size_is_accepted(capsys):
    code, out, _ = run(capsys, "run", "gemm", "--size", "n=100,block=30", "--executor", "sync")
    assert code == 0
    assert re.search(r"^tasks +113 ", out, re.M)  # 4x4 blocks: 32 generated, 64 products, 16 sums, 1


def test_demo(capsys):
    code, out, _ = run(capsys, "demo", "--executor", "threads", "--workers", "2")
    assert code == 0
    assert out.count("check      OK") == 3
    assert "submitted together with compute_async" in out
    assert len(re.findall(r"^  \w+ +OK: ", out, re.M)) == 3


def test_help_imports_neither_numpy_nor_an_executor():
    """``fastdag --help`` stays quick: it loads no numpy, no executor, no redis client."""
    code = ("import sys\n"
            "import fastdag.cli\n"
            "try:\n"
            "    fastdag.cli.main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "heavy = ('numpy', 'pyarrow', 'redis', 'fastdag.executors', 'fastdag.engine.worker')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: fastdag" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "[]"
