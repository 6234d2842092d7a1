"""The task step both worker kinds share (fastdag/engine/step.py), without processes."""

from __future__ import annotations

import operator
import pickle
import threading

import pytest

import fastdag as fd
from fastdag.core import graph, records
from fastdag.engine.step import TaskFailed, failure_bytes, retry_task, run_task, unsendable
from fastdag.core.plan import build_plan
from fastdag.core.runner import SentFailure, received_error


@fd.task
def add(a, b):
    return a + b


def test_run_task_calls_with_the_values_of_its_inputs():
    node = add(add(1, 2), 10)
    plan = build_plan(node.dag)
    inner = plan.deps[len(plan) - 1][0]
    assert run_task(plan, len(plan) - 1, {inner: 3}) == (13, 1)


def test_retries_read_fresh_values_and_count_attempts():
    seen = []

    @fd.task(retries=2)
    def pop_twice(xs):
        seen.append(list(xs))
        xs.pop()
        if len(seen) < 3:
            raise RuntimeError("not yet")
        return len(xs)

    plan = build_plan(pop_twice(add(1, 2)).dag)
    i = len(plan) - 1
    d = plan.deps[i][0]
    used = {d: [1, 2, 3]}

    class Fresh(dict):
        def __missing__(self, key):
            return [1, 2, 3]  # a new copy per read, as a worker's store hands out

    assert run_task(plan, i, used, Fresh()) == (2, 3)
    assert seen == [[1, 2, 3]] * 3


def test_a_failure_keeps_the_users_frames_only():
    @fd.task(retries=1)
    def explode(x):
        raise ValueError(f"boom {x}")

    plan = build_plan(explode(add(1, 2)).dag)
    i = len(plan) - 1
    with pytest.raises(TaskFailed) as info:
        run_task(plan, i, {plan.deps[i][0]: 3})
    failure = info.value.failure
    assert failure.index == i and failure.attempts == 2
    assert "boom 3" in failure.traceback and "in explode" in failure.traceback
    assert "engine/step.py" not in failure.traceback
    assert "fastdag/core/runner.py" not in failure.traceback and "During handling" not in failure.traceback


def test_system_exit_is_the_tasks_failure_and_not_retried():
    calls = []

    @fd.task(retries=3)
    def leave():
        calls.append(1)
        raise SystemExit(3)

    plan = build_plan(leave().dag)
    with pytest.raises(TaskFailed) as info:
        run_task(plan, 0, {})
    assert calls == [1] and isinstance(info.value.failure.exc, SystemExit)


def test_retry_after_a_workers_own_first_call():
    plan = build_plan(add(1, 2).dag)
    with pytest.raises(TaskFailed) as info:  # no retries: the first error is the failure
        retry_task(plan, 0, {}, KeyError("first"))
    assert info.value.failure.attempts == 1 and "KeyError" in info.value.failure.traceback


def test_an_unsendable_result_fails_its_task_and_the_failure_always_loads():
    plan = build_plan(add(1, 2).dag)
    lock = threading.Lock()
    try:
        pickle.dumps(lock)
    except TypeError as exc:
        failed = unsendable(plan, 0, lock, exc, "through Redis")
    err = failed.failure.exc
    assert isinstance(err, fd.SerializationError)
    assert str(err).startswith(f"the result of task {plan.name(0)!r} cannot be sent through Redis: ")

    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("no")

    failed.failure.exc = Unpicklable("x")  # its own reduce fails: rebuilt by its fields
    rebuilt = received_error("add", pickle.loads(failure_bytes(failed.failure))).__cause__
    assert type(rebuilt) is Unpicklable and rebuilt.args == ("x",)

    failed.failure.exc = Unpicklable(lock)  # nothing of it pickles: described instead
    sent = pickle.loads(failure_bytes(failed.failure))
    assert isinstance(sent, SentFailure) and sent.exc == b"" and sent.type_name.endswith("Unpicklable")
    assert "could not be pickled" in str(received_error("add", sent))


def test_raw_field_positions_match_their_names():
    named = {f: getattr(records, f.upper()) for f in records.RAW_FIELDS}
    assert [named[f] for f in records.RAW_FIELDS] == list(range(records.RAW_WIDTH))


def test_node_modes_are_named():
    a, b = add(1, 2), add(3, 4)
    assert a.mode == graph.NO_NODES
    assert add(a, b).mode == graph.ARGS_ARE_DEPS
    assert add(a, b=3).mode == graph.TOP_LEVEL
    assert add([a, b], 1).mode == graph.NESTED


def test_guarded_and_private_copy_flat_containers_of_numbers_once():
    from fastdag.core.guard import guarded, private
    for copy in (guarded, private):
        flat, nested, named = [1, 2.0, "x"], ([1], (2, 3), {"k": [4]}), {1, 2}
        for value in (flat, nested, named):
            out = copy(value)
            assert out == value and out is not value
        inner = copy(nested)
        inner[0].append(5)
        inner[2]["k"].append(6)
        assert nested == ([1], (2, 3), {"k": [4]})
        assert copy((1, "a")) == (1, "a")  # immutable: may be itself


def test_a_plans_consumers_are_worked_out_from_its_deps_when_first_read():
    a = fd.task(operator.add)(1, 2)
    b = fd.task(operator.add)(a, 3)
    c = fd.task(operator.add)(a, b)
    plan = build_plan(graph.DAG([c, a]))
    assert plan.refcounts() == [3, 1, 1]  # a: read by b and c, and wanted
    assert plan.dependents == [[1, 2], [2], []]
    assert plan.refcounts() == [3, 1, 1]
    again = pickle.loads(pickle.dumps(plan))
    assert again.dependents == [[1, 2], [2], []] and again.deps == plan.deps
