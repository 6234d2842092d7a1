"""Edges of users' own code found by trying fastdag as a new user would.

Each test is a thing a user writes without thinking twice (a task on a
method, an argument that holds itself, a custom exception with a required
argument), checked on every executor against plain Python.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import threading
import time

import pytest

import fastdag as fd
import test_user_idioms
from test_user_idioms import REPEATS


executors = test_user_idioms.executors  # the fixture: every executor a user may pick


def _each(executors, build, expected):
    for name, ex in executors.items():
        for attempt in range(3):
            got = fd.compute(build(), executor=ex)[0]
            assert got == expected, f"{name} run {attempt}: {got!r} != {expected!r}"


# -- @fd.task on methods

class Scaler:
    def __init__(self, k):
        self.k = k

    @fd.task
    def scale(self, x, offset=0):
        return x * self.k + offset

    @staticmethod
    @fd.task
    def double(x):
        return 2 * x


plain_add = fd.task(lambda a, b: a + b)


def _module_function(x):
    return x + 100


class Holder:
    add = fd.task(lambda self, b: b)  # a lambda written in the class body binds
    builtin_max = fd.task(max)  # a builtin does not bind
    step = fd.task(_module_function)  # nor a module's function put there (as dask.delayed)
    other = plain_add  # nor a lambda written elsewhere


def test_task_decorating_a_method_binds_the_instance(executors):
    s = Scaler(3)
    _each(executors, lambda: s.scale(Scaler.double(2), offset=s.scale(1)), 15)
    assert Scaler.scale(s, 2).compute() == 6  # called on the class, as a plain function
    assert isinstance(Scaler.__dict__["scale"], fd.Task)
    assert Holder().builtin_max(1, 5).compute() == 5
    holder = Holder()
    assert holder.add(1).args == (holder, 1)  # self comes first, as for the lambda itself
    assert holder.step(1).compute() == 101 and holder.other(1, 2).args == (1, 2)


# -- arguments that hold themselves

def _length(xs):
    return len(xs)


def test_argument_that_holds_itself(executors):
    looped = [1, 2]
    looped.append(looped)
    table = {"a": 1}
    table["self"] = table
    _each(executors, lambda: fd.task(_length)(looped), 3)
    _each(executors, lambda: fd.task(_length)(table), 2)


# -- a task's own exception, as the caller catches it

class ApiError(Exception):
    """The usual custom exception: more than a message, so plain pickle cannot rebuild it."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def _call_api(x):
    try:
        {}["missing"]
    except KeyError as err:
        raise ApiError(f"bad {x}", 503) from err


def _unpicklable_attribute(x):
    import threading
    err = ValueError(f"locked {x}")
    err.lock = threading.Lock()
    err.hint = "kept"
    raise err


def test_custom_exception_arrives_whole(executors):
    for name, ex in executors.items():
        with pytest.raises(fd.TaskError) as info:
            fd.compute(fd.task(_call_api)(fd.task(abs)(-1)), executor=ex)
        cause = info.value.__cause__
        assert type(cause) is ApiError and cause.status == 503, name
        assert cause.args == ("bad 1",), name
        assert type(cause.__cause__) is KeyError, name  # raise ... from err is kept
        assert "_call_api" in str(info.value), name

        with pytest.raises(fd.TaskError) as info:
            fd.compute(fd.task(_unpicklable_attribute)(fd.task(abs)(-2)), executor=ex)
        cause = info.value.__cause__
        assert type(cause) is ValueError and cause.args == ("locked 2",), name
        assert cause.hint == "kept", name


# -- a script's own classes, sent by value to worker processes and back

SCRIPT = '''
from dataclasses import dataclass
import fastdag as fd

class Pair:
    __slots__ = ("a", "b")
    def __init__(self, a, b):
        self.a, self.b = a, b

@dataclass(slots=True, frozen=True)
class Point:
    x: int
    y: list

@fd.task
def make(n):
    return Pair(n, [n]), Point(n, [n])

@fd.task
def fails(x):
    return {"a": x}["missing key"]

@fd.task
def shift(pair):
    return Pair(pair[0].a + 1, pair[0].b), not hasattr(pair[0], "__dict__")

with fd.LocalExecutor(2) as ex:
    pair, point = make(1).compute(executor=ex)
    moved, slotted = shift(make(2)).compute(executor=ex)
    print(type(pair) is Pair, pair.a, pair.b, point, type(moved) is Pair, moved.a, slotted)
    try:
        fails(1).compute(executor=ex)
    except fd.TaskError as err:
        print(" | ".join(str(err).splitlines()))
'''


def test_slotted_classes_of_a_script_travel_both_ways(tmp_path):
    script = tmp_path / "slots_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fd.__file__))}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")
    assert lines[0] == "True 1 [1] Point(x=1, y=[1]) True 3 True"
    # the worker's traceback names the script and quotes its line, as a local run's does
    assert "slots_script.py" in lines[1] and 'return {"a": x}["missing key"]' in lines[1], lines[1]


# -- Executor.compute takes what fd.compute takes

def test_executor_compute_takes_containers_and_plain_values(executors):
    add = fd.task(lambda a, b: a + b)
    for name, ex in executors.items():
        if ex is None:
            ex = fd.get_default_executor()
        a, b = add(1, 2), add(3, 4)
        assert ex.compute([a, b]) == [3, 7], name
        assert ex.compute({"a": a, "rest": (b, 5)}) == {"a": 3, "rest": (7, 5)}, name
        assert ex.compute(a) == 3 and ex.compute(a, [b]) == (3, [7]), name
        assert ex.compute(5) == 5, name


# -- Nodes inside dataclass instances are dependencies, as in dask.delayed

@dataclasses.dataclass
class Config:
    scale: object
    name: str = "run"
    extra: object = None


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    value: object


def _use(config, items):
    return (config.scale * 10 + sum(f.value for f in items), config.name, config.extra)


def test_nodes_inside_dataclasses(executors):
    inc = fd.task(lambda x: x + 1)
    use = fd.task(_use)

    def build():
        one = inc(0)
        config = Config(inc(one), extra=[Frozen(one)])
        return use(config, [Frozen(inc(4)), Frozen(one), Frozen(3)])

    _each(executors, build, (20 + 5 + 1 + 3, "run", [Frozen(1)]))
    config = Config(inc(0))
    for name, ex in executors.items():
        assert fd.compute(config, executor=ex) == (Config(1),), name
        assert type(config.scale) is fd.Node, name  # the caller's instance is left alone


# -- a task that calls another task gets a Node: the error says what to do

@fd.task
def _inner(x):
    return x + 1


def _outer_forgets_compute(x):
    return _inner(x)


def _outer_computes(x):
    return _inner(x).compute() + _inner.func(x)


def test_calling_a_task_inside_a_task(executors):
    outer = fd.task(_outer_forgets_compute)
    with pytest.raises(fd.SerializationError, match=r"\.compute\(\) on it there.*f\.func"):
        outer(1).compute(executor=executors["local"])
    _each(executors, lambda: fd.task(_outer_computes)(1), 4)


# -- leaving a with block while runs are still going

def _nap(x):
    time.sleep(0.3)
    return x


@pytest.mark.parametrize("make", [lambda: fd.LocalExecutor(2), lambda: fd.ThreadExecutor(2),
                                  lambda: fd.LocalExecutor(2, placement="auto")],
                         ids=["local", "threads", "auto"])
def test_with_block_ends_after_its_pending_runs(make):
    outcome = {}
    nap, add = fd.task(_nap), fd.task(lambda a, b: a + b)

    def use():
        with make() as ex:  # the DESIGN idiom: submit, leave the block
            outcome["futures"] = [ex.submit(add(nap(i), nap(i))) for i in range(4)]
        outcome["left"] = True

    thread = threading.Thread(target=use, daemon=True)
    thread.start()
    thread.join(60)
    assert outcome.get("left"), "shutdown() at the end of the with block never returned"
    assert [f.result(5) for f in outcome["futures"]] == [0, 2, 4, 6]


def test_shutdown_without_waiting_cancels_runs_on_threads():
    ex = fd.ThreadExecutor(1)
    nap = fd.task(_nap)
    future = ex.submit(nap(nap(nap(1))))
    ex.shutdown(wait=False)
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(10)


def test_one_except_catches_every_cancellation():
    assert issubclass(fd.CancelledError, concurrent.futures.CancelledError)
    with fd.LocalExecutor(1) as ex:
        future = ex.submit(fd.task(_nap)(1))
        ex.shutdown(wait=False)  # the run is closed with fd.CancelledError
        with pytest.raises(concurrent.futures.CancelledError):
            future.result(10)


def _collect_errors(n):
    """Errors kept as values (a batch job's failures), not raised."""
    return [ApiError(f"item {i}", 500 + i) for i in range(n)]


def test_exceptions_as_values(executors):
    def check(got):
        assert [type(e) for e in got] == [ApiError, ApiError]
        assert [(e.args, e.status) for e in got] == [(("item 0",), 500), (("item 1",), 501)]

    statuses = fd.task(lambda errs: [e.status for e in errs])
    for name, ex in executors.items():
        errs = fd.task(_collect_errors)(2)
        got, codes, echoed = fd.compute(errs, statuses(errs), fd.task(list)([ApiError("x", 1)]),
                                        executor=ex)
        check(got)
        assert codes == [500, 501] and echoed[0].status == 1, name


# -- async def tasks give what the coroutine returns

@fd.task
async def _fetch(x, delay=0.001):
    await asyncio.sleep(delay)
    return x * 2


async def _plain_async(x):
    await asyncio.sleep(0)
    return x + 1


def test_async_functions_as_tasks(executors):
    _each(executors, lambda: _fetch(fd.task(_plain_async)(1), delay=0), 4)
    for name, ex in executors.items():
        async def caller():  # computed from async code, maybe inline in this loop's thread
            return await fd.acompute(_fetch(fd.task(_plain_async)(2)), executor=ex)
        assert asyncio.run(caller()) == 6, name
    with pytest.raises(TypeError, match="_fetch"):
        _fetch(1, 2, 3)  # the async function's own signature is checked


def test_executor_must_be_an_executor():
    node = fd.task(abs)(-1)
    for call in (lambda: fd.compute(node, executor="threads"), lambda: node.compute("sync"),
                 lambda: fd.compute_async(node, executor="processes"),
                 lambda: node.compute_async(executor="threads")):
        with pytest.raises(TypeError, match="takes an fd executor"):
            call()
    assert node.compute(executor=None) == 1


def _missing(key):
    return {}[key]


def test_traceback_starts_at_the_users_function(executors):
    lookup, ident = fd.task(_missing), fd.task(lambda x: x)
    for name, ex in executors.items():
        for attempt in range(REPEATS):  # the default moves tiny graphs inline after a few runs
            with pytest.raises(fd.TaskError) as info:
                fd.compute(ident(lookup(ident("k"))), executor=ex)
            frames = [line for line in str(info.value).splitlines() if line.strip().startswith("File")]
            assert frames and "_missing" in frames[0], f"{name} {attempt}: {frames}"
            assert not any("fastdag" in f for f in frames), f"{name} {attempt}: {frames}"


def test_default_executor_comes_back_after_shutdown():
    node = fd.task(abs)(-3)
    first = fd.get_default_executor()
    first.shutdown()  # a notebook freeing its workers
    assert node.compute() == 3
    assert fd.get_default_executor() is not first
    own = fd.SyncExecutor()
    previous = fd.set_default_executor(own)
    try:
        assert fd.get_default_executor() is own  # one the user set is kept
    finally:
        fd.set_default_executor(previous)


def _squares(n):
    for i in range(n):
        yield i * i


def test_generator_result_says_return_a_list(executors):
    with pytest.raises(fd.SerializationError, match=r"return a list"):
        fd.task(_squares)(3).compute(executor=executors["local"])
    got = fd.task(_squares)(3).compute(executor=executors["sync"])  # in-process: as Dask does
    assert list(got) == [0, 1, 4]
