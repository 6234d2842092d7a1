"""The README's "Metrics and reports" Python snippets run as written.

Each ```python block of that section is run in a fresh interpreter in a
temporary directory, one after the other in one script (as a reader would
paste them). The only change: the Redis URL of the README (port 6379) points
at a private redis-server on a free port, per the house rule that tests
never touch a server they did not start.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
README_REDIS = "redis://127.0.0.1:6379/0"


def section(title: str) -> str:
    """The text of the README's ``## title`` section."""
    text = open(README, encoding="utf-8").read()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def python_snippets(title: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section(title), flags=re.S)


def test_the_section_has_snippets_that_use_every_sink():
    code = "\n".join(python_snippets("Metrics and reports"))
    for sink in ("runs.parquet", "runs/", README_REDIS, "MemorySink", "ex.metrics"):
        assert sink in code


@pytest.mark.redis
def test_metrics_snippets_run_as_written(tmp_path, redis_server):
    snippets = python_snippets("Metrics and reports")
    script = "\n\n".join(snippets).replace(README_REDIS, redis_server.url)
    script += "\nfd.flush_metrics()\nprint('snippets ran', flush=True)\n"
    (tmp_path / "snippets.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "snippets.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "snippets ran" in done.stdout, done.stderr[-3000:]
    assert (tmp_path / "runs.parquet").is_file() and list((tmp_path / "runs").glob("*.parquet"))
