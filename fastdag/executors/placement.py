"""Where the default executor runs a graph: inline in the caller's thread, on threads, or on its worker processes.

::

    submit(dag) or a Dask graph's Plan ──> Placement.where(graph)
                      │ every function measured, the whole graph
                      │   cheaper to run than to hand off ───────> inline (InlineRun, this thread)
                      │ every function measured, GIL-held work no
                      │   longer than the processes would take ──> threads (GuardedThreads)
                      │ workers still starting ──────────────────> threads; GIL-holding tasks
                      │                                             move to the workers once up
                      └ otherwise (a function never seen, pure
                        Python, gil=True) ───────────────────────> worker processes
    measurements:  inline and thread runs (wall, thread CPU time, GIL samples),
                   worker processes ("gil" messages, run records)
                   ──> GilProfile (per function: mean and typical run time, GIL-held fraction)

Why: numpy, pandas and Pillow release the GIL, so threads run them in
parallel and share results for free, while worker processes pay for writing
each result into fresh shared memory; pure-Python work holds the GIL and
only processes run it in parallel. Per graph, with ``W`` the expected task
time and ``H`` its GIL-held part (from the profile, mean x count per
function), threads win when ``H <= W / cores``: the GIL-bound part then
takes no longer than the whole would on every core. A graph whose tasks are
tiny (``A``, the sum of their typical run times) runs inline when
``A (1 - 1/cores) <= F + n p``: parallel running could not save more than
handing ``n`` tasks off costs (``HANDOFF_FIXED_S``, ``HANDOFF_PER_TASK_S``).
A function never seen runs on the processes (the safe default: isolation,
parallel pure Python), which measure it for next time.

Worker processes also pay for what the graph captured (the arrays and
frames passed into task calls): hashed into the constants cache here,
mapped and read by a worker, ``C`` seconds at ``CAPTURED_BYTES_PER_S``,
whatever the tasks do with it. So threads win when ``H <= W / cores + C``:
a pandas groupby holds the GIL for about half its run, which the cores
alone (``H <= W / 2``) put on the fence between threads and processes
from one measurement to the next, while shipping its 12 MB frame to a
worker (4 ms) costs as much as a second process saves of its 8 ms run.

Measurements are noisy on a loaded machine, so the choice made for a set of
functions is kept until the evidence against it is clear (``MARGIN``).

``@fd.task(gil=False)`` declares a function GIL-free (threads without
measuring it); ``gil=True`` keeps every graph that uses it on processes.

Until the worker processes have started (they announce themselves with an
"up" message), graphs meant for them run on threads, so a fresh
interpreter's first ``compute()`` does not wait for workers to boot; once
they are up, that graph's tasks of functions measured holding the GIL are
sent to them one by one (``offload``). The workers are started only when a
graph needs them (``lazystart.py``): one measured, or watched on the
threads, holding the GIL; GIL-releasing work never boots them.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..events import EventBus
from ..core.graph import ARGS_ARE_DEPS, DAG, NO_NODES, Task, map_nested
from ..core.gil import MIN_TASK_S, GilProfile, function_key
from ..core.records import END, INDEX, RAW_WIDTH, START
from ..core.plan import Plan, Ref
from ..core.runner import nbytes
from ..engine.executor import RunFuture
from .guarded import GuardedRun, GuardedThreads
from .inline import InlineRun
from .lazystart import LazyStart


INLINE, THREADS, PROCESSES = "inline", "threads", "processes"

# What handing a graph to the workers costs, measured on 2 cores (a 1-task
# graph: 0.5 ms; the 4,096-leaf tree: 17 ms, 4.2 us a task), rounded so that
# only graphs clearly cheaper to run here stay inline.
HANDOFF_FIXED_S = 0.001
HANDOFF_PER_TASK_S = 3e-6
# Hysteresis: a graph's functions keep the placement last chosen for them
# until the evidence against it is this much past the threshold (and a new
# placement is taken only when it is this much inside it), so measurement
# noise under load does not flip a workload between threads and processes.
MARGIN = 0.5
# Bytes a second into fresh shared memory (first touch), what a task sent to a
# worker pays for its inputs and result: measured on this VM (see
# ``predict/history.py``, which learns it per machine from run records).
SHIP_BYTES_PER_S = 0.45e9
# Bytes a second a graph's captured arguments cost a run on the workers once the
# constants cache holds them (``store/constants.py``: hashed here, mapped and
# read there): 16 DataFrames of 12 MB added 40-80 ms to a run on this VM. The
# first run, which writes them, pays more: counting this rate errs toward processes.
CAPTURED_BYTES_PER_S = 3e9


class Expected(NamedTuple):
    """A graph's predicted run, from the profile: summed task seconds and GIL-held seconds."""

    work: float
    held: float
    alone: float          # summed task seconds when no task waits for the GIL (typical_s)
    known: bool           # every function measured (the prediction covers the whole graph)
    measured: bool        # every function not declared gil=False measured
    declared_free: bool   # some function declared gil=False
    functions: frozenset  # the graph's functions (``function_key``): what a decision is kept for


def _threads_score(expected: Expected, workers: int, graph: DAG | Plan | None = None) -> float:
    """GIL-bound time over the processes' time (the whole on every core, plus shipping
    what ``graph`` captured): threads win at <= 1."""
    if not expected.measured:
        return math.inf
    if expected.work == 0.0:
        return 0.0 if expected.declared_free else math.inf
    captured = 0.0 if graph is None else _captured_s(graph)
    return expected.held / (expected.work / workers + captured)


def _captured_s(graph: DAG | Plan) -> float:
    """Seconds the worker processes would spend on the arguments ``graph`` captured
    (``CAPTURED_BYTES_PER_S``): what its tasks were called with besides other tasks'
    results, summed per task (each worker maps what its tasks read)."""
    if isinstance(graph, Plan):
        rows: Any = zip(graph.modes, graph.args, graph.kwargs)
    else:
        rows = ((n.mode, n.args, n.kwargs) for n in graph.nodes)
    size = 0
    for mode, args, kwargs in rows:
        if args and mode != ARGS_ARE_DEPS:
            size += nbytes(args)
        if kwargs:
            size += nbytes(tuple(kwargs.values()))
    return size / CAPTURED_BYTES_PER_S


def _inline_score(expected: Expected, tasks: int, workers: int) -> float:
    """What parallel running could save over what handing off costs: inline wins at <= 1."""
    if not expected.known:
        return math.inf
    return expected.alone * (1 - 1 / workers) / (HANDOFF_FIXED_S + tasks * HANDOFF_PER_TASK_S)


def _decide(inline: float, threads: Callable[[], float], previous: str | None) -> str:
    """The first placement whose score fits, with ``MARGIN`` of hysteresis around ``previous``.

    ``threads`` is called only when inline does not fit: it weighs the
    graph's captured data, which a graph run inline never needs to know.
    """
    def fits(score: float, where: str) -> bool:
        if previous is None:
            return score <= 1.0
        return score <= (1.0 + MARGIN if where == previous else 1.0 / (1.0 + MARGIN))
    if fits(inline, INLINE):
        return INLINE
    if fits(threads(), THREADS):
        return THREADS
    return PROCESSES


def _shipping_s(plan: Plan, i: int, values: list) -> float:
    """Seconds to send task ``i``'s inputs to a worker and a result as large back.

    Early in a fresh process, the GIL sampler competes with the booting
    workers for the CPU and can take a numpy task for a GIL-holding one:
    shipping its 16 MB blocks through fresh shared memory then costs more
    than running it here.
    """
    size = sum(nbytes(values[d]) for d in plan.deps[i])
    if plan.modes[i] != ARGS_ARE_DEPS:
        size += nbytes(plan.args[i])
        if plan.kwargs[i]:
            size += nbytes(tuple(plan.kwargs[i].values()))
    return 2 * size / SHIP_BYTES_PER_S


def _tasks_of(graph: DAG | Plan) -> list[Task]:
    """The Task of every node of ``graph``, in order (repeats included)."""
    return graph.tasks if isinstance(graph, Plan) else [n.task for n in graph.nodes]


def _functions(tasks: list[Task]) -> list[Callable]:
    """The distinct functions of ``tasks`` (Tasks hash by identity)."""
    return [t.func for t in dict.fromkeys(tasks)]


def _one_task_plan(plan: Plan, i: int, values: list) -> Plan:
    """Task ``i`` of ``plan`` alone, its inputs from ``values`` captured as arguments."""
    if plan.modes[i] == ARGS_ARE_DEPS:
        args, kwargs = tuple(values[d] for d in plan.deps[i]), None
    else:
        def lookup(ref: Ref) -> Any:
            return values[ref.i]
        args = map_nested(plan.args[i], Ref, lookup)
        kwargs = map_nested(plan.kwargs[i], Ref, lookup) if plan.kwargs[i] else None
    return Plan(tasks=[plan.tasks[i]], args=[args], kwargs=[kwargs], modes=[NO_NODES], deps=[()],
                dependents=[[]], outputs=[0], keys=[plan.keys[i]], wanted=bytearray(b"\1"),
                simple=bytearray(1), labels=[plan.name(i)] if plan.labels is not None else None)


class Placement:
    """Per-graph choice between worker processes and threads, learned per function."""

    def __init__(self, workers: int, settings: Callable[[], dict], events: EventBus | None = None,
                 submit: Callable[[Plan, bool], RunFuture] | None = None,
                 start: Callable[[list[Callable]], None] | None = None):
        self.workers = workers
        self._submit = submit  # the workers' own submit_plan, for tasks offloaded to them
        self.profile = GilProfile()
        self.threads = GuardedThreads(workers, self.profile, settings, events)
        # start(funcs): the workers', once a graph (of funcs) needs them (see lazystart.py)
        self.lazy = None if start is None else LazyStart(start, self.threads.sampler, workers)
        self._up: set[int] = set()
        self.ready = threading.Event()
        self._decisions: dict[frozenset, str] = {}  # the last placement per set of functions

    def on_threads(self, graph: DAG | Plan) -> bool:
        """Whether to run ``graph`` in this process (inline or on threads), not on the workers."""
        return self.where(graph) != PROCESSES

    def where(self, graph: DAG | Plan) -> str:
        """``INLINE``, ``THREADS`` or ``PROCESSES``: the rules of the module docstring.

        A Plan is a graph built without Nodes (a Dask graph, see bridges): its
        tasks are judged by the same rules, per function. The choice is
        remembered per set of functions (see ``MARGIN``); until the workers
        are up, a graph meant for them runs on threads, and nothing is remembered.
        """
        tasks = _tasks_of(graph)
        expected = self.expected(tasks)
        choice = _decide(_inline_score(expected, len(tasks), self.workers),
                         lambda: _threads_score(expected, self.workers, graph),
                         self._decisions.get(expected.functions))
        if choice == PROCESSES and not self.ready.is_set():
            declared = any(g for _f, g in expected.functions)  # gil=True
            if self.lazy is not None and (expected.measured or declared):
                self.lazy.now(_functions(tasks))  # measured GIL-bound, or declared: needed
            return THREADS
        if expected.known or expected.measured:
            self._decisions[expected.functions] = choice
        return choice

    def prefers_threads(self, graph: DAG | Plan) -> bool:
        """The threads-or-processes rule alone (no memory), from the functions' profiles."""
        return _threads_score(self.expected(_tasks_of(graph)), self.workers, graph) <= 1.0

    def expected(self, tasks: list[Task]) -> Expected:
        """What the profile predicts for these tasks (one entry per task, repeats included)."""
        counts = collections.Counter(tasks)  # Tasks hash by identity
        functions = frozenset((function_key(t.func), t.gil) for t in counts)
        work = held = alone = 0.0
        known, declared_free = True, False
        for task, count in counts.items():
            gil = getattr(task, "gil", None)
            stats = None if gil else self.profile.get(task.func)
            if gil is False:
                declared_free = True
                known = known and stats is not None and stats.runs > 0
                if stats is not None:
                    work += count * stats.mean_s
                    alone += count * stats.typical_s
                continue
            if stats is None or not stats.runs:
                return Expected(work, held, alone, False, False, declared_free, functions)
            fraction = stats.held_fraction
            work += count * stats.mean_s
            alone += count * stats.typical_s
            held += count * stats.mean_s * (1.0 if fraction is None else fraction)
        return Expected(work, held, alone, known, True, declared_free, functions)

    def run_on_threads(self, graph: DAG | Plan, single: bool, name: str = "",
                       before: Callable[[RunFuture], Any] | None = None) -> RunFuture:
        """Start ``graph`` on the threads (``before(future)`` first, see ``threads.start``);
        started before the workers are up, its GIL-holding tasks move to them once they
        are (``offload``)."""
        early = self._submit is not None and not self.ready.is_set()
        future = self.threads.start(graph, single, name, before,
                                    offload=self.offload if early else None)
        if early and self.lazy is not None:
            self.lazy.watch(future, _functions(_tasks_of(graph)))  # started if it holds the GIL
        return future

    def offload(self, run: GuardedRun, i: int) -> RunFuture | None:
        """Task ``i`` of a graph started on threads before the workers were up, sent to one
        now that they are, if its function was measured (on those threads) holding the GIL
        for more than the threads can overlap and running long enough to sample; else None.

        Its inputs are pickled to the worker, so nothing here sees what it changes.
        """
        if not self.ready.is_set():
            return None
        plan = run.plan
        task = plan.tasks[i]
        stats = None if task.gil is False else self.profile.get(task.func)
        if stats is None or stats.typical_s < MIN_TASK_S:
            return None
        fraction = stats.held_fraction
        if task.gil is not True and (fraction is None or fraction * self.workers <= 1.0):
            return None
        if _shipping_s(plan, i, run.values) > stats.typical_s * (1 - 1 / self.workers):
            return None  # more to ship than the overlap would save
        return self._submit(_one_task_plan(plan, i, run.values), True)

    def run_inline(self, graph: DAG | Plan, single: bool, name: str = "") -> RunFuture:
        """Run ``graph`` to its end in this thread (see ``inline.py``); its resolved future."""
        return self.threads.run_inline(graph, single, name, InlineRun)

    def from_worker(self, wid: int, msg: tuple, runs: dict[int, Any]) -> None:
        """A worker's ("up",) or ("gil", run, [task, wall, held, ...], windows) message;
        ``windows``: the same triples for the sums of a function's short runs."""
        if msg[0] == "up":
            self._up.add(wid)
            if len(self._up) >= self.workers:
                self.ready.set()
            return
        run = runs.get(msg[1])
        if run is None:
            return
        tasks, samples = run.plan.tasks, msg[2]
        for k in range(0, len(samples), 3):
            self.profile.record(tasks[int(samples[k])].func, samples[k + 1], samples[k + 2])
        windows = msg[3] if len(msg) > 3 else ()
        for k in range(0, len(windows), 3):
            self.profile.record_window(tasks[int(windows[k])].func, windows[k + 1],
                                       windows[k + 2])

    def learn_run(self, plan: Plan, records: list[tuple[str, Any]]) -> None:
        """Run times of the tasks no worker sampled (shorter than ``MIN_TASK_S``), from a
        finished run's records, so a function's profile follows it wherever it runs.
        """
        blocks = [np.asarray(block, dtype=np.float64) for _worker, block in records]
        if not blocks:
            return
        table = np.concatenate(blocks).reshape(-1, RAW_WIDTH)
        durations = table[:, END] - table[:, START]
        short = durations < MIN_TASK_S
        tasks = plan.tasks
        self.profile.record_tasks([tasks[int(i)] for i in table[short, INDEX]], durations[short])
    def shutdown(self, wait: bool = True) -> None:
        if self.lazy is not None:
            self.lazy.close()
        self.threads.shutdown(wait=wait)
