"""Ctrl-C during a run in the caller's own thread: the caller's KeyboardInterrupt.

A task that raises ``KeyboardInterrupt`` itself fails as that task (a
``TaskError``), as it does in a worker process. But a SIGINT that lands
while a task runs in the main thread (``SyncExecutor``) is the user stopping
the computation, and ``except KeyboardInterrupt`` around ``compute()`` must
catch it. Both arrive as the same exception; to tell them apart, while such
a run goes the main thread's SIGINT handler is one that notes the signal
before raising as Python's default handler does. A handler of the user's own
is left alone (their handler decides what Ctrl-C means).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_signalled = False


def _note_and_raise(signum: int, frame: Any) -> None:
    global _signalled
    _signalled = True
    signal.default_int_handler(signum, frame)


@contextmanager
def watched() -> Iterator[None]:
    """Note SIGINTs that arrive in this block, when this is the main thread with
    Python's default SIGINT handler; nothing otherwise."""
    global _signalled
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _signalled = False
    signal.signal(signal.SIGINT, _note_and_raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def from_user(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt a SIGINT raised in a ``watched()`` block."""
    return type(exc) is KeyboardInterrupt and _signalled
