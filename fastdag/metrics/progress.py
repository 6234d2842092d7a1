"""A one-line progress display on a terminal: tasks done / total, elapsed time.

::

    executor events ──> RunRecorder.progress(run) ──> monitor.Watch ──> RunProgress ──> ProgressLine

The counts come from the run's event stream (the executor's run recorder
counts finished tasks from ``TaskBatch`` / ``TaskFinished`` events), the same
for every executor. Only formatting and drawing live here; ``monitor.py``
decides when to draw.
The line is rewritten in place with a carriage return, so it is only drawn
on a terminal: in a log file or a pipe the control characters would be noise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

# A run is shown once it has lasted this long: short runs stay silent.
PROGRESS_DELAY = 1.0
# Seconds between two redraws.
REDRAW_INTERVAL = 0.2


@dataclass
class RunProgress:
    """What one running run looks like at one moment."""

    name: str
    done: int
    total: int
    elapsed: float


def wants_progress(option: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to show progress: ``option`` if given, else whether ``stream`` is a terminal."""
    if option is not None:
        return bool(option)
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def format_progress(p: RunProgress, width: int = 20) -> str:
    """``name [#####.....] 1234/4095 tasks  30%  3.2 s``."""
    frac = p.done / p.total if p.total else 0.0
    filled = int(round(frac * width))
    bar = "#" * filled + "." * (width - filled)
    label = f"{p.name} " if p.name else ""
    return f"{label}[{bar}] {p.done}/{p.total} tasks {frac:4.0%} {p.elapsed:6.1f} s"


class ProgressLine:
    """Draws the progress of the runs in flight on one terminal line."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.drawn = False

    def _out(self) -> TextIO:
        return sys.stderr if self.stream is None else self.stream

    def draw(self, runs: list[RunProgress]) -> None:
        """Rewrite the line with every run in ``runs`` (separated by `` | ``)."""
        if not runs:
            return
        text = "fastdag: " + " | ".join(format_progress(p) for p in runs)
        self._write("\r" + text + "\x1b[K")
        self.drawn = True

    def finish(self, final: RunProgress) -> None:
        """Leave the final state of a finished run on its own line."""
        self._write("\r" + "fastdag: " + format_progress(final) + "\x1b[K\n")
        self.drawn = False

    def _write(self, text: str) -> None:
        out = self._out()
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):  # the terminal went away: progress is best effort
            pass
