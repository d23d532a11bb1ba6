"""A progress line for long sweeps: cells done, rate, ETA; redrawn in place on a terminal,
one line every ``every`` seconds otherwise (logs, Slurm output files)."""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def format_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class ProgressLine:
    """A status line: redrawn in place on a terminal (padded over the previous one), else
    written once at the first update, then at most every ``every`` seconds, and at the end.
    Subclasses say what the line holds (``line``) and when the work is complete."""

    def __init__(self, done: int, stream: TextIO, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.done = done
        self.start_done = done
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = 0.2 if self.tty else every
        self.clock = clock
        self.started = clock()
        self._last: float | None = None
        self._drawn = -1
        self._width = 0

    @property
    def rate(self) -> float:
        """Units per second done by this run (not those it started with)."""
        elapsed = self.clock() - self.started
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        raise NotImplementedError

    def complete(self) -> bool:
        return False

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self._last is None or now - self._last >= self.every or self.complete():
            self._last = now
            self._draw()

    def _draw(self) -> None:
        self._drawn = self.done
        line = self.line()
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state (if not drawn yet) and end the line on a terminal."""
        if self._drawn != self.done:
            self._draw()
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


class Progress(ProgressLine):
    """Counts cells; the rate covers only cells scored in this run, not resumed ones."""

    def __init__(self, total: int, already: int = 0, stream: TextIO | None = None, every: float = 10.0) -> None:
        super().__init__(already, stream or sys.stderr, every)
        self.total = total

    def complete(self) -> bool:
        return self.done >= self.total

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        width = len(str(self.total))
        return (f"[{self.done:>{width}}/{self.total} cells] {pct:5.1f}%  {rate:.2f} cells/s  "
                f"elapsed {format_duration(self.clock() - self.started)}  ETA {format_duration(eta)}")
