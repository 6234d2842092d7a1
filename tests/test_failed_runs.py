"""A run that fails is not lost from the metrics, and its error points at the user's code.

A failed or cancelled run keeps its report (``run.state``, ``run.error``
and the records of the tasks that did run): ``fd.last_run()`` is that run
when ``compute()`` raises, and a metrics sink stores it. The traceback a
``TaskError`` carries starts at the user's function on every executor, and
a function sent by value (defined in a script's ``__main__``) still names
its file and shows its line of source when it fails in a worker process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import fastdag as fd
from tasks import inc


@fd.task
def fail_on(x):
    raise ValueError(f"cannot take {x}")


@pytest.mark.parametrize("kind", ["default", "sync", "threads", "local"])
def test_a_failed_run_is_reported_with_the_tasks_that_ran(kind, local_executor, tmp_path):
    executor = {"default": None, "sync": fd.SyncExecutor(), "threads": fd.ThreadExecutor(2),
                "local": local_executor}[kind]
    path = tmp_path / "runs.parquet"
    first = inc(41)
    with pytest.raises(fd.TaskError):
        fd.compute(fail_on(first), executor=executor, metrics=str(path), name="doomed")
    report = fd.last_run()
    assert report is not None and report.run.workflow == "doomed"
    assert report.run.state == "failed"
    assert "cannot take 42" in report.run.error
    assert [t.function for t in report.tasks] == ["inc"]  # the task that ran before the failure
    stored = [r for r in fd.load_metrics(path) if r.run.run_id == report.run.run_id]
    assert len(stored) == 1
    assert stored[0].run.state == "failed" and "cannot take 42" in stored[0].run.error
    assert [t.function for t in stored[0].tasks] == ["inc"]
    assert inc(1).compute(executor=executor) == 2
    assert fd.last_run().run.state == "done" and fd.last_run().run.error == ""


@pytest.mark.parametrize("kind", ["sync", "threads"])
def test_an_in_process_traceback_starts_at_the_users_function(kind):
    executor = fd.SyncExecutor() if kind == "sync" else fd.ThreadExecutor(2)
    with pytest.raises(fd.TaskError) as info:
        fail_on(1).compute(executor=executor)
    text = info.value.remote_traceback
    assert "raise ValueError" in text
    assert f"{os.sep}fastdag{os.sep}" not in text.replace(os.path.dirname(__file__), "")


SCRIPT = """
import fastdag as fd

@fd.task
def explode(x):
    raise KeyError(f"missing {x}")   # the line the traceback must show

with fd.LocalExecutor(workers=1) as ex:
    try:
        ex.compute(explode(7))
    except fd.TaskError as err:
        print(err.remote_traceback)
"""


def test_a_main_function_failing_in_a_worker_names_its_file_and_line(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f'File "{script}", line 6, in explode' in done.stdout
    assert "the line the traceback must show" in done.stdout
    assert "<dynamic-code>" not in done.stdout
