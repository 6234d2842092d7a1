"""The local scheduler's bookkeeping (executors/schedstate.py), without processes."""

from __future__ import annotations

import fastdag as fd
from fastdag.executors.schedstate import SchedulerState
from fastdag.core.plan import build_plan


@fd.task
def add(a, b):
    return a + b


@fd.task
def total(*xs):
    return sum(xs)


def diamond():
    """a, b -> ab = add(a, b); ab feeds c1, c2 (a fan-out) -> wanted sum; indices by name."""
    a, b = add(1, 2), add(3, 4)
    ab = add(a, b)
    c1, c2 = add(ab, 1), add(ab, 2)
    plan = build_plan(total(c1, c2).dag)
    index = {key: i for i, key in enumerate(plan.keys)}
    return plan, [index[n.key] for n in (a, b, ab, c1, c2)]


def test_sources_are_ready_and_taken_once():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    assert state.is_active() and state.ready_count() == 2
    assert sorted(state.take(0, 1) + state.take(1, 5)) == sorted([a, b])
    assert state.take(0, 5) == [] and state.ready_count() == 0


def test_a_consumer_is_ready_when_its_last_input_is_reported():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    state.take(0, 2)
    state.report(0, [a], [a], [], final=False)
    assert state.ready_count() == 0          # ab still waits for b
    state.report(1, [b], [b], [], final=True)
    assert state.local[1] and state.take(0, 5) == [ab]   # W1's queue, taken by idle W0
    state.report(0, [ab], [ab], [], final=False)
    assert sorted(state.ready) == sorted([c1, c2])       # mid-batch: shared queue


def test_final_reports_keep_the_work_where_its_input_landed():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    state.report(3, [a, b], [a, b], [], final=True)
    assert list(state.local[3]) == [ab]
    assert state.take(3, 1) == [ab]


def test_claimed_consumers_are_not_handed_out_and_come_back_if_the_worker_dies():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    state.take(0, 2)
    state.report(0, [a, b, ab], [ab], [c1], final=False)
    assert list(state.ready) == [c2] and state.claims == {c1: 0}
    state.take(1, 1)
    state.give_back(0, [])
    assert list(state.ready) == [c1] and not state.claims


def test_a_dead_workers_batch_is_ready_again_except_what_it_reported():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    batch = state.take(0, 2)
    state.report(0, [a], [a], [], final=False)
    state.give_back(0, batch)
    assert list(state.ready) == [b]


def test_reader_counts_free_a_result_after_its_last_read():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    state.report(0, [a, b, ab], [ab], [], final=False)
    assert state.count_readers([ab]) == [] and state.refcount == {ab: 2}
    assert state.read([ab]) == [] and state.read([ab, a]) == [ab]
    assert state.refcount == {}


def test_a_result_nobody_will_read_is_freed_at_once_unless_wanted():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    state.report(0, [a, b, ab, c1, c2], [], [], final=False)
    assert state.count_readers([ab]) == [ab]       # both consumers ran already
    last = len(plan) - 1                           # the caller wants the sum: one reader
    assert state.count_readers([last]) == [] and state.refcount == {last: 1}


def test_is_active_until_every_task_is_reported():
    plan, tasks = diamond()
    state = SchedulerState(plan=plan)
    state.report(0, list(range(len(plan) - 1)), [], [], final=True)
    assert state.is_active()
    state.report(0, [len(plan) - 1], [], [], final=True)
    assert not state.is_active()


def test_a_claim_whose_inputs_were_not_reported_does_not_come_back_ready():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    state.take(0, 2)
    state.report(0, [a, b], [], [ab], final=False)   # ab's inputs stayed on worker 0
    state.give_back(0, [])
    assert state.ready_count() == 0 and not state.claims


def test_tasks_given_back_to_a_steal_request_go_first_and_are_no_longer_claimed():
    plan, (a, b, ab, c1, c2) = diamond()
    state = SchedulerState(plan=plan)
    state.take(0, 2)
    state.report(0, [a, b, ab], [ab], [c1, c2], final=False)  # W0 queued both consumers
    state.ready.append(99)
    state.returned(0, [c2])
    assert state.claims == {c1: 0} and list(state.ready) == [c2, 99]
    assert state.take(1, 1) == [c2]
