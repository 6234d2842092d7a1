"""Copy-on-write for tasks that run on threads of the caller's process.

On worker processes every task reads its inputs through a private mapping:
whatever it writes into them, no other task and not the caller sees it.
Threads share one heap, so the default executor, when it places a graph on
threads, hands a task a *guarded* version of every value someone else may
also see (a captured argument, a result with several consumers or one the
caller asked for); a result with a single consumer is handed over as it is,
since no one else can see it.

What "guarded" means, by type (cheapest first):

* immutable values (numbers, str, bytes, None, ...): themselves;
* numpy arrays: a read-only view. A task that writes into it raises
  ``ValueError: ... read-only``; the runner then re-runs that task on
  private copies (``private``) and remembers the function, so later calls
  get copies at once: the write lands in a copy, as on a worker process;
* pandas objects: ``copy(deep=False)``, which pandas' copy-on-write (always
  on since pandas 3) turns into a real copy only when something is written;
* PIL images: a new Image on the same pixels marked ``readonly``, which
  Pillow copies before ``paste``, ``putpixel`` or drawing (pixel access
  objects raise, and the task is re-run on copies as for numpy);
* lists, tuples, dicts, sets: rebuilt around guarded items;
* anything else: ``copy.deepcopy`` (what a process would get from pickle).
"""

from __future__ import annotations

import copy
from typing import Any

# Types whose values a task cannot change: handed over as they are.
IMMUTABLE = frozenset({int, float, complex, str, bytes, bool, type(None), range, frozenset})
# Rebuilt around guarded items (tested before the module-name tests of other types).
_PLAIN_CONTAINERS = frozenset({list, tuple, set, dict})


def guarded(value: Any) -> Any:
    """A version of ``value`` a task may write into without anyone else seeing it (see above)."""
    return _whole(_guarded, value)


def _whole(copy_of: Any, value: Any) -> Any:
    """``copy_of(value)``, or a deep copy if ``value`` holds itself (``xs.append(xs)``),
    which rebuilding container by container would follow forever."""
    try:
        return copy_of(value)
    except RecursionError:
        return _deepcopy(value)


def _guarded(value: Any) -> Any:
    cls = type(value)
    if cls in IMMUTABLE:
        return value
    if cls in _PLAIN_CONTAINERS:
        return _rebuild(value, _guarded)
    module = cls.__module__
    if module == "numpy":
        if cls.__name__ == "ndarray":
            view = value.view()
            view.flags.writeable = False
            return view
        return value  # numpy scalars are immutable
    if module.startswith("pandas"):
        return _pandas_guarded(value)
    if module.startswith("PIL") and hasattr(value, "readonly") and hasattr(value, "_new"):
        view = value._new(value.im)
        view.readonly = 1
        return view
    return _other(value, _guarded)


def private(value: Any) -> Any:
    """A full private copy of ``value``: what a task that writes into read-only inputs gets."""
    return _whole(_private, value)


def _private(value: Any) -> Any:
    cls = type(value)
    if cls in IMMUTABLE:
        return value
    if cls in _PLAIN_CONTAINERS:
        return _rebuild(value, _private)
    if cls.__module__ == "numpy" and cls.__name__ == "ndarray":
        return value.copy()
    if cls.__module__.startswith("PIL") and hasattr(value, "copy"):
        return value.copy()
    return _other(value, _private)


def _other(value: Any, leaf: Any) -> Any:
    """What ``_guarded`` and ``_private`` do alike with a value of no type they know:
    a namedtuple rebuilt around ``leaf`` of its items, a plan reference as it is,
    anything else deep-copied."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return _rebuild(value, leaf)
    cls = type(value)
    if cls.__name__ == "Ref" and cls.__module__ == "fastdag.core.plan":
        return value
    return _deepcopy(value)


# Containers whose items, all immutable, need only a shallow copy (a tuple not even that).
_FLAT = {list: list.copy, set: set.copy, tuple: lambda t: t}


def _rebuild(value: Any, leaf: Any) -> Any:
    flat = _FLAT.get(type(value))
    if flat is not None:
        # ``f([0, 1])``: a type test per item, not a call per item (a tree of
        # ``sum([a, b])`` leaves spent more on guarding than on summing).
        for v in value:
            if type(v) not in IMMUTABLE:
                break
        else:
            return flat(value)
    if isinstance(value, dict):
        return type(value)({k: leaf(v) for k, v in value.items()})
    items = [leaf(v) for v in value]
    if hasattr(value, "_fields"):
        return type(value)(*items)
    return items if type(value) is list else type(value)(items)


def _pandas_guarded(value: Any) -> Any:
    import pandas as pd
    if not hasattr(value, "copy"):
        return value
    cow = int(pd.__version__.split(".")[0]) >= 3 or pd.options.mode.copy_on_write is True
    return value.copy(deep=not cow)


def _deepcopy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - locks, files, sockets: shared as they are
        return value


def wrote_read_only(exc: BaseException) -> bool:
    """Whether ``exc`` is a write into a guarded input (numpy's or Pillow's read-only error)."""
    if not isinstance(exc, (ValueError, TypeError)):
        return False
    text = str(exc).lower()
    return "read-only" in text or "readonly" in text or "read only" in text


def writeable(value: Any) -> Any:
    """A result for the caller: a read-only numpy array (a guarded input returned) is copied."""
    cls = type(value)
    if cls.__module__ == "numpy" and cls.__name__ == "ndarray" and not value.flags.writeable:
        return value.copy()
    if cls.__module__.startswith("PIL") and getattr(value, "readonly", 0) and hasattr(value, "copy"):
        return value.copy()
    return value
