"""A resumable HTTP download into a ``.part`` file, with a progress line.

The transfer follows HTTP/1.1 range requests (RFC 9110, section 14): a rerun after a cut
connection asks for ``Range: bytes=N-``, where N is the size of the ``.part`` file, and
appends what a ``206 Partial Content`` answer carries (its ``Content-Range`` must start at
N). A server that answers ``200`` sends the whole file, so the ``.part`` file is emptied and
the download starts again from zero; ``416`` (nothing after N) means the ``.part`` file may
already be whole, and the caller's checksum decides. Only the standard library is used
(``urllib.request``), as the project avoids new dependencies.

Choices:
- the ``.part`` file is locked (``fcntl.flock``) while written, so two fetches into the same
  folder fail clearly instead of interleaving bytes;
- progress goes to stdout, so that stderr holds only the one-line error of a failed run;
  on a terminal the line is redrawn in place (``\\r``), otherwise one line every few seconds
  (logs, CI output) and a last one at the end.
"""
from __future__ import annotations

import fcntl
import http.client
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

from orchestrator.data import DataError, one_line
from orchestrator.progress import ProgressLine, format_duration

CHUNK = 1 << 16
USER_AGENT = "proxysweep-data/0.1 (python urllib)"
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
MIB = float(1 << 20)


class CutConnection(DataError):
    """The transfer stopped before the end; the ``.part`` file keeps what arrived."""

    def __init__(self, have: int, total: int | None) -> None:
        self.have, self.total = have, total
        of = f"{total:,}" if total is not None else "an unknown number of"
        super().__init__(f"connection cut after {have:,} of {of} bytes; rerun the same command to resume")


class Busy(DataError):
    """Another process holds the ``.part`` file."""


class ByteProgress(ProgressLine):
    """Bytes done of the total, percent, rate and ETA of one transfer."""

    def __init__(self, label: str, total: int | None, start: int = 0, stream: TextIO | None = None,
                 every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(start, stream or sys.stdout, every, clock)
        self.label, self.total = label, total

    def line(self) -> str:
        rate = self.rate
        if self.total:
            pct = f"{100.0 * self.done / self.total:5.1f}%"
            size = f"{self.done / MIB:.1f}/{self.total / MIB:.1f} MiB"
            eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        else:
            pct, size, eta = "    ?%", f"{self.done / MIB:.1f} MiB", "?"
        return f"{self.label}: {size} {pct} {rate / MIB:.2f} MiB/s ETA {eta}"


def _open(url: str, have: int, timeout: float) -> http.client.HTTPResponse | None:
    """The server's answer, asking for the bytes after ``have``; None for 416."""
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            exc.close()
            return None
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise DataError(f"cannot download {url}: {one_line(reason) if isinstance(reason, BaseException) else reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DataError(f"cannot download {url}: {one_line(exc)}") from None


def _length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def download(url: str, part: Path, timeout: float = 60.0, stream: TextIO | None = None,
             label: str | None = None, note: Callable[[str], None] = print) -> int:
    """Download ``url`` into ``part``, continuing what ``part`` already holds; returns its
    final size. CutConnection (a DataError) when the transfer stops early."""
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _download(url, part, timeout, stream, label, note)
    except Busy:
        raise
    except DataError:
        if part.exists() and part.stat().st_size == 0:  # nothing arrived: leave no empty file
            part.unlink()
        raise


def _download(url: str, part: Path, timeout: float, stream: TextIO | None, label: str | None,
              note: Callable[[str], None]) -> int:
    with open(part, "ab") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another fetch is writing {part}; wait for it to finish") from None
        have = fh.tell()
        response = _open(url, have, timeout)
        if response is None:  # 416: the server has nothing after `have`
            return have
        with response:
            total = _length(response.headers.get("Content-Length"))
            if have and response.status == 206:
                match = CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
                if not match or int(match.group(1)) != have:
                    raise DataError(f"cannot resume {url}: the server sent the range "
                                    f"{response.headers.get('Content-Range')!r} for bytes={have}-; "
                                    f"delete {part} and rerun")
                total = _length(match.group(3))
                note(f"resuming {part.name} at byte {have:,}")
            else:
                if have:
                    note(f"the server ignored the resume request (HTTP {response.status}): downloading from the start")
                fh.truncate(0)
                have = 0
            return _copy(response, fh, have, total, label or part.name, stream)


def _copy(response: http.client.HTTPResponse, fh: BinaryIO, have: int, total: int | None,
          label: str, stream: TextIO | None) -> int:
    """Append the body to ``fh``; ``total`` is the size of the whole file when known."""
    progress = ByteProgress(label, total, have, stream)
    cut = False
    try:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException):  # IncompleteRead, reset, timeout
                cut = True
                break
            if not chunk:
                break
            fh.write(chunk)
            have += len(chunk)
            progress.update(len(chunk))
    except KeyboardInterrupt:
        fh.flush()
        progress.close()
        raise DataError(f"interrupted after {have:,} bytes; rerun the same command to resume") from None
    fh.flush()
    progress.close()
    if cut or (total is not None and have < total):
        raise CutConnection(have, total)
    return have
