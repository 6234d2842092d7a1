"""Speed on users' own code: ``fd.compute(node)`` on the default executor against serial and Dask.

Every workload of ``user_code.py`` is written once, against a ``delayed``
function, and run by each engine (the parameter in brackets; the group is
the workload's name), with the same rounds for every engine of a group and
graph building inside the timing for all of them:

* ``fastdag-local``: ``fd.compute(node)`` on the process-wide default executor,
  exactly what a user's script does (``fd.task`` wraps at each call).
* ``serial``: the same code with ``delayed`` the identity: plain calls.
* ``dask-sync``, ``dask-threads``, ``dask-processes``: ``dask.delayed`` and
  ``dask.compute(..., scheduler=...)``.

``test_first_compute`` starts a fresh interpreter and compares its first
``compute()`` (workers not started yet) with a warm one.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        pytest benchmarks/test_bench_user_code.py --benchmark-only --benchmark-json=user.json

At the end, ``ratios.py`` prints fastdag / best peer per workload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import user_code

pytest.importorskip("pandas")

ROUNDS = {"numpy": 7, "pandas": 5, "pillow": 5, "json": 5, "bytes_str": 5, "tree_add": 7,
          "tree_once": 7, "tree_builtin": 7, "tree_sum": 7, "tree_lambda": 7}
_inputs: dict[str, Any] = {}
_expected: dict[str, Any] = {}


def _input(name: str) -> Any:
    if name not in _inputs:
        _inputs[name] = user_code.WORKLOADS[name].make_input()
    return _inputs[name]


@pytest.mark.slow
@pytest.mark.parametrize("engine", user_code.ENGINES)
@pytest.mark.parametrize("name", list(user_code.WORKLOADS))
def test_user_code(benchmark: Any, name: str, engine: str) -> None:
    workload = user_code.WORKLOADS[name]
    data = _input(name)
    if name not in _expected:
        _expected[name] = workload.graph(user_code.direct, data)
    run = user_code.runner(engine, workload, data)
    benchmark.group = f"user-{name}"
    benchmark.extra_info.update(engine=engine, workload=f"user-{name}")
    result = benchmark.pedantic(run, rounds=ROUNDS[name], warmup_rounds=1)
    assert workload.same(result, _expected[name])


FIRST_COMPUTE = """
import json, sys, time
t0 = time.perf_counter()
import fastdag as fd
import user_code
w = user_code.WORKLOADS[sys.argv[1]]
data = w.make_input()
t1 = time.perf_counter()
first = fd.compute(w.graph(fd.task, data))[0]
t2 = time.perf_counter()
warm = []
for _ in range(3):
    s = time.perf_counter()
    fd.compute(w.graph(fd.task, data))
    warm.append(time.perf_counter() - s)
print(json.dumps({"first": t2 - t1, "warm": min(warm), "import": t1 - t0}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tree_add", "json", "numpy"])
def test_first_compute(benchmark: Any, name: str) -> None:
    """A fresh interpreter's first compute() against its best warm one (extra_info)."""
    here = os.path.dirname(__file__)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), here, os.environ.get("PYTHONPATH", "")]))

    def run() -> dict[str, float]:
        out = subprocess.run([sys.executable, "-c", FIRST_COMPUTE, name], env=env, check=True,
                             capture_output=True, text=True, timeout=300)
        return json.loads(out.stdout.strip().splitlines()[-1])

    benchmark.group = "user-first-compute"
    figures = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    benchmark.extra_info.update(engine=f"first-{name}", workload="user-first-compute",
                                first_s=figures["first"], warm_s=figures["warm"],
                                extra_s=figures["first"] - figures["warm"])
    print(f"\n{name}: first {figures['first']:.3f} s, warm {figures['warm']:.3f} s, "
          f"extra {figures['first'] - figures['warm']:.3f} s")
