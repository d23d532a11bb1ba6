"""One way to write a file: atomically.

Every file proxysweep writes (shards, metrics, report, config, manifest, caches, downloads
once complete) goes through ``atomic_write`` or ``atomic_path`` (a secret it must not
replace, the local Ray token, through ``atomic_create``): the content is written to a
hidden temporary file beside the target, flushed to disk, and renamed over the target, so a
kill at any moment leaves either the old file or the new one, never a part. Temporary names
start with a dot, which Arrow's dataset readers skip, and carry ``TMP_MARK`` so that
``remove_temporaries`` can clear what a killed process left.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for its content in progress."""
    return path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex}")


@contextmanager
def atomic_path(path: str | os.PathLike[str], fsync: bool = True, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces
    ``path`` in one rename, on any error it is removed and ``path`` is left as it was.
    ``make_parents=False``: a missing folder is an error (FileNotFoundError), for writers
    that must not bring back a folder someone removed."""
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    if fsync:
        fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, fsync: bool = True) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; returns the path."""
    payload = data.encode() if isinstance(data, str) else data
    with atomic_path(path, fsync) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def atomic_create(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o600) -> bool:
    """Create ``path`` with ``data`` and permission ``mode`` unless it exists; returns
    whether this call created it. The content is complete and the mode set before the
    name appears (a hard link of the finished temporary file), so no reader, and no other
    user, ever sees a partial or more open file; of two racing creators one wins."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    payload = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, target)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return True


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporaries(folder: Path) -> int:
    """Delete the temporary files a killed writer left under ``folder``; returns how many."""
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(f".*{TMP_MARK}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
