"""The planner from history: cost fits, the simulator's arithmetic, a real prediction."""

from __future__ import annotations

import sys
import time

import pytest

import fastdag as fd
from fastdag.cli import main
from fastdag.predict.forecast import forecast
from fastdag.predict.history import (CostModel, FunctionModel, Line, Overheads, fit, ready_gaps,
                             robust_line, select_runs)
from fastdag.metrics.runs import RunRecord, RunReport, TaskRecord


@fd.task
def work(i):
    return i


@fd.task
def join(*parts):
    return sum(parts)


@fd.task
def nap(i, seconds):
    time.sleep(seconds)
    return i


def fan_in(n: int = 4):
    return join(*[work(i) for i in range(n)])


def model_of(**functions: tuple[float, float]) -> CostModel:
    """A cost model with flat costs: name -> (seconds, output bytes)."""
    return CostModel(functions={name: FunctionModel(Line(s), Line(b), 1)
                                for name, (s, b) in functions.items()},
                     overheads=Overheads(per_task_s=0.01, per_run_s=0.2, store_bytes_per_s=1e8))


def record(function: str, worker: str, start: float, end: float, index: int = -1,
           deps: tuple[int, ...] = (), input_bytes: int = 0, output_bytes: int = 0,
           store_s: float = 0.0, queued_s: float = 0.0) -> TaskRecord:
    return TaskRecord(run_id="r", task_key=f"{function}-{index}", function=function,
                      worker=worker, start=start, end=end, exec_s=end - start - store_s,
                      input_bytes=input_bytes, output_bytes=output_bytes, fetch_s=0.0,
                      store_s=store_s, queued_s=queued_s, retries=0, index=index, deps=deps)


def report_of(tasks: list[TaskRecord], workers: int, start: float, makespan: float) -> RunReport:
    run = RunRecord(run_id="r", workflow="w", executor="local",
                    settings={"workers": workers, "blas_threads": max(1, 2 // workers)},
                    start=start, makespan=makespan, tasks=len(tasks))
    return RunReport(run=run, _tasks=tasks)


def test_simulation_arithmetic_one_and_two_workers():
    # 4 x work (1 s, 1 MB out) then join (0.5 s); 10 ms per task, 0.2 s per run, 100 MB/s.
    model = model_of(work=(1.0, 1e6), join=(0.5, 0.0))
    one = forecast(fan_in(), 1, model)
    assert one.makespan == pytest.approx(4 * 1.01 + 0.51 + 0.2)  # all local: nothing stored
    two = forecast(fan_in(), 2, model)
    # Two rounds of two, then the join where the last input ended: the two
    # inputs made on the other worker are stored first, 1 MB / 100 MB/s each.
    assert two.makespan == pytest.approx(2 * 1.01 + 0.51 + 2 * 0.01 + 0.2)
    assert sorted(len([s for s in two.slots if s.worker == w]) for w in (0, 1)) == [2, 3]
    assert two.critical_path_s() == pytest.approx(1.5)
    assert two.worker_busy()[0] + two.worker_busy()[1] == pytest.approx(4 * 1.01 + 0.53)


def test_a_chain_stays_on_one_worker_and_a_wanted_output_is_stored():
    chain = work(0)
    for _ in range(4):
        chain = work(chain)
    fc = forecast(chain, 3, model_of(work=(0.1, 5e6)))
    assert {s.worker for s in fc.slots} == {fc.slots[0].worker}
    # Only the last task's output is wanted: 5 MB / 100 MB/s stored once.
    assert fc.makespan == pytest.approx(5 * 0.11 + 0.05 + 0.2)


def test_unseen_functions_cost_the_default_and_are_named():
    fc = forecast(fan_in(), 2, model_of(work=(1.0, 0.0)))
    assert fc.unknown_functions() == ["join"]
    assert fc.costs[-1].time_s == CostModel.default.time_s(0)
    runs = [report_of([record("work", "a", 0.0, 0.3), record("work", "a", 0.3, 0.4),
                       record("other", "a", 0.4, 1.4)], 1, 0.0, 1.4)]
    model = fit(runs, 1)
    assert model.of("never").time_s(0) == pytest.approx(0.3)  # the median task of history


def test_robust_line_fits_a_slope_only_over_a_wide_range():
    x = [1e6, 1e6, 1e6, 4e6, 4e6, 4e6, 1e7, 1e7, 1e7]
    y = [0.01 + 1e-9 * v for v in x]
    y[1] += 0.9  # one slow run: the slope stays, the mean moves the intercept a little
    line = robust_line(x, y)
    assert line.slope == pytest.approx(1e-9)
    assert line(2e7) == pytest.approx(0.03 + 0.9 / 9)
    narrow = robust_line([1e6, 1.1e6, 1.2e6, 1.3e6], [1.0, 5.0, 0.5, 2.0])
    assert narrow.slope == 0.0 and narrow(1e9) == pytest.approx(2.125)
    falling = robust_line([1.0, 10.0, 100.0, 1000.0], [4.0, 3.0, 2.0, 1.0])
    assert falling.slope == 0.0


def test_overheads_from_records():
    # Worker a: t0 0.0-1.0; t1 (no inputs: ready) 1.5-2.0: a gap of 0.5 before an f;
    # t2 waits for t3 on worker b (ends 3.0), starts 3.2: a wait, not a gap; g t5
    # ready, starts 0.3 after t2. Worker b: t3 1.0-3.0 (1 MiB stored in 4 ms); t4
    # waits for t2; its small output does not count for the store rate.
    tasks = [record("f", "a", 0.0, 1.0, 0), record("f", "a", 1.5, 2.0, 1),
             record("f", "a", 3.2, 3.5, 2, deps=(3,)),
             record("f", "b", 1.0, 3.0, 3, output_bytes=2**20, store_s=0.004),
             record("h", "b", 3.5, 3.6, 4, deps=(2,), output_bytes=1000, store_s=0.05),
             record("g", "a", 3.8, 3.9, 5), record("g", "a", 3.9, 4.0, 6)]
    assert [(t.index, g) for t, g in ready_gaps(tasks)] == \
        [(1, pytest.approx(0.5)), (5, pytest.approx(0.3)), (6, 0.0)]
    model = fit([report_of(tasks, 2, start=-0.1, makespan=4.2)], 2)
    assert model.overheads.per_task_s == pytest.approx(0.3)  # median of 0.5, 0.3, 0
    assert model.gap_s("f") == pytest.approx(0.5)
    assert model.gap_s("g") == pytest.approx(0.15)
    assert model.gap_s("h") == model.gap_s("never seen") == pytest.approx(0.3)
    assert model.overheads.per_run_s == pytest.approx(0.1 + 0.1)
    assert model.overheads.store_bytes_per_s == pytest.approx(2 ** 20 / 0.004)
    cold = report_of([record("f", "a", 1.5, 2.0, 0)], 2, start=0.0, makespan=2.0)
    assert fit([report_of(tasks, 2, -0.1, 4.2), cold], 2).overheads.per_run_s == \
        pytest.approx(0.2)  # a first run that started the workers is not the rule


def test_each_function_pays_its_own_gap():
    model = model_of(work=(1.0, 0.0), join=(0.5, 0.0))
    model.functions["work"] = FunctionModel(Line(1.0), Line(0.0), 1, gap_s=0.1)
    # work: 0.1 + 1.0 each; join: the machine's 10 ms.
    assert forecast(fan_in(), 1, model).makespan == pytest.approx(4 * 1.1 + 0.51 + 0.2)


def test_history_of_the_same_worker_count_is_preferred():
    one = report_of([record("f", "a", 0, 1)], 1, 0, 1)
    two = report_of([record("f", "a", 0, 2)], 2, 0, 2)
    assert select_runs([one, two], 2) == [two]
    assert select_runs([one, two], 8) == [two]  # one BLAS thread per worker
    assert fit([one, two], 1).of("f").time_s(0) == pytest.approx(1.0)


def test_prediction_from_real_history_of_a_sleep_graph():
    def graph():
        sleeps = [nap(i, 0.08) for i in range(6)]
        return join(*[nap(s, 0.06) for s in sleeps])

    history = fd.MemorySink()
    with fd.LocalExecutor(workers=2) as ex:
        for _ in range(2):
            fd.compute(graph(), executor=ex, metrics=history)
        predicted = forecast(graph(), 2, history.read()).makespan
        start = time.perf_counter()
        fd.compute(graph(), executor=ex)
        measured = time.perf_counter() - start
    # 6 x 0.14 s of sleeping over 2 workers: 0.42 s at best; generous bounds, a busy machine.
    assert 0.4 < predicted < 1.0
    assert 0.6 < predicted / measured < 1.6


def test_plan_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_graphs.py").write_text(
        "import fastdag as fd\n"
        "def build():\n"
        "    return [fd.task(abs)(-i) for i in range(5)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plan", "my_graphs:build", "--workers", "1", "3", "--tasks"]) == 0
    out = capsys.readouterr().out
    assert "on 1 workers (5 tasks" in out and "on 3 workers" in out
    assert "never seen" in out and "worker 2:" in out
    assert main(["plan", "tree_reduction", "--size", "leaves=16", "--workers", "2"]) == 0
    assert "15 tasks" in capsys.readouterr().out
    assert main(["plan", "no_such_workload"]) == 2
    assert main(["plan", "my_graphs:missing"]) == 2
    assert main(["plan", "gemm", "--history", str(tmp_path / "none.parquet")]) == 2
    assert "error" in capsys.readouterr().err
    assert "predicted makespan" in fd.plan_report(fan_in(), workers=2)
    sys.modules.pop("my_graphs", None)
