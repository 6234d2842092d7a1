"""Events as JSON, for executors that publish to a ``fastdag dashboard`` server.

An event travels as ``[type name, field, field, ...]`` in its NamedTuple's
field order; a POST body is ``{"events": [...], "memory": [[time, worker,
rss], ...]}``. JSON, not pickle: the server turns what it receives back into
the event types of ``fastdag.events`` only, checking each one's type name
and field count, so a request can never make it run code.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .. import events as ev

EVENT_TYPES = {cls.__name__: cls for cls in (
    ev.RunSubmitted, ev.TasksReady, ev.TaskStarted, ev.TaskFinished, ev.TaskFailed,
    ev.TaskRetried, ev.DataMoved, ev.WorkerStarted, ev.WorkerDied, ev.RunFinished,
    ev.TaskBatch)}


class Published(NamedTuple):
    """What one POST /api/publish carries."""
    events: list[Any]
    memory: list[tuple[float, str, int]]


class WireError(ValueError):
    """A POST body that is not a list of fastdag events."""


def encode(events: Iterable[Any], memory: Sequence[tuple[float, str, int]] = ()) -> bytes:
    """The JSON body of one POST: each event as its type name and its fields."""
    items = [[type(e).__name__, *map(_plain, e)] for e in events]
    return json.dumps({"events": items, "memory": list(memory)},
                      separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    """A field as JSON can hold it (task names and records are lazy sequences)."""
    if isinstance(value, (str, int, float)) or value is None:
        return value
    if isinstance(value, array):
        return value.tolist()
    return list(value)


def decode(body: bytes) -> Published:
    """The events and memory samples of a POST body; WireError if it is not one."""
    try:
        data = json.loads(body)
        items, memory = data["events"], data.get("memory", [])
        events = [_event(item) for item in items]
        samples = [(float(t), str(w), int(rss)) for t, w, rss in memory]
    except WireError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise WireError(f"not a fastdag event batch: {exc}") from None
    return Published(events, samples)


def _event(item: list[Any]) -> Any:
    cls = EVENT_TYPES.get(item[0]) if isinstance(item, list) and item else None
    if cls is None or len(item) != len(cls._fields) + 1 or not isinstance(item[1], str):
        raise WireError(f"not a fastdag event: {str(item)[:80]}")
    event = cls(*item[1:])
    if cls is ev.RunSubmitted:
        return event._replace(deps=[tuple(map(int, d)) for d in event.deps])
    if cls is ev.TaskBatch:
        return event._replace(records=array("d", event.records))
    if cls is ev.TasksReady:
        return event._replace(tasks=tuple(map(int, event.tasks)))
    return event
