"""Child processes that end when their parent does, even in the middle of a task.

A worker process busy in a long task reads no messages, so it would not
notice that its client (or its ``fastdag worker`` supervisor) is gone: it
would run on, write results nobody frees, and retry forever. Two guards:

* Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the child
  the moment its parent ends, whatever the child is doing (even holding
  the GIL in a C extension). The "parent" is the *thread* that started the
  child, so parents start their children from a thread that lives as long
  as they do.
* Everywhere: a daemon thread that polls ``os.getppid()`` every
  ``INTERVAL`` seconds; an orphan is adopted by another process, so a
  changed parent pid means the parent is gone, and the child exits.

Either way the child ends without cleaning up: its files are swept by its
parent's successor (``store/files.sweep_orphans``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

INTERVAL = 0.25
_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid``, its parent, ends (see the module docstring)."""
    if sys.platform.startswith("linux"):
        _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:  # gone before the signal was armed
        _orphaned(parent_pid)
    threading.Thread(target=_watch, args=(parent_pid,), name="fastdag-lifeline",
                     daemon=True).start()


def _set_pdeathsig(signum: int) -> None:
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watcher thread still guards


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(INTERVAL)
    _orphaned(parent_pid)


def _orphaned(parent_pid: int) -> None:
    print(f"fastdag: parent process {parent_pid} is gone; worker {os.getpid()} exits",
          file=sys.stderr, flush=True)
    os._exit(1)
