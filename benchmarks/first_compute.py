"""What a fresh process's first ``compute()`` costs over a warm one, and what a worker costs to boot.

Every sample is a new interpreter (``subprocess``), as a user's script is:
it builds the workload's input (``user_code.py``) *before* importing
fastdag, then imports fastdag, builds the graph with ``fd.task`` and
computes it on the default executor (workers not started yet: the "first"
compute), then computes it ``--warm`` more times. It also notes when all
the workers have reported in, counted from the start of the first compute. The overhead of a sample
is the first compute minus the median of its warm ones; the figure quoted is
the median over ``--samples`` interpreters, with the load (``os.getloadavg``)
at the start and the end, because on a shared 2-core machine it decides
most of the spread. ``--serial`` samples the plain calls too, in turn: a
first run costs something without fastdag (numpy's first touch of fresh
memory, for one), and fastdag's own share is the difference.

``--boot`` measures instead what one worker process spends before it can
take a task: the CPU seconds (user + system) of each worker of a
``LocalExecutor`` from its start to its ``("up",)`` message, read with
psutil while the workers sit idle, median over ``--samples`` executors.

Bytecode: a user's fastdag, numpy and own modules load from ``.pyc`` files
(pip compiles a package when it installs it; Python writes the cache of an
editable checkout at its first import). An environment that sets
``PYTHONDONTWRITEBYTECODE`` (this one, many Docker images) would instead
compile every module of the client and of each worker from source in every
sample: some 0.1 s of the client's first compute and 30 ms of each worker's
boot that no user pays. So the children write and read their bytecode under
a cache folder of their own (``PYTHONPYCACHEPREFIX``), filled by one untimed
child per checkout and workload before the samples; ``--no-bytecode`` keeps
the environment's setting.

    python benchmarks/first_compute.py --samples 7 json numpy
    python benchmarks/first_compute.py --boot --samples 5
    git archive <commit> | tar -x -C /tmp/before   # against an older commit, in turn
    python benchmarks/first_compute.py --compare /tmp/before --serial json numpy
    python benchmarks/first_compute.py --no-bytecode json    # modules compiled in every sample
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = """
import json, statistics, sys, threading, time
import user_code
w = user_code.WORKLOADS[sys.argv[1]]
data = w.make_input()
up = []
t0 = time.perf_counter()
if sys.argv[3] == "serial":  # the same code run eagerly: what a first run costs anyway
    def run():
        return w.graph(user_code.direct, data)
    t1 = time.perf_counter()
else:
    import fastdag as fd
    t1 = time.perf_counter()
    def wait_up(ready):  # when all the default executor's workers reported in
        ready.wait(60)
        up.append(time.perf_counter() - t1)
    ex = fd.get_default_executor()  # inside the timing: it imports the executor
    placement = getattr(ex, "placement", None)
    if placement is not None:
        threading.Thread(target=wait_up, args=(placement.ready,), daemon=True).start()
    def run():
        return fd.compute(w.graph(fd.task, data))[0]
first = run()
t2 = time.perf_counter()
warm = []
for _ in range(int(sys.argv[2])):
    s = time.perf_counter()
    again = run()
    warm.append(time.perf_counter() - s)
assert w.same(first, again)
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "warm": statistics.median(warm),
                  "up": up[0] if up else None}))
"""

BOOT = """
import json, sys, time
import psutil
from fastdag.executors.local import LocalExecutor
ex = LocalExecutor(placement="auto")
t0 = time.perf_counter()
ex._ensure_started()
if not ex.placement.ready.wait(60):
    raise SystemExit("workers did not report in")
t1 = time.perf_counter()
cpu = [sum(psutil.Process(h.process.pid).cpu_times()[:2]) for h in ex._handles]
ex.shutdown()
print(json.dumps({"up_wall": t1 - t0, "cpu": cpu}))
"""


# Where the children keep their bytecode (see the module docstring); None: as the
# environment says. One folder serves every checkout: the cache mirrors source paths.
PYCACHE: str | None = None


def _env(root: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (root, HERE, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    if PYCACHE is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


def _child(root: str, code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter importing fastdag from ``root``; its last line."""
    # cwd: ``python -c`` puts it first on sys.path, before PYTHONPATH
    out = subprocess.run([sys.executable, "-c", code, *args], env=_env(root), cwd=root, check=True,
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def first_compute(name: str, samples: int, warm: int, roots: list[str],
                  serial: bool = False) -> list[dict[str, float]]:
    """Per checkout, the median over fresh interpreters of first compute, warm compute and
    their difference; the checkouts take turns, sample by sample, so load swings hit all.
    ``serial``: the last entry of ``roots`` runs the workload's plain calls instead."""
    runs: list[list[dict]] = [[] for _ in roots]
    engines = ["serial" if k == len(roots) - 1 and serial else "fastdag" for k in range(len(roots))]
    if PYCACHE is not None:  # untimed: writes the bytecode every sample then reads
        for root, engine in zip(roots, engines):
            _child(root, CHILD, name, "1", engine)
    for _ in range(samples):
        for k, root in enumerate(roots):
            runs[k].append(_child(root, CHILD, name, str(warm), engines[k]))
    return [_summary(r) for r in runs]


def _summary(runs: list[dict]) -> dict[str, float]:
    extra = [r["first"] - r["warm"] for r in runs]
    return {"first_s": statistics.median(r["first"] for r in runs),
            "warm_s": statistics.median(r["warm"] for r in runs),
            "extra_s": statistics.median(extra), "extra_min_s": min(extra),
            "extra_max_s": max(extra),
            "import_s": statistics.median(r["import"] for r in runs),
            "up_s": statistics.median(r["up"] if r["up"] is not None else float("inf") for r in runs)}


def boot(samples: int, roots: list[str]) -> list[dict[str, float]]:
    """Per checkout, median CPU seconds per worker to boot, and the wall time until all
    reported in; the checkouts take turns."""
    runs: list[list[dict]] = [[] for _ in roots]
    if PYCACHE is not None:  # untimed, as in first_compute
        for root in roots:
            _child(root, BOOT)
    for _ in range(samples):
        for k, root in enumerate(roots):
            runs[k].append(_child(root, BOOT))
    return [{"cpu_s": statistics.median(c for r in rs for c in r["cpu"]),
             "up_wall_s": statistics.median(r["up_wall"] for r in rs)} for rs in runs]


def _line(engine: str, name: str, f: dict[str, float]) -> str:
    line = (f"{engine}: {name}: first {f['first_s']:.3f} s, warm {f['warm_s']:.3f} s, extra "
            f"{f['extra_s']:+.3f} s (min {f['extra_min_s']:+.3f}, max {f['extra_max_s']:+.3f})")
    if engine == "serial":
        return line
    return (f"{line}, import fastdag {f['import_s'] * 1e3:.0f} ms, "
            f"workers up after {f['up_s']:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=["json", "numpy"])
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--boot", action="store_true", help="worker boot CPU instead")
    parser.add_argument("--compare", metavar="DIR", action="append", default=[],
                        help="another fastdag checkout (e.g. an older commit), sampled in turn")
    parser.add_argument("--serial", action="store_true",
                        help="also sample the workload's plain calls: its own first-run cost")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="no bytecode cache of the children's own: as the environment says")
    args = parser.parse_args()
    global PYCACHE
    with tempfile.TemporaryDirectory(prefix="first-compute-pyc-") as cache:
        PYCACHE = None if args.no_bytecode else cache
        _measure(args)


def _measure(args: argparse.Namespace) -> None:
    roots = [os.path.dirname(HERE), *map(os.path.abspath, args.compare)]
    print(f"load at start {os.getloadavg()[0]:.1f}", flush=True)
    if args.boot:
        for root, b in zip(roots, boot(args.samples, roots)):
            print(f"{root}: worker boot {b['cpu_s'] * 1e3:.0f} ms CPU each, all up after "
                  f"{b['up_wall_s'] * 1e3:.0f} ms wall")
    engines = roots + ["serial"] * args.serial
    for name in args.workloads if not args.boot else []:
        figures = first_compute(name, args.samples, args.warm, roots + roots[:1] * args.serial,
                                args.serial)
        for root, f in zip(engines, figures):
            print(_line(root, name, f), flush=True)
        print(f"load now {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t:.0f} s)")
