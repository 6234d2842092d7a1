"""Graphs written the way users write them, each run several times on every executor.

The default executor moves a graph from processes or threads to the caller's
thread (inline) once its functions are measured as tiny, so each graph is
computed repeatedly in one process and every run is compared with plain
Python evaluation of the same code.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import subprocess
import sys

import numpy as np
import pytest

import fastdag as fd

REPEATS = 5


@pytest.fixture(scope="module")
def executors():
    """Every executor a user may pick: the default (None), sync, threads and processes."""
    threads, local = fd.ThreadExecutor(2), fd.LocalExecutor(2)
    yield {"default": None, "sync": fd.SyncExecutor(), "threads": threads, "local": local}
    threads.shutdown()
    local.shutdown()


# Executors that promise copy-on-write inputs (as on worker processes): Sync and
# ThreadExecutor hand every task the objects themselves, as Dask's do.
ISOLATED = ("default", "local")


def run_all(executors, build, expected, check=None, only=None):
    """Build a fresh graph and compute it REPEATS times on each executor (or those
    named in ``only``); compare each run with ``expected``."""
    for name, ex in executors.items():
        if only is not None and name not in only:
            continue
        for attempt in range(REPEATS):
            nodes = build()
            if isinstance(nodes, tuple):
                got = fd.compute(*nodes, executor=ex)
            else:
                (got,) = fd.compute(nodes, executor=ex)
            where = f"{name} run {attempt}"
            if name == "default":
                where += f" ({fd.last_run().run.settings.get('placement')})"
            if check is not None:
                check(got, expected, where)
            else:
                assert _equal(got, expected), f"{where}: {got!r} != {expected!r}"


def _equal(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


# -- plain functions the tests use as tasks

def add(x, y):
    return x + y


def scale(x, factor=1, *, offset=0):
    return x * factor + offset


def flatten(items):
    out = []
    for item in items:
        if isinstance(item, (list, tuple, set, frozenset)):
            out.extend(flatten(sorted(item) if isinstance(item, (set, frozenset)) else item))
        elif isinstance(item, dict):
            out.extend(flatten([item[k] for k in sorted(item)]))
        else:
            out.append(item)
    return out


def total(items):
    return sum(flatten(items))


def divmod_(x, y):
    return x // y, x % y


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Counter:
    def __init__(self, start):
        self.start = start

    def bump(self, x):
        return self.start + x


def test_kwargs_with_nodes(executors):
    t_add, t_scale = fd.task(add), fd.task(scale)

    def build():
        a = t_add(1, 2)
        b = t_add(a, 10)
        return t_scale(a, factor=b, offset=t_add(b, 1))

    run_all(executors, build, 3 * 13 + 14)


def test_nodes_nested_at_depth(executors):
    t_add, t_total = fd.task(add), fd.task(total)

    def build():
        a, b, c = t_add(1, 1), t_add(2, 2), t_add(3, 3)
        return t_total([[a, [b, (c, 1)]], {"k": a, "j": [b, {"z": c}]}, {a, 100}, (b,)])

    run_all(executors, build, 2 + 4 + 6 + 1 + 2 + 4 + 6 + 2 + 100 + 4)


def test_nested_dict_of_nodes_result_structure(executors):
    t_add = fd.task(add)
    ident = fd.task(lambda x: x)

    def build():
        a = t_add(1, 2)
        return ident({"a": [a, (a, {"b": a})], "c": 5})

    run_all(executors, build, {"a": [3, (3, {"b": 3})], "c": 5})


def test_getitem_and_nout(executors):
    t_div = fd.task(divmod_, nout=2)
    pair = fd.task(lambda: {"a": [1, 2, 3], "b": 7})
    t_add = fd.task(add)

    def build():
        q, r = t_div(17, 5)
        d = pair()
        return t_add(q, r), t_add(d["a"][2], d["b"]), q, r

    run_all(executors, build, (5, 10, 3, 2))


def test_builtins_lambdas_closures_methods(executors):
    k = 7

    def closure(x):
        return x + k

    counter = Counter(100)

    def build():
        a = fd.task(operator.add)(1, 2)
        b = fd.task(sum)([a, a, 4])
        c = fd.task(max)(a, b, 3)
        d = fd.task(len)([a, b, c])
        e = fd.task(dict)(x=a, y=b)
        f = fd.task(sorted)([c, a, b], reverse=True)
        g = fd.task(lambda x, y: x * y)(a, d)
        h = fd.task(closure)(g)
        i = fd.task(counter.bump)(h)
        j = fd.task(functools.partial(add, 10))(a)
        k = fd.task("-".join)([fd.task(str)(a), "x"])
        m = fd.task(list)(fd.task(map)(str, [a, 2]))
        return a, b, c, d, e, f, g, h, i, j, k, m, fd.task(np.add)(a, 1)

    run_all(executors, build, (3, 10, 10, 3, {"x": 3, "y": 10}, [10, 10, 3], 9, 16, 116, 13,
                               "3-x", ["3", "2"], np.int64(4)))


def test_lambdas_made_in_a_loop_keep_their_own_defaults(executors):
    def build():
        return tuple(fd.task(lambda x, s=s: x * s)(3) for s in (1, 2, 1.0, True))

    def check(got, expected, where):
        assert [type(v) for v in got] == [type(v) for v in expected], where
        assert got == expected, where

    run_all(executors, build, (3, 6, 3.0, 3), check)


def test_closures_made_in_a_loop(executors):
    def make(k):
        return lambda x: x + k

    def build():
        return tuple(fd.task(make(k))(1) for k in range(4))

    run_all(executors, build, (1, 2, 3, 4))


def test_same_node_in_several_outputs(executors):
    t_add = fd.task(add)

    def build():
        a = t_add(1, 2)
        b = t_add(a, a)
        return a, b, a, t_add(b, a)

    run_all(executors, build, (3, 6, 3, 9))


def test_one_task_and_no_dependencies(executors):
    run_all(executors, lambda: fd.task(add)(2, 3), 5)
    run_all(executors, lambda: tuple(fd.task(add)(i, i) for i in range(5)), (0, 2, 4, 6, 8))


def test_wide_fan_in(executors):
    t_add, t_sum = fd.task(add), fd.task(sum)
    run_all(executors, lambda: t_sum([t_add(i, 1) for i in range(1000)]), sum(range(1, 1001)))


def test_deep_chain(executors):
    t_add = fd.task(add)

    def build():
        x = t_add(0, 1)
        for _ in range(1999):
            x = t_add(x, 1)
        return x

    run_all(executors, build, 2000)


# -- copy-on-write: every consumer sees the original input

def _append_one(xs):
    xs.append(1)
    return xs


def _set_key(d):
    d["new"] = 1
    return d


def _zero_first(a):
    a[0] = 0
    return a


def _fill(a):
    a += 1
    return a


def test_mutating_lists_and_dicts(executors):
    t_app, t_set, t_len = fd.task(_append_one), fd.task(_set_key), fd.task(len)
    make_list = fd.task(lambda: [5, 6])
    make_dict = fd.task(lambda: {"a": 1})

    def build():
        xs, d = make_list(), make_dict()
        return t_app(xs), t_app(xs), t_len(xs), t_set(d), t_len(d), xs, d

    run_all(executors, build, ([5, 6, 1], [5, 6, 1], 2, {"a": 1, "new": 1}, 1, [5, 6], {"a": 1}),
            only=ISOLATED)


def test_mutating_captured_arguments(executors):
    t_app, t_len = fd.task(_append_one), fd.task(len)
    original = [1, 2]


    def build():  # several tasks of one worker capture the same list
        return *[t_app(original) for _ in range(4)], t_len(original), t_app([original])

    run_all(executors, build, (*[[1, 2, 1]] * 4, 2, [[1, 2], 1]), only=ISOLATED)
    assert original == [1, 2]


def test_writing_into_a_captured_array(executors):
    # four tasks of one worker process capture the same array: each sees zeros
    array, t_bump = np.zeros(3), fd.task(_bump_first)
    run_all(executors, lambda: tuple(t_bump(array) for _ in range(4)), (5.0,) * 4,
            only=ISOLATED)
    assert not array.any()


def test_returned_captured_array_is_writeable(executors):
    array = np.arange(4.0)

    def check(got, expected, where):
        for value in got:
            assert value.flags.writeable and not np.shares_memory(value, array), where

    run_all(executors, lambda: (fd.task(_same)(array), fd.task(_head)({"a": array})), None,
            check, only=ISOLATED)


def _same(x):
    return x


def _head(d):
    return d["a"][:2]


def _bump_first(a):
    a[0] += 5
    return float(a[0])


def test_mutating_numpy_arrays(executors):
    t_zero, t_fill, t_sum = fd.task(_zero_first), fd.task(_fill), fd.task(np.sum)
    make = fd.task(lambda n: np.arange(n, dtype=np.int64))
    captured = np.arange(3, dtype=np.int64)

    def build():
        a = make(4)
        return t_zero(a), t_fill(a), t_sum(a), a, t_zero(captured), t_fill([a][0])

    def check(got, expected, where):
        assert all(_equal(g, e) for g, e in zip(got, expected)), f"{where}: {got}"
        for value in got:
            if isinstance(value, np.ndarray):
                assert value.flags.writeable, where
                value[...] = 0  # results are the caller's to change

    expected = (np.array([0, 1, 2, 3]), np.arange(1, 5), np.int64(6), np.arange(4),
                np.array([0, 1, 2]), np.arange(1, 5))
    run_all(executors, build, expected, check, only=ISOLATED)
    assert np.array_equal(captured, np.arange(3))


def test_results_of_many_types(executors):
    pd = pytest.importorskip("pandas")
    Image = pytest.importorskip("PIL.Image")

    def build():
        nothing = fd.task(lambda: None)()
        gen = fd.task(lambda n: list(x * x for x in range(n)))(4)
        point = fd.task(Point)(1, fd.task(add)(1, 1))
        frame = fd.task(lambda: pd.DataFrame({"a": [1, 2]}))()
        col = fd.task(lambda df: df["a"] * 2)(frame)
        img = fd.task(lambda: Image.new("L", (4, 4), 7))()
        small, big = fd.task(bytes)(3), fd.task(lambda: "x" * 2_000_000)()
        return nothing, gen, point, frame, col, img, small, big

    def check(got, expected, where):
        nothing, gen, point, frame, col, img, small, big = got
        assert nothing is None and gen == [0, 1, 4, 9] and point == Point(1, 2), where
        assert frame["a"].tolist() == [1, 2] and col.tolist() == [2, 4], where
        assert img.getpixel((0, 0)) == 7 and small == b"\0\0\0" and big == "x" * 2_000_000, where
        img.putpixel((0, 0), 1)
        frame.loc[0, "a"] = 9

    run_all(executors, build, None, check)


def test_mutating_pandas_and_pil(executors):
    pd = pytest.importorskip("pandas")
    Image = pytest.importorskip("PIL.Image")

    def set_cell(df):
        df.loc[0, "a"] = 100
        return df["a"].tolist()

    def paint(img):
        img.putpixel((0, 0), 200)
        return img.getpixel((0, 0))

    def build():
        frame = fd.task(lambda: pd.DataFrame({"a": [1, 2]}))()
        img = fd.task(lambda: Image.new("L", (2, 2), 7))()
        return (fd.task(set_cell)(frame), fd.task(lambda df: df["a"].tolist())(frame),
                fd.task(paint)(img), fd.task(lambda im: im.getpixel((0, 0)))(img))

    run_all(executors, build, ([100, 2], [1, 2], 200, 7), only=ISOLATED)


# -- failures

class Boom(ValueError):
    pass


def _fail(x):
    raise Boom(f"bad {x}")


def _exit(x):
    sys.exit(3)


def test_task_error_names_task_and_keeps_cause(executors):
    t_add, t_fail = fd.task(add), fd.task(_fail)
    for name, ex in executors.items():
        for attempt in range(REPEATS):
            # the first tasks succeed (and may run inline), then one fails
            graph = t_add(t_fail(t_add(t_add(1, 2), 3)), 1)
            with pytest.raises(fd.TaskError) as info:
                fd.compute(graph, executor=ex)  # noqa
            assert "_fail" in str(info.value), f"{name} {attempt}: {info.value}"
            assert isinstance(info.value.__cause__, Boom), f"{name} {attempt}"
            # the executor still works afterwards
            assert fd.compute(t_add(t_add(1, 2), 3), executor=ex) == (6,)


def test_sys_exit_is_a_task_failure(executors):
    t_exit, t_add = fd.task(_exit), fd.task(add)
    for name, ex in executors.items():
        for attempt in range(3):
            with pytest.raises(fd.TaskError) as info:
                fd.compute(t_add(t_exit(t_add(1, 1)), 1), executor=ex)
            assert isinstance(info.value.__cause__, SystemExit), f"{name} {attempt}"
            assert fd.compute(t_add(1, 1), executor=ex) == (2,)


_flaky_calls: dict = {}


def _flaky(key, x):
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] % 2:
        raise Boom("first attempt")
    return x + 1


def test_retries(executors):
    # in-process executors only: the call counter lives in this process
    t_flaky, t_add = fd.task(_flaky, retries=1), fd.task(add)
    for name in ("default", "sync", "threads"):
        ex = executors[name]
        for attempt in range(REPEATS):
            _flaky_calls.clear()
            key = (name, attempt)
            (got,) = fd.compute(t_add(t_flaky(key, t_add(1, 1)), 1), executor=ex)
            assert got == 4, f"{name} {attempt}"


# -- several workflows, reports

def test_submit_several_workflows(executors):
    t_add = fd.task(add)
    for name, ex in executors.items():
        if ex is None:
            ex = fd.get_default_executor()
        for _ in range(3):
            graphs = [t_add(t_add(i, 1), t_add(i, 2)) for i in range(6)]
            futures = [ex.submit(g) for g in graphs]
            asyncs = [g.compute_async(executor=ex) for g in graphs]
            assert [f.result(60) for f in futures] == [2 * i + 3 for i in range(6)], name
            assert [f.result(60) for f in asyncs] == [2 * i + 3 for i in range(6)], name


def test_last_run_counts_tasks(executors):
    t_add = fd.task(add)
    for name, ex in executors.items():
        for n in (1, 3, 7, 1, 3, 7):
            x = t_add(0, 1)
            for _ in range(n - 1):
                x = t_add(x, 1)
            assert fd.compute(x, executor=ex) == (n,)
            report = fd.last_run()
            assert report is not None and len(report.tasks) == n, f"{name} {n}"


def test_compute_shares_parts(executors):
    calls = []

    def noted(x):
        calls.append(x)
        return x * 2

    t_noted, t_add = fd.task(noted), fd.task(add)
    for name in ("sync", "threads"):  # the default's first runs are on worker processes
        for _ in range(REPEATS):
            calls.clear()
            shared = t_noted(t_add(1, 2))
            got = fd.compute(t_add(shared, 1), t_add(shared, 2), shared, executor=executors[name])
            assert got == (7, 8, 6) and calls == [3], name


# -- the command line and the public names

def test_public_names_resolve():
    code = "import fastdag\nfor n in fastdag.__all__:\n    getattr(fastdag, n)\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "fastdag.cli", "--help"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert "demo" in out


def _append_then_fail_once(key, xs):
    xs.append(len(xs))
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] == 1:
        raise Boom("first attempt")
    return len(xs)


def test_retry_does_not_write_into_captured_arguments(executors):
    # inline runs retry a failed task: the retry must get a copy, not the caller's list
    t_flaky, t_len = fd.task(_append_then_fail_once, retries=1), fd.task(len)
    for attempt in range(REPEATS):
        mine = [0]
        got = fd.compute(t_flaky(("cow", attempt), mine), t_len(mine))
        assert got[1] == 1 and mine == [0], f"run {attempt}: {got}, {mine}"


def test_compute_resolves_nodes_in_containers(executors):
    t_add = fd.task(add)

    def build():
        a, b = t_add(1, 2), t_add(3, 4)
        return [a, b], {"sum": t_add(a, b), "raw": 5}, (a, [b]), a

    run_all(executors, build, ([3, 7], {"sum": 10, "raw": 5}, (3, [7]), 3))


def _holds_itself(n):
    xs = list(range(n))
    xs.append(xs)
    return xs


def test_result_that_holds_itself(executors):
    # a valid Python value: sizing or guarding it must not recurse forever
    def build():
        xs = fd.task(_holds_itself)(2)
        return xs, fd.task(len)(xs)

    def check(got, expected, where):
        xs, n = got
        assert xs[:2] == [0, 1] and xs[2] is xs and n == 3, where

    run_all(executors, build, None, check)
