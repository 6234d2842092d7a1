"""Large text that tasks captured, shipped beside the plan instead of inside it.

::

    client   lift(plan) ──> a copy of the plan whose large str / bytes / bytearray
                            arguments are Captured placeholders (their tasks marked
                            not simple), and the set of those tasks
             dumps(copy)    each placeholder pickles as one out-of-band buffer (its
                            UTF-8, or its bytes as they are): the store writes it into
                            the plan's segment, not into the pickled header
    worker   loads(...)     placeholders still holding views of the private mapping
             land(plan, i)  before task i runs: its placeholders become the values

Why: a plan's arguments travel inside its pickle, so 32 JSON texts of 600 KB
made a 20 MB header, pickled (in several copies) before a worker heard of the
run and decoded whole by every worker before its first task: some 40 ms of
the client and 15 ms of each worker. Lifted, the header is a few KB; each
worker decodes only the texts of the tasks it runs, when it runs them.

Values shorter than ``serialize.OUT_OF_BAND_MIN`` stay where they were: a
placeholder costs more than copying them. Text is looked for in a task's
arguments and keyword arguments and one level of list, tuple or dict inside
them (``f(text)``, ``f([text, text])``, ``f(texts={"a": text})``); deeper or
in containers of more than ``SCAN_MAX`` items, it travels in the header as
before.
"""

from __future__ import annotations

import dataclasses
import pickle
from itertools import chain
from typing import Any

from .graph import map_nested
from .plan import Plan
from .serialize import OUT_OF_BAND_MIN, decode_text, text_buffer

SCAN_MAX = 4096  # items of a container looked through for text
_TEXT = (str, bytes, bytearray)
_CONTAINERS = (list, tuple, dict)
_SCANNED = frozenset(_TEXT + _CONTAINERS)


class Captured:
    """A large str, bytes or bytearray argument, as a plan ships it (see the module)."""

    __slots__ = ("value", "cls")

    def __init__(self, value: Any, cls: type):
        self.value = value  # the text itself (client) or a view of its bytes (worker)
        self.cls = cls

    def __reduce_ex__(self, protocol):
        value = self.value
        if protocol < 5:  # no out-of-band buffers: the value as it is
            return (Captured, (value, self.cls))
        data = text_buffer(value) if type(value) is str else value
        return (Captured, (pickle.PickleBuffer(data), self.cls))

    def load(self) -> Any:
        """The value, in memory of its own (a bytearray is the task's private copy)."""
        cls, value = self.cls, self.value
        if type(value) is cls:
            return value if cls is not bytearray else bytearray(value)
        if cls is str:
            return decode_text(value)
        return cls(value)


def lift(plan: Plan) -> tuple[Plan, frozenset[int]]:
    """``plan`` with its large text arguments as placeholders, and the tasks that have
    some; ``plan`` itself (and no tasks) when none has: the plan is not copied."""
    args, kwargs = plan.args, plan.kwargs
    values = chain(chain.from_iterable(filter(None, args)),
                   chain.from_iterable(map(dict.values, filter(None, kwargs))))
    if _SCANNED.isdisjoint(map(type, values)):
        return plan, frozenset()  # no text nor container: one C loop, 0.5 ms for 4,096 tasks
    found = {i for i, a in enumerate(args) if a and _any_large(a)}
    found.update(i for i, kw in enumerate(kwargs) if kw and _any_large(kw.values()))
    args, kwargs, simple = list(args), list(kwargs), bytearray(plan.simple)
    placeholders: dict[int, Captured] = {}  # text captured by several tasks ships once
    for i in found:
        if args[i] is not None:
            args[i] = _placed(args[i], placeholders)
        if kwargs[i]:
            kwargs[i] = _placed(kwargs[i], placeholders)
        simple[i] = 0  # the worker's slow path, which lands them (see worker.py)
    return dataclasses.replace(plan, args=args, kwargs=kwargs, simple=simple), frozenset(found)


def land(plan: Plan, i: int) -> None:
    """Put task ``i``'s captured values back in its arguments, in place."""
    if plan.args[i] is not None:
        plan.args[i] = map_nested(plan.args[i], Captured, Captured.load)
    if plan.kwargs[i]:
        plan.kwargs[i] = map_nested(plan.kwargs[i], Captured, Captured.load)


def _any_large(values: Any) -> bool:
    """Whether ``values`` (a task's arguments), or the items of the lists, tuples and
    dicts among them, hold large text; in C loops where the types rule it out."""
    values = list(values)
    if _SCANNED.isdisjoint(map(type, values)):
        return False
    if _longest([v for v in values if type(v) in _TEXT]) >= OUT_OF_BAND_MIN:
        return True
    inner = [v.values() if type(v) is dict else v for v in values
             if type(v) in _CONTAINERS and len(v) <= SCAN_MAX]
    items = list(chain.from_iterable(inner))
    return _longest([v for v in items if type(v) in _TEXT]) >= OUT_OF_BAND_MIN


def _longest(texts: list) -> int:
    return max(map(len, texts)) if texts else 0


def _placed(template: Any, placeholders: dict[int, Captured], depth: int = 0) -> Any:
    """``template`` (a task's args or kwargs) with large text as Captured, to one level
    down; one placeholder per text object (``placeholders``, by id), pickled once."""
    cls = type(template)
    if cls in _TEXT and len(template) >= OUT_OF_BAND_MIN:
        found = placeholders.get(id(template))
        if found is None:
            found = placeholders[id(template)] = Captured(template, cls)
        return found
    if depth > 1 or cls not in _CONTAINERS or len(template) > SCAN_MAX:
        return template
    if cls is dict:
        return {k: _placed(v, placeholders, depth + 1) for k, v in template.items()}
    return cls(_placed(v, placeholders, depth + 1) for v in template)

