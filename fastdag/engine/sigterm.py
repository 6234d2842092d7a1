"""SIGTERM cleans up like Ctrl-C: live LocalExecutors stop and unlink their files.

Ctrl-C raises KeyboardInterrupt, the interpreter exits and ``atexit`` shuts
the executors down. SIGTERM's default action ends the process at once: no
``atexit``, so the workers' /dev/shm segments would stay. So the first
executor created on the main thread of a process that has no SIGTERM handler
installs one: it stops every live executor (``LocalExecutor.terminate``),
then restores the default action and sends itself SIGTERM again, so the
process still ends the way its parent expects (killed by signal 15).

A handler the user installed is left alone (it decides how the process ends;
``atexit`` cleans up if it exits), and so is a handler installed later.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from typing import Any

_live: weakref.WeakSet = weakref.WeakSet()
_installed = False


def watch(executor: Any) -> None:
    """Stop ``executor`` on SIGTERM (it has a ``terminate()``); install the handler if we may."""
    _live.add(executor)
    _install()


def _install() -> None:
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the user's handler (or one ignoring SIGTERM) decides
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True


def _on_sigterm(signum: int, frame: Any) -> None:  # noqa: ARG001
    global _installed
    for executor in list(_live):
        try:
            executor.terminate()
        except Exception:  # noqa: BLE001 - the process ends anyway: clean up what we can
            pass
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _installed = False
    os.kill(os.getpid(), signal.SIGTERM)  # the default action: end as SIGTERM ends a process
