"""A task's exception pickled so that the client rebuilds it, chain included.

    worker: exc ──dumps_exception──> bytes ──(SentFailure)──> client: pickle.loads -> exc

Plain pickle loses what users of a task's exception reach for:

* a custom exception whose ``__init__`` takes more than the message
  (``class ApiError(Exception): def __init__(self, msg, status)``) pickles as
  ``ApiError(*args)`` with ``args == (msg,)`` and fails to load;
* ``__cause__`` and ``__context__`` (``raise ValueError(...) from err``) are
  not pickled at all.

So the exception travels as a ``_Chained``: the exception itself when it
survives a pickle round trip here, else rebuilt field by field (``__new__``,
``args``, the picklable part of ``__dict__``, as ``copy`` would), plus its
cause and context the same way, a few links deep.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

CHAIN_MAX = 8  # links of __cause__ / __context__ kept; tracebacks show the rest as text


def dumps_exception(exc: BaseException) -> bytes:
    """``exc`` and its chain pickled so they load in the client; b"" if nothing will pickle."""
    try:
        return cloudpickle.dumps(_Chained(exc, CHAIN_MAX, set()))
    except Exception:  # noqa: BLE001 - the caller sends the type name and traceback text instead
        return b""


class _Chained:
    """An exception with the links of its chain, each made loadable on its own."""

    __slots__ = ("exc", "cause", "context", "suppress")

    def __init__(self, exc: BaseException, depth: int, seen: set[int]):
        seen.add(id(exc))
        self.exc = _loadable(exc)
        self.suppress = exc.__suppress_context__
        self.cause = _link(exc.__cause__, depth, seen)
        self.context = _link(exc.__context__, depth, seen)

    def __reduce__(self):
        return (_unchain, (self.exc, self.cause, self.context, self.suppress))


def _link(exc: BaseException | None, depth: int, seen: set[int]) -> _Chained | None:
    """The next link of a chain, or None past ``depth``, on a cycle, or if it will not pickle."""
    if exc is None or depth <= 0 or id(exc) in seen:
        return None
    try:
        link = _Chained(exc, depth - 1, seen)
        cloudpickle.dumps(link)
    except Exception:  # noqa: BLE001 - a link that cannot travel is left out, not the error
        return None
    return link


def _unchain(exc: BaseException, cause: BaseException | None, context: BaseException | None,
             suppress: bool) -> BaseException:
    exc.__cause__ = cause
    exc.__context__ = context
    exc.__suppress_context__ = suppress
    return exc


def _loadable(exc: BaseException) -> Any:
    """``exc`` if its own pickle loads again, else a ``_ByFields`` copy of it."""
    try:
        if type(pickle.loads(cloudpickle.dumps(exc))) is type(exc):
            return exc
    except Exception:  # noqa: BLE001 - any failure to round-trip: rebuild it by fields
        pass
    return _ByFields(exc)


class _ByFields:
    """Pickles an exception as its type, ``args`` and the attributes that pickle."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc

    def __reduce__(self):
        exc = self.exc
        state = {}
        for name, value in getattr(exc, "__dict__", {}).items():
            try:
                cloudpickle.dumps(value)
            except Exception:  # noqa: BLE001 - an attribute that cannot travel stays behind
                continue
            state[name] = value
        return (rebuild_exception, (type(exc), exc.args, state))


def reduce_exception(exc: BaseException) -> tuple | None:
    """A reduce tuple that rebuilds ``exc`` without calling its ``__init__``, for an
    exception pickled by ``BaseException``'s own reduce (which calls ``cls(*args)``
    and so fails for ``__init__(self, msg, code)``); None for one that pickles itself."""
    cls = type(exc)
    if cls.__reduce__ is not _BASE_REDUCE or cls.__reduce_ex__ is not _BASE_REDUCE_EX:
        return None
    return (rebuild_exception, (cls, exc.args, dict(getattr(exc, "__dict__", {}))))


_BASE_REDUCE, _BASE_REDUCE_EX = BaseException.__reduce__, BaseException.__reduce_ex__


def rebuild_exception(cls: type, args: tuple, state: dict) -> BaseException:
    """An exception of type ``cls`` with these ``args`` and attributes, ``__init__`` not called."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc
