"""What earlier runs say about the next one: per-function cost models from metrics.

Flow::

    Parquet / Redis / RunReports --load--> runs --select(workers)--> TaskRecords
        --fit per function--> FunctionModel (time, output bytes, gap before it)
        --fit per machine---> Overheads (gap, per run, store bandwidth)
                                    |
                                    v
                           CostModel (what forecast.py simulates with)

Policy, in the order it is applied:

1. Runs are chosen for the worker count asked about: runs with exactly that
   many workers if history has any (a numpy task's time depends on how many
   BLAS threads its worker got and on how many neighbours share the cores),
   else runs with one BLAS thread per worker (one worker per core: the
   closest to a bigger machine), else every run.
2. Per function, execution time (``exec_s``: without fetching inputs or
   storing the output) and output bytes are each fitted against the task's
   input bytes with a Theil-Sen line (the median of pairwise slopes, so one
   slow outlier cannot tilt it) when the function was seen with at least
   ``MIN_FIT`` records over input sizes a factor ``MIN_SPREAD`` apart;
   otherwise their mean (see ``robust_line``). Its ``gap_s`` is the mean
   idle time of a worker just before one of its tasks that was ready (its
   inputs had all ended before the worker's previous task did): the
   engine's own cost of moving on to it, bookkeeping and, when the task
   came in a new batch, a round trip through the scheduler. Functions
   differ (a block product waits for the previous block's output to be
   stored and reported; a tile filter continues in the same batch), so the
   gap is learnt per function; one never measured gets ``per_task_s``.
3. A function never seen before costs the median execution time and output
   size of all the tasks in the selected history (``DEFAULT_TIME_S`` and 0 bytes
   when there is no history at all).
4. Machine constants: ``per_task_s``, the median of all those gaps;
   ``per_run_s``, the lower median of the time from submit to the first task
   plus from the last task to the run's end (the lower one: an executor's
   first run also starts its workers, a one-off a warm run does not pay);
   ``store_bytes_per_s``, the bytes of outputs of ``STORE_FIT_MIN`` bytes or
   more over the seconds spent storing them (serialising into shared
   memory, first touch; small outputs cost a fixed time, not a rate).
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..metrics.runs import RunReport, TaskRecord

MIN_FIT = 4
MIN_SPREAD = 2.0
STORE_FIT_MIN = 1 << 20
DEFAULT_TIME_S = 0.001
DEFAULT_STORE_BYTES_PER_S = 0.45e9  # first-touch rate of fresh shared memory measured here


@dataclass(frozen=True)
class Line:
    """``y = intercept + slope * x``, clipped at zero: a cost as a function of input bytes."""

    intercept: float
    slope: float = 0.0

    def __call__(self, x: float) -> float:
        return max(0.0, self.intercept + self.slope * x)


@dataclass(frozen=True)
class FunctionModel:
    """Predicted execution seconds and output bytes of one function, from ``samples`` records."""

    time_s: Line
    output_bytes: Line
    samples: int
    gap_s: float | None = None  # None: not measured, the machine's per_task_s applies


@dataclass(frozen=True)
class Overheads:
    """The machine's costs that are not any task's own work (see the module docstring)."""

    per_task_s: float = 0.0
    per_run_s: float = 0.0
    store_bytes_per_s: float = DEFAULT_STORE_BYTES_PER_S


@dataclass
class CostModel:
    """Per-function models plus the fallbacks and machine constants, for one worker count."""

    functions: dict[str, FunctionModel] = field(default_factory=dict)
    default: FunctionModel = FunctionModel(Line(DEFAULT_TIME_S), Line(0.0), 0)
    overheads: Overheads = Overheads()
    runs: int = 0  # how many runs the model was fitted from

    def of(self, function: str) -> FunctionModel:
        """The model of ``function``, or the default for a function never seen."""
        return self.functions.get(function, self.default)

    def gap_s(self, function: str) -> float:
        """The engine's idle time before a task of ``function`` (policy 2)."""
        gap = self.of(function).gap_s
        return self.overheads.per_task_s if gap is None else gap

    def known(self, function: str) -> bool:
        return function in self.functions


def load_history(source: str | os.PathLike[str] | Iterable[RunReport] | None) -> list[RunReport]:
    """Runs from a metrics path or URL (``fd.load_metrics``), a list of reports, or none.

    Only the runs that finished: a failed or cancelled run's makespan and
    overheads describe part of a graph.
    """
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike)):
        from ..metrics.sinks import load_metrics
        source = load_metrics(source)
    return [r for r in source if r.run.state == "done"]


def select_runs(runs: Sequence[RunReport], workers: int) -> list[RunReport]:
    """The runs that best describe a run on ``workers`` workers (policy 1)."""
    same = [r for r in runs if r.run.settings.get("workers") == workers]
    if same:
        return same
    per_core = [r for r in runs if r.run.settings.get("blas_threads") == 1]
    return per_core or list(runs)


def fit(runs: Sequence[RunReport], workers: int) -> CostModel:
    """The cost model for a run on ``workers`` workers, learnt from ``runs``."""
    chosen = [r for r in select_runs(runs, workers) if r.tasks]
    by_function: dict[str, list[TaskRecord]] = defaultdict(list)
    for report in chosen:
        for t in report.tasks:
            by_function[t.function].append(t)
    gaps: dict[str, list[float]] = defaultdict(list)
    for report in chosen:
        for task, gap in ready_gaps(report.tasks):
            gaps[task.function].append(gap)
    models = {name: fit_function(records, gaps.get(name))
              for name, records in by_function.items()}
    every = [t for records in by_function.values() for t in records]
    default = (FunctionModel(Line(statistics.median(t.exec_s for t in every)),
                             Line(float(statistics.median(t.output_bytes for t in every))), 0)
               if every else CostModel.default)
    every_gap = [g for found in gaps.values() for g in found]
    return CostModel(functions=models, default=default,
                     overheads=measure_overheads(chosen, every_gap), runs=len(chosen))


def fit_function(records: Sequence[TaskRecord],
                 gaps: Sequence[float] | None = None) -> FunctionModel:
    """Time and output size of one function against its input bytes, its gap (policy 2)."""
    x = [float(t.input_bytes) for t in records]
    return FunctionModel(time_s=robust_line(x, [t.exec_s for t in records]),
                         output_bytes=robust_line(x, [float(t.output_bytes) for t in records]),
                         samples=len(records), gap_s=statistics.fmean(gaps) if gaps else None)


def robust_line(x: Sequence[float], y: Sequence[float]) -> Line:
    """``y`` against ``x``: a Theil-Sen slope, or flat when ``x`` barely varies.

    The slope is the median of the slopes between the input sizes seen (one
    point per size, its median), used only when the sizes span a factor of
    ``MIN_SPREAD`` at least and the slope is not negative: over a narrow
    range, noise in the times makes any slope, and extrapolating it to
    another size gives nonsense. The intercept makes the line pass through
    the mean, not the median: a makespan adds the times up, and on a shared
    machine the slow runs are part of what a task costs. At most 2,000
    points are used (evenly spaced), so a function run 100,000 times is
    fitted in a few milliseconds.
    """
    if len(x) > 2000:
        step = len(x) / 2000
        picks = [int(k * step) for k in range(2000)]
        x, y = [x[k] for k in picks], [y[k] for k in picks]
    flat = Line(statistics.fmean(y))
    if len(x) < MIN_FIT:
        return flat
    groups: dict[float, list[float]] = defaultdict(list)
    for xi, yi in zip(x, y):
        groups[xi].append(yi)
    xs = sorted(groups)
    if len(xs) < 2 or xs[-1] < MIN_SPREAD * max(xs[0], 1.0):
        return flat
    centres = [(xi, statistics.median(groups[xi])) for xi in xs]
    slope = statistics.median((y2 - y1) / (x2 - x1) for k, (x1, y1) in enumerate(centres)
                              for x2, y2 in centres[k + 1:])
    if slope <= 0:
        return flat
    return Line(statistics.fmean(yi - slope * xi for xi, yi in zip(x, y)), slope)


def measure_overheads(runs: Sequence[RunReport], gaps: Sequence[float]) -> Overheads:
    """The machine constants of policy 4, from the runs and their ``ready_gaps``."""
    ends: list[float] = []
    stored_bytes = 0
    store_s = 0.0
    for report in runs:
        tasks = report.tasks
        first = min(t.start for t in tasks)
        last = max(t.end for t in tasks)
        ends.append(max(0.0, first - report.run.start)
                    + max(0.0, report.run.start + report.run.makespan - last))
        for t in tasks:
            if t.store_s > 0 and t.output_bytes >= STORE_FIT_MIN:
                stored_bytes += t.output_bytes
                store_s += t.store_s
    bandwidth = stored_bytes / store_s if store_s > 0 and stored_bytes else DEFAULT_STORE_BYTES_PER_S
    return Overheads(per_task_s=statistics.median(gaps) if gaps else 0.0,
                     per_run_s=statistics.median_low(ends) if ends else 0.0,
                     store_bytes_per_s=bandwidth)


def ready_gaps(tasks: Sequence[TaskRecord]) -> list[tuple[TaskRecord, float]]:
    """Each task that was ready when its worker's previous task ended, and the
    worker's idle time before it.

    A task is ready once its last input ended; a gap it did not have to wait
    for is the engine's own cost of moving on to it.
    """
    end_of = {t.index: t.end for t in tasks}
    on_worker: dict[str, list[TaskRecord]] = defaultdict(list)
    for t in tasks:
        on_worker[t.worker].append(t)
    found = []
    for mine in on_worker.values():
        mine.sort(key=lambda t: t.start)
        for before, after in zip(mine, mine[1:]):
            ready = max((end_of.get(d, 0.0) for d in after.deps), default=0.0)
            if ready <= before.end:
                found.append((after, max(0.0, after.start - before.end)))
    return found
