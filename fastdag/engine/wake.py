"""Dormant workers: the message that wakes one, and what it imports before it reports up.

::

    client (executors/local.py)                         dormant worker (executors/boot.py)
    spawn, "dormant" ───────────────────────────────>  interpreter up, parent-death guard
                                                        armed; blocks on its pipe
    a graph needs the workers (executors/lazystart.py):
    wake_message(modules_to_preload(funcs)) ────────>  sleep_until_woken() -> module names;
                                                        boots, imports them, reports "up"
    shutting down first: closes the pipe ───────────>  end of file: exits (nothing to clean)

Why dormant: see ``executors/boot.py``. Why the modules: unpickling a
worker's first task imports the module of its function, and what that
imports (a user module importing numpy: 0.1 s); imported before "up", that
time is spent while the client's threads keep working, not while one of
them waits for the first task it sent.

The wake message is raw bytes, written before any framed message: ``WAKE``,
the length of the names, the names joined by newlines.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import types
from collections.abc import Callable, Iterable

WAKE = b"\x01"
_LENGTH = struct.Struct("!I")
MAX_PRELOAD = 64  # module names sent at most


def wake_message(modules: Iterable[str] = ()) -> bytes:
    """What wakes a dormant worker: ``WAKE``, then the modules it should import first."""
    names = "\n".join(modules).encode()
    return WAKE + _LENGTH.pack(len(names)) + names


def write_all(fd: int, data: bytes) -> None:
    """``data`` on the blocking pipe ``fd``, whole."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def modules_to_preload(funcs: Iterable[Callable]) -> list[str]:
    """The modules a worker would import to unpickle tasks of ``funcs``: where each is
    defined, and for one defined in ``__main__`` (which a worker never imports; its
    code travels by value) the modules its code names (``np`` of ``import numpy as np``).
    Only modules this process has imported, at most ``MAX_PRELOAD``."""
    names: dict[str, None] = {}
    for func in funcs:
        module = getattr(func, "__module__", None)
        if module != "__main__":
            names[module] = None
            continue
        code, scope = getattr(func, "__code__", None), getattr(func, "__globals__", {})
        for name in code.co_names if code is not None else ():
            value = scope.get(name)
            if isinstance(value, types.ModuleType):
                names[value.__name__] = None
    found = [n for n in names if isinstance(n, str) and n in sys.modules and n != "builtins"]
    return found[:MAX_PRELOAD]


def sleep_until_woken(fd: int, parent: int) -> list[str]:
    """Block until the client writes a ``wake_message`` on ``fd``; its module names.

    The worker dies with its client meanwhile (``lifeline``); end of file
    instead of the message (the client shut down first): it exits quietly.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle
    from .lifeline import exit_with_parent
    exit_with_parent(parent)
    head = _read_exactly(fd, 1 + _LENGTH.size)
    if head[:1] != WAKE:
        raise SystemExit(0)
    names = _read_exactly(fd, _LENGTH.unpack(head[1:])[0]).decode()
    return names.split("\n") if names else []


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise SystemExit(0)  # the client is gone
        data += chunk
    return data
