"""How a wide fan-in's inputs travel: plain templates through the C pickler,
small results in bundles (``store/bundle.py``) instead of a ref each."""

from __future__ import annotations

import collections
import pickle

import pytest

import fastdag as fd
from fastdag.executors.local import LocalExecutor
from fastdag.core.plan import Ref, build_plan
from fastdag.core.serialize import dumps, loads
from fastdag.store import bundle as bundle_module
from fastdag.store.base import StoredRef
from fastdag.store.bundle import BundleBuilder

from conftest import fastdag_segments
from tasks import inc as one, total


@fd.task
def pair(i):
    return [i, i]


@fd.task
def show(*args, **kwargs):
    return args, kwargs


Point = collections.namedtuple("Point", "x y")


def _round_trip(node: fd.Node):
    plan = build_plan(node.dag)
    payload = dumps(plan)
    return plan, loads(payload.header, payload.buffers, payload.kind)


def test_a_fan_ins_refs_pickle_without_a_python_call_each(monkeypatch):
    """The list of Refs goes through the C pickler as memoized holes plus one index
    array: pickling it must not call ``Ref.__reduce__`` once per input."""
    calls = []
    original = Ref.__reduce__

    def counted(self):
        calls.append(self.i)
        return original(self)

    monkeypatch.setattr(Ref, "__reduce__", counted)
    plan, restored = _round_trip(total([one(i) for i in range(1000)]))
    assert calls == []
    assert repr(restored.args[-1]) == repr(plan.args[-1])
    assert [r.i for r in restored.args[-1][0]] == list(range(1000))


def test_every_kind_of_template_comes_back_as_it_was():
    a, b = one(1), one(2)
    nodes = [show([a, b, 3, [b, {"k": a, "j": (b, "z")}]], {1: a}, x=b, y=[a, 5]),
             show(a, k=3),                      # mode 1 with a keyword: not "simple"
             show([1, 2], (3, [4])),            # nested constants, no Ref
             show(Point(a, 2), {a, b}),         # a namedtuple and a set: cloudpickle
             show([lambda: 1, a])]              # a function: cloudpickle
    for node in nodes:
        plan, restored = _round_trip(node)
        for i in range(len(plan)):
            assert type(restored.args[i]) is type(plan.args[i])
            if i == len(plan) - 1 and node is nodes[3]:
                continue  # a set of Refs has no fixed order
            if i == len(plan) - 1 and node is nodes[4]:
                assert restored.args[i][0][1].i == plan.args[i][0][1].i
                continue
            assert repr(restored.args[i]) == repr(plan.args[i])
            assert repr(restored.kwargs[i]) == repr(plan.kwargs[i])
    with LocalExecutor(workers=1) as ex:
        for node in nodes[:4]:
            got, want = ex.compute(node), fd.SyncExecutor().compute(node)
            assert got == want


def test_bundle_members_load_as_new_copies():
    builder = BundleBuilder()
    for i in range(10):
        builder.add(100 + i, pickle.dumps([i], 5))
    (b,) = builder.close()
    assert list(b.tasks) == list(range(100, 110)) and len(b) == 10
    first = b.load(103)
    first.append("changed")
    assert b.load(103) == [3]
    assert b.load_many([109, 100]) == [[9], [0]]
    picked = b.select([105, 101])
    assert list(picked.tasks) == [105, 101] and picked.load(101) == [1]
    assert pickle.loads(pickle.dumps(b)).load(107) == [7]
    assert b.sizes() == [len(pickle.dumps([i], 5)) for i in range(10)]


def test_a_bundle_holds_at_most_bundle_bytes(monkeypatch):
    monkeypatch.setattr(bundle_module, "BUNDLE_BYTES", 100)
    builder = BundleBuilder()
    for i in range(100):
        builder.add(i, pickle.dumps(i, 5))
    bundles = builder.close()
    assert len(bundles) > 1
    assert all(len(b.data) <= 100 for b in bundles)
    assert [t for b in bundles for t in b.tasks] == list(range(100))
    assert [b.load(t) for b in bundles for t in b.tasks] == list(range(100))


def test_small_results_reach_the_scheduler_in_bundles(monkeypatch):
    """A fan-in's 5,000 numbers: not a StoredRef each, every one in a bundle; the
    run's answer, metrics records and /dev/shm as before."""
    seen = {"refs": 0, "members": 0}
    handle = LocalExecutor._handle

    def spy(self, h, msg):
        if msg[0] == "report":
            seen["refs"] += len(msg[5])
            seen["members"] += sum(len(b) for b in msg[6])
        return handle(self, h, msg)

    monkeypatch.setattr(LocalExecutor, "_handle", spy)
    with LocalExecutor(workers=2) as ex:
        future = ex.submit(total([one(i) for i in range(5000)]))
        assert future.result() == sum(range(1, 5001))
        assert seen == {"refs": 1, "members": 5000}  # one ref: the caller's answer
        records = future.report.tasks
        assert len(records) == 5001 and len({r.task_key for r in records}) == 5001
    assert fastdag_segments(ex.prefix) == set()


def test_a_batch_reading_few_members_gets_only_those():
    """Each consumer of one member of a big bundle is sent that member alone."""
    from fastdag.executors.local import _bundles_for
    builder = BundleBuilder()
    for i in range(1000):
        builder.add(i, pickle.dumps(i, 5))
    (b,) = builder.close()
    bundled = dict.fromkeys(b.tasks, b)
    (few,) = _bundles_for(bundled, [7, 3])
    assert list(few.tasks) == [7, 3] and few.load(3) == 3
    (whole,) = _bundles_for(bundled, list(range(600)))
    assert whole is b
    assert _bundles_for(bundled, [5000]) == []


@pytest.mark.parametrize("n", [20, 3000])
def test_fan_in_of_lists_is_exact_and_inputs_are_copies(n):
    """Inputs that are lists (small pickles, so bundled): the fan-in may change them
    in place; the answer is the serial one."""
    @fd.task
    def grow_all(xs):
        for x in xs:
            x.append(0)
        return [len(x) for x in xs], sum(x[0] for x in xs)

    node = grow_all([pair(i) for i in range(n)])
    with LocalExecutor(workers=2) as ex:
        assert ex.compute(node) == fd.SyncExecutor().compute(node) == ([3] * n, sum(range(n)))


def test_stored_ref_still_used_for_large_results():
    """Bundles take only small pickles; a large result keeps its own ref (and segment)."""

    @fd.task
    def big(i):
        return bytes(200_000) + bytes([i])

    @fd.task
    def lengths(xs):
        return [len(x) for x in xs]

    seen = []
    handle = LocalExecutor._handle

    def spy(self, h, msg):
        if msg[0] == "report":
            seen.extend(type(r) for r in msg[5].values())
        return handle(self, h, msg)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalExecutor, "_handle", spy)
        with LocalExecutor(workers=2) as ex:
            assert ex.compute(lengths([big(i) for i in range(20)])) == [200_001] * 20
    assert seen and set(seen) == {StoredRef}
