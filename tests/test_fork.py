"""fastdag in a process made by ``os.fork`` (a ``multiprocessing`` fork pool, say).

A forked child has none of its parent's threads. The default executor is
made anew in the child; a ThreadExecutor makes a new pool there; a
LocalExecutor made by the parent refuses to run in the child (its workers
serve the parent) with an error that says what to do, and the child's exit
leaves the parent's workers and shared-memory files alone.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import textwrap

import pytest

import fastdag as fd
from tasks import add, inc

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="os.fork semantics of Linux")


def test_children_of_a_fork_pool_compute_with_their_own_default_executor(tmp_path):
    # In a subprocess: the test process's own default executor must not be forked around.
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing, fastdag as fd

        @fd.task
        def inc(x):
            return x + 1

        def child(i):
            return fd.compute(fd.task(sum)([inc(i), inc(i)]))[0]

        print(fd.compute(fd.task(sum)([inc(1), inc(2)]))[0])   # the parent's default, in use
        with multiprocessing.get_context("fork").Pool(2) as pool:
            print(pool.map(child, range(4)))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["5", "[2, 4, 6, 8]"]


def test_a_forked_child_leaves_the_parents_executor_alone(local_executor):
    assert local_executor.compute(inc(1)) == 2  # started: workers and a status file
    status = local_executor._status_path
    assert status is not None and os.path.exists(status)
    threads = fd.ThreadExecutor(2)
    assert threads.compute(inc(2)) == 3
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then run what a normal exit runs
        try:
            try:
                local_executor.compute(inc(1))
                said = "ran"
            except RuntimeError as exc:
                said = str(exc)
            said += "|" + str(threads.compute(inc(10)))
            os.write(write, said.encode())
        finally:
            os.close(write)
            local_executor.shutdown()       # what its atexit hook calls
            local_executor._finalizer()     # what its finalizer does at exit
            atexit._run_exitfuncs()
            os._exit(0)  # not sys.exit: pytest's own frames are above us
    os.close(write)
    said = b""
    while chunk := os.read(read, 4096):
        said += chunk
    os.close(read)
    _, code = os.waitpid(pid, 0)
    assert code == 0
    refusal, child_sum = said.decode().split("|")
    assert "forked" in refusal and "belongs to process" in refusal
    assert child_sum == "11"
    assert os.path.exists(status)  # the child's exit swept nothing of ours
    assert local_executor.compute(add(inc(1), inc(2))) == 5
    threads.shutdown()

