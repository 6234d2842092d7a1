"""Graph structure: building, argument traversal, topology queries, export."""

from __future__ import annotations

import collections

import pytest

import fastdag as fd
from tasks import add, inc


@fd.task
def total(*xs):
    return sum(xs)


@fd.task(nout=3)
def three(x):
    return x, x * 2, x * 3


def test_calling_a_task_runs_nothing():
    calls = []

    @fd.task
    def record(x):
        calls.append(x)
        return x

    node = record(1)
    assert isinstance(node, fd.Node)
    assert calls == []


def test_dependencies_found_at_any_depth():
    a, b, c, d = inc(1), inc(2), inc(3), inc(4)

    @fd.task
    def f(xs, mapping, s=None):
        return xs, mapping, s

    node = f([[a, 1], (b,)], {"k": c, "j": [d, a]}, s=frozenset([b]))
    assert set(map(id, node.deps)) == {id(a), id(b), id(c), id(d)}
    assert len(node.deps) == 4  # a and b appear twice but are one dependency each


def test_wrong_arity_fails_at_call_time():
    with pytest.raises(TypeError, match="add"):
        add(1)
    with pytest.raises(TypeError):
        add(1, 2, 3)
    with pytest.raises(TypeError):
        add(1, z=2)
    add(1, y=2)  # keywords that match are fine


def test_task_options_validated():
    with pytest.raises(ValueError):
        fd.task(retries=-1)(lambda: 0)
    with pytest.raises(TypeError):
        fd.task(42)


def test_dag_queries_on_a_diamond():
    top = inc(0)
    left, right = inc(top), add(top, 10)
    bottom = add(left, right)
    g = bottom.dag
    assert len(g) == 4
    assert g.roots == [top]
    assert g.sinks == [bottom]
    assert len(g.edges) == 4
    assert g.depth == 3
    path = g.critical_path()
    assert path[0] is top and path[-1] is bottom and len(path) == 3


def test_nodes_are_in_topological_order():
    a = inc(1)
    b = add(a, inc(2))
    c = add(b, a)
    g = fd.DAG([c])
    position = {id(n): i for i, n in enumerate(g.nodes)}
    for producer, consumer in g.edges:
        assert position[id(producer)] < position[id(consumer)]


def test_deep_chain_does_not_hit_recursion_limit():
    node = inc(0)
    for _ in range(10_000):
        node = inc(node)
    g = node.dag
    assert len(g) == 10_001
    assert g.depth == 10_001


def test_dag_of_several_outputs_shares_nodes():
    shared = inc(1)
    a, b = inc(shared), add(shared, 1)
    g = fd.DAG([a, b])
    assert len(g) == 3
    assert sorted(n.name for n in g.sinks) == sorted([a.name, b.name])


def test_getitem_and_nout_unpacking_build_nodes():
    x, y, z = three(2)
    assert all(isinstance(n, fd.Node) for n in (x, y, z))
    with pytest.raises(TypeError, match="nout"):
        iter(inc(1))
    item = inc(1)["key"]
    assert isinstance(item, fd.Node)


def test_nodes_cannot_be_pickled_by_accident():
    import pickle
    with pytest.raises(TypeError, match="lazy"):
        pickle.dumps(inc(1))


def test_to_dot_and_visualize(tmp_path):
    node = add(inc(1), inc(2))
    dot = node.dag.to_dot()
    assert dot.startswith("digraph") and dot.count("->") == 2
    out = node.dag.visualize(str(tmp_path / "dag.svg"))
    assert (tmp_path / "dag.svg").stat().st_size > 0 and out.endswith(".svg")
    with pytest.raises(ValueError):
        node.dag.visualize(str(tmp_path / "dag.gif"))


def test_aliases_match_the_prototype_names():
    assert fd.DAGTask is fd.task
    assert fd.DAGTaskNode is fd.Node


def test_namedtuple_arguments_keep_their_type():
    Point = collections.namedtuple("Point", "x y")

    @fd.task
    def norm(p):
        return type(p).__name__, p.x + p.y

    assert norm(Point(inc(1), 3)).compute(executor=fd.SyncExecutor()) == ("Point", 5)


def test_a_list_of_two_nodes_a_node_twice_and_a_list_of_numbers():
    from fastdag.core.graph import NESTED, NO_NODES
    total = fd.task(sum)
    a = total([1, 2])
    assert a.mode == NO_NODES and a.deps == ()
    twice = total([a, a])
    assert twice.mode == NESTED and twice.deps == (a,)
    mixed = total([a, 4])
    assert mixed.mode == NESTED and mixed.deps == (a,)
    pair = total([a, mixed])
    assert pair.deps == (a, mixed)
    assert fd.compute(twice, mixed, pair) == (6, 7, 10)


def test_a_task_that_grows_its_captured_list_never_changes_it():
    def grow(items):
        items.append(0)
        return len(items)

    leaf = fd.task(grow)([1, 2])
    both = fd.task(lambda x, y: x + y)(leaf, fd.task(grow)([leaf, leaf]))
    for _ in range(3):  # the default executor, inline once the functions are measured
        assert fd.compute(both) == (6,)
    assert leaf.args == ([1, 2],)
