"""Large text captured by tasks ships beside the plan, and each worker loads only its tasks'.

(core/captured.py; engine/worker.py's lazy landing; the local executor's plan segment)
"""

from __future__ import annotations

import pickle

import pytest

import fastdag as fd
from fastdag.core import captured
from fastdag.core.plan import build_plan
from fastdag.core.serialize import OUT_OF_BAND_MIN, dumps, loads, text_buffer
from fastdag.engine.messages import ShippedPlan

BIG = 2 * OUT_OF_BAND_MIN
TEXTS = {
    "ascii str": "a" * BIG,
    "non-ascii str": "z\u00e9\U0001f600\ud800" * (BIG // 4),  # a lone surrogate too
    "bytes": b"b" * BIG,
    "bytearray": bytearray(b"c" * BIG),
}


@fd.task
def describe(*args, **kwargs):
    return [(type(v).__name__, len(v), v[:3]) for v in args] + \
        sorted((k, type(v).__name__, len(v)) for k, v in kwargs.items())


@fd.task
def scribble(buffer: bytearray) -> int:
    buffer[0] = ord("!")  # a task's own copy: no one else sees this
    return buffer.count(b"!")


def _ship(plan):
    payload = dumps(ShippedPlan(*captured.lift(plan)))
    return payload, loads(payload.header, [memoryview(bytearray(b)) for b in payload.buffers])


@pytest.mark.parametrize("name", list(TEXTS))
def test_large_text_travels_out_of_the_header_and_lands_as_it_was(name):
    text = TEXTS[name]
    plan = build_plan(describe(text, [text, 1], key={"k": text}, small="s").dag)
    payload, shipped = _ship(plan)
    assert len(payload.header) < OUT_OF_BAND_MIN and len(payload.buffers) == 1  # once
    (i,) = shipped.lifted
    got = shipped.plan
    assert type(got.args[i][0]) is captured.Captured  # not decoded until the task runs
    captured.land(got, i)
    assert got.args[i] == plan.args[i] and got.kwargs[i] == plan.kwargs[i]
    assert [type(v) for v in got.args[i][1]] == [type(text), int]


def test_each_task_lands_its_own_text():
    texts = ["x" * BIG, "y" * BIG]
    plan = build_plan(describe(describe(texts[0]), texts[1]).dag)
    payload, shipped = _ship(plan)
    assert len(payload.buffers) == 2 and len(shipped.lifted) == 2
    first = min(shipped.lifted)
    captured.land(shipped.plan, first)  # the other task's text stays undecoded
    other = max(shipped.lifted)
    assert type(shipped.plan.args[other][-1]) is captured.Captured


def test_a_plan_without_large_text_is_not_copied():
    plan = build_plan(describe("a" * (OUT_OF_BAND_MIN - 1), [b"x"], 3).dag)
    assert captured.lift(plan) == (plan, frozenset())


def test_the_original_plan_keeps_its_text():
    text = "t" * BIG
    plan = build_plan(describe(text).dag)
    lifted, tasks = captured.lift(plan)
    assert lifted is not plan and plan.args[0] == (text,) and plan.simple[0] == 1
    assert lifted.simple[0] == 0 and tasks == {0}


def test_an_ascii_str_is_written_from_its_own_memory():
    text = "q" * BIG
    view = text_buffer(text)
    assert isinstance(view, memoryview) and view.readonly and bytes(view) == text.encode()
    assert isinstance(text_buffer("\u00e9" * 10), bytes)


def test_text_pickled_in_band_still_loads():
    text = "p" * BIG
    lifted, _ = captured.lift(build_plan(describe(text).dag))
    again = pickle.loads(pickle.dumps(lifted.args[0][0]))
    assert again.load() == text


def test_on_the_local_executor_results_match_and_each_task_has_its_own_bytearray():
    buffer = bytearray(BIG)
    texts = list(TEXTS.values())
    with fd.LocalExecutor(workers=2) as ex:
        described = ex.compute(describe(*texts, named=texts[0]))
        counts = ex.compute(*[scribble(buffer) for _ in range(4)])
    assert described == describe.func(*texts, named=texts[0])
    assert counts == (1, 1, 1, 1) and buffer == bytearray(BIG)
