"""fd.task(f) called again returns the same Task, so wrapping at each call plans like wrapping once."""

from __future__ import annotations

import gc
import operator
import pickle

import fastdag as fd
from fastdag.core.graph import _task_cache
from fastdag.core.plan import build_plan


def add(a, b):
    return a + b


def test_same_function_and_options_give_one_task():
    assert fd.task(add) is fd.task(add)
    assert fd.task(operator.add) is fd.task(operator.add)
    assert fd.task(sum) is fd.task(sum)
    assert fd.task(add, retries=2) is fd.task(add, retries=2)
    assert fd.task(add, retries=2) is not fd.task(add)
    assert fd.task(add, name="plus") is not fd.task(add)
    assert fd.task(add, gil=False) is not fd.task(add)
    assert fd.task(name="plus")(add) is fd.task(add, name="plus")


def test_lambdas_written_at_each_call_share_a_task():
    tasks = [fd.task(lambda a, b: a + b) for _ in range(3)]
    assert tasks[0] is tasks[1] is tasks[2]
    assert fd.compute(tasks[2](1, 2))[0] == 3


def test_closures_and_defaults_are_told_apart():
    def make(k):
        return lambda x: x + k

    assert fd.task(make(1)) is not fd.task(make(2))
    assert fd.compute(fd.task(make(1))(10), fd.task(make(2))(10), executor=fd.SyncExecutor()) == (11, 12)
    first = fd.task(lambda x, k=1: x + k)
    second = fd.task(lambda x, k=2: x + k)
    assert first is not second


def test_unused_tasks_are_dropped():
    def build():
        f = eval("lambda x: x * 3")  # a new code object, held by no one else
        return fd.task(f)

    gc.collect()  # tasks of earlier tests nobody holds any more go first
    before = len(_task_cache)
    t = build()
    assert len(_task_cache) == before + 1
    del t
    gc.collect()
    assert len(_task_cache) == before


def test_per_call_wrapping_plans_and_pickles_like_one_wrapper():
    def tree(wrap):
        items = list(range(64))
        while len(items) > 1:
            items = [wrap(items[k], items[k + 1]) for k in range(0, len(items), 2)]
        return items[0]

    once = fd.task(add)
    per_call = build_plan(tree(lambda a, b: fd.task(add)(a, b)).dag)
    wrapped_once = build_plan(tree(once).dag)
    assert len({id(t) for t in per_call.tasks}) == 1
    assert len(pickle.dumps(per_call)) == len(pickle.dumps(wrapped_once))


def _with_defaults(a, b=1, *rest):
    return a + b + sum(rest)


def _keyword_only(a, *, k):
    return a + k


def test_wrong_calls_still_fail_at_call_time_after_the_arity_is_known():
    keep = [fd.task(f) for f in (operator.add, sum, _with_defaults, _keyword_only)]
    for _ in range(2):  # the second round takes the cached arity
        keep[0](1, 2), keep[1]([1]), keep[2](1), keep[2](1, 2, 3), keep[3](1, k=2)
        for task, args in ((keep[0], (1,)), (keep[1], (1, 2, 3)), (keep[2], ()), (keep[3], (1,))):
            try:
                task(*args)
            except TypeError as exc:
                assert task.name in str(exc)
            else:
                raise AssertionError(f"{task.name}{args} did not raise")


def test_the_options_are_checked_and_named_as_before():
    import inspect
    assert fd.task(func=add) is fd.task(add)
    assert list(inspect.signature(fd.task).parameters) == [
        "func", "name", "retries", "nout", "requires", "gil"]
    try:
        fd.task(add, colour="red")
    except TypeError as exc:
        assert "task()" in str(exc) and "colour" in str(exc)
    else:
        raise AssertionError("an unknown option was accepted")
    assert fd.task(add, retries=0) is fd.task(add)  # the defaults spelled out: the same Task


def test_same_code_in_other_globals_or_with_attributes_is_another_task():
    source = "lambda x: x + offset"
    one = eval(source, {"offset": 1})
    two = eval(source, {"offset": 2})
    assert one.__code__ == two.__code__
    first, second = fd.task(one), fd.task(two)
    assert first is not second
    assert fd.task(eval(source, one.__globals__)) is first  # same globals: the same task
    tagged = eval(source, one.__globals__)
    tagged.note = "kept"
    assert fd.task(tagged) is not first
    executor = fd.SyncExecutor()
    assert fd.compute(first(10), second(10), executor=executor) == (11, 12)
