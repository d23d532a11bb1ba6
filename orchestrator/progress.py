"""A progress line for long sweeps: cells done, rate, ETA; redrawn in place on a terminal,
one line every ``every`` seconds otherwise (logs, Slurm output files)."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Counts cells; the rate covers only cells scored in this run, not resumed ones."""

    def __init__(self, total: int, already: int = 0, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.total = total
        self.done = already
        self.start_done = already
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.2 if self.tty else every
        self.started = time.monotonic()
        self._last = 0.0
        self._drawn = -1

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        width = len(str(self.total))
        return (f"[{self.done:>{width}}/{self.total} cells] {pct:5.1f}%  {rate:.2f} cells/s  "
                f"elapsed {format_duration(time.monotonic() - self.started)}  ETA {format_duration(eta)}")

    def update(self, cells: int = 1) -> None:
        self.done += cells
        now = time.monotonic()
        if now - self._last >= self.every or self.done >= self.total:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        self._drawn = self.done
        if self.tty:
            self.stream.write("\r" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn != self.done:
            self._draw()
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
