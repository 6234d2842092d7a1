"""When the default executor starts its worker processes: once a graph needs them.

::

    a graph of functions never seen, no worker yet ──> threads (placement.py)
        └─ watched: every WINDOW_S, the GIL sampler's held time in that window;
           more than 1/workers of it; or, once the run
           has lasted LONG_RUN_S, more than half that
           since it began ─────────────────────────────> start the workers (in the background)
    a graph measured GIL-bound, or using a gil=True function ──> start the workers
    a graph of GIL-releasing functions (numpy, pandas, Pillow) ──> no worker is started

Why: on a fresh interpreter, the first ``compute()`` of numpy or Pillow code
runs on threads, and would keep running there; two workers booting beside
it (an interpreter and fastdag's modules each) take CPU from those threads
on a small machine, and each return from C into Python waits for the GIL
behind the scheduler thread that starts them. Pure-Python work, which only
processes run in parallel, shows itself within a window or two: its
threads hold the GIL nearly all the time, as on a worker ``placement.py``
would send it to (held fraction x workers > 1). On a loaded machine the
sampler, which discounts the time it waited for a CPU, sees less of it
(seen: no window over the bar for 0.6 s of a pure-Python graph); a run
still going after ``LONG_RUN_S`` (about what the workers take to boot, so
long enough to use them) starts them at half the bar, over its whole
length. A long numpy or Pillow graph, whose threads hold the GIL a tenth
of the time or less, stays below both.

The workers are told the modules of the functions of the graph that
started them (``modules_to_preload``), which they import before they report
"up": unpickling their first task would import them anyway (a user module
that imports numpy: 0.1 s), and meanwhile the client's threads keep
working, not a thread waiting for the first task it offloaded.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterable
from typing import Any

from ..core.gil import GilSampler

WINDOW_S = 0.05  # a pure-Python first graph starts the workers this late at most (plus a window)
LONG_RUN_S = 0.3  # from then on, the bar is half as high, over the whole run
MAX_PRELOAD = 64  # module names given to the workers at most


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


class LazyStart:
    """Starts the workers (``start(funcs)``, at most once, with the functions of the graph
    that needs them) when a graph on threads needs them."""

    def __init__(self, start: Callable[[list[Callable]], None], sampler: GilSampler,
                 workers: int):
        self._start = start
        self._sampler = sampler
        self._workers = workers
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.started = False

    def now(self, funcs: list[Callable]) -> None:
        """Start the workers for a graph of ``funcs``, unless started already or closed."""
        with self._lock:
            if self.started or self._closed.is_set():
                return
            self.started = True
        try:
            self._start(funcs)
        except Exception:  # noqa: BLE001 - shut down meanwhile, or /dev/shm unusable:
            pass           # the next graph sent to the workers starts them, and raises

    def watch(self, future: Any, funcs: list[Callable]) -> None:
        """Start the workers if the run of ``future`` (on threads, sampled; a graph of
        ``funcs``) holds the GIL."""
        if self.started:
            return
        done = threading.Event()  # the watcher keeps no reference to the future: its result
        future.add_done_callback(lambda _f: done.set())
        threading.Thread(target=self._watch, args=(done, funcs), name="fastdag-lazystart",
                         daemon=True).start()

    def _watch(self, done: threading.Event, funcs: list[Callable]) -> None:
        sampler, clock, workers = self._sampler, time.perf_counter, self._workers
        held, at = sampler.held, clock()
        first_held, begin = held, at
        while not self.started and not self._closed.is_set():
            if done.wait(WINDOW_S):
                return
            now_held, now = sampler.held, clock()
            if ((now_held - held) * workers > now - at
                    or (now - begin >= LONG_RUN_S
                        and 2 * (now_held - first_held) * workers > now - begin)):
                self.now(funcs)
                return
            held, at = now_held, now

    def close(self) -> None:
        """Start nothing from now on (the executor is shutting down)."""
        self._closed.set()
