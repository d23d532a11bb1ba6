"""The sweep's state on disk: one Parquet file per finished shard, written atomically.

Layout: ``<out>/scores/<space>/<dataset>/seed<N>/shard-<digest>.parquet`` (plain folder
names, so pandas, Arrow, DuckDB and Polars read ``scores/`` with the columns of the files
alone). A file appears under its final name only by renaming a complete temporary file
(``orchestrator.files``), and it counts as finished only if its footer checks out: a
readable Parquet file of this schema whose metadata names its job, cells and proxies, with
the row count they imply and the fingerprints of ``sweep.json`` (``orchestrator.manifest``).
Checking reads footers only, so listing the state of tens of thousands of files stays
cheap. A file that fails (cut short, damaged, another sweep's, a stray) is moved to
``<out>/quarantine/`` for inspection, reported in one line, and its work is scored again.
The valid files ARE the sweep's state: resuming needs no other bookkeeping.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import os
import platform
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from orchestrator.errors import SweepError
from orchestrator.files import atomic_path, remove_temporaries
from orchestrator.manifest import FORMAT, Manifest
from orchestrator.plan import Job, Shard, shard_name

SCORES_DIR = "scores"
QUARANTINE_DIR = "quarantine"
LOCK_FILE = ".lock"
SHARD_RE = re.compile(r"^shard-[0-9a-f]{16}\.parquet$")
JOB_RE = re.compile(r"^seed(-?\d+)$")
#: footer metadata key of a shard's description (job, cells, proxy fingerprints)
SHARD_KEY = b"proxysweep.shard"


def _field(name: str, dtype: pa.DataType, doc: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, dtype, nullable=nullable, metadata={"doc": doc})


SCHEMA = pa.schema(
    [
        _field("space", pa.string(), "search space name"),
        _field("dataset", pa.string(), "dataset of the fixed batch and the network head"),
        _field("seed", pa.int64(), "sweep seed: fixes the batches and, with the cell, the init"),
        _field("arch_id", pa.string(), "the benchmark's own cell id (NB201 index, NB101 hash)"),
        _field("arch", pa.string(), "cell spec string"),
        _field("proxy", pa.string(), "proxy name"),
        _field("score", pa.float64(), "the proxy's value: nan or +-inf when status is nonfinite, null when error", True),
        _field("status", pa.string(), "ok, nonfinite (the value was nan or inf) or error"),
        _field("error", pa.string(), "what went wrong, for status other than ok", True),
        _field(
            "seconds", pa.float64(),
            "what this proxy would cost alone: its own work plus every shared pass it used "
            "(building the model included), whoever ran that pass first",
        ),
        _field(
            "shared_seconds", pa.float64(),
            "the part of seconds spent in shared passes (model build, loss gradients, ...), "
            "which other proxies of the same cell may have used too",
        ),
        _field("worker", pa.string(), "name of the scorer actor"),
        _field("device", pa.string(), "torch device the cell ran on"),
        _field("host", pa.string(), "host name of the worker"),
    ]
)


def versions() -> dict[str, str]:
    """Versions that can change scores, recorded in every shard file."""
    import numpy
    import ray
    import torch

    from orchestrator import __version__

    return {
        "proxysweep": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "ray": ray.__version__,
        "pyarrow": pa.__version__,
    }


#: threads that check shard footers: one per core (2 to 8); a footer's check is mostly
#: Python, so threads beyond the cores only wait for the GIL (nb101_all: 10 s with 2, 14 s
#: with 8 on 2 cores)
SCAN_THREADS = max(2, min(8, os.cpu_count() or 2))


@dataclass(frozen=True)
class StoredShard:
    """A valid shard file and what its footer says it holds."""

    path: Path
    job: Job
    ids: tuple[str, ...]
    proxies: tuple[str, ...]


@dataclass
class Scan:
    """The valid shard files of a folder, and the files set aside while listing them."""

    shards: list[StoredShard] = field(default_factory=list)
    quarantined: list[tuple[Path, str]] = field(default_factory=list)  # (where it went, why)


def covered(shards: Iterable[StoredShard], job: Job) -> dict[str, frozenset[str]]:
    """Cell id -> proxies with a stored row in ``shards``, for ``job``. The cells of a shard
    share one set (a set per cell costs about 0.7 KB: a gigabyte for nb101_all)."""
    out: dict[str, frozenset[str]] = {}
    for shard in shards:
        if shard.job == job:
            _add(out, shard.ids, frozenset(shard.proxies))
    return out


def _add(cells: dict[str, frozenset[str]], ids: Iterable[str], proxies: frozenset[str]) -> None:
    for cell_id in ids:
        have = cells.get(cell_id)
        cells[cell_id] = proxies if have is None else have | proxies


def _utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


@functools.cache
def _parquet_columns() -> pq.ParquetSchema:
    """The Parquet columns a scores file has (names, physical and logical types, required
    or not), as ``write_shard`` writes them."""
    sink = pa.BufferOutputStream()
    pq.write_table(SCHEMA.empty_table(), sink)
    return pq.read_metadata(pa.BufferReader(sink.getvalue())).schema


class ScoreStore:
    """Reads and writes one sweep's output folder."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.scores_dir = self.out_dir / SCORES_DIR
        self._lock_fh: Any = None
        self._made: list[Path] = []  # what ``lock`` created: folders (outermost first), then the lock file

    # -- ownership ---------------------------------------------------------------------
    def lock(self) -> None:
        """Take the folder for this driver; SweepError if another live driver holds it.
        The lock is the kernel's (flock): it dies with its process, so a driver killed with
        SIGKILL never leaves a stale lock behind."""
        made = [p for p in (*reversed(self.out_dir.parents), self.out_dir) if not p.exists()]
        if not (self.out_dir / LOCK_FILE).exists():
            made.append(self.out_dir / LOCK_FILE)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fh = open(self.out_dir / LOCK_FILE, "a+")
        except OSError as exc:
            raise SweepError(f"cannot write to out_dir {self.out_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise SweepError(f"another proxysweep driver is writing to {self.out_dir}; wait for it or use another out_dir") from None
        self._lock_fh = fh
        self._made = made

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def abandon(self) -> None:
        """Unlock after a run that stopped before writing anything (bad input): remove the
        lock file and the folders ``lock`` created, those left empty, so the place is as
        the run found it."""
        lock_made = self._made[-1:] == [self.out_dir / LOCK_FILE]
        if lock_made and self._lock_fh is not None:
            Path(self.out_dir / LOCK_FILE).unlink(missing_ok=True)  # still held: nobody took it meanwhile
        self.unlock()
        for folder in reversed(self._made[:-1] if lock_made else self._made):
            try:
                folder.rmdir()
            except OSError:  # not empty (something else was written), or gone
                break
        self._made = []

    def check_intact(self) -> None:
        """SweepError if the folder this driver locked was removed or replaced meanwhile
        (its lock file is gone or another one)."""
        try:
            same = os.stat(self.out_dir / LOCK_FILE).st_ino == os.fstat(self._lock_fh.fileno()).st_ino
        except (OSError, AttributeError):
            same = False
        if not same:
            raise SweepError(f"out_dir {self.out_dir} was removed or replaced while the sweep ran; "
                             "nothing more is written there: restore it (or choose another out_dir) and rerun")

    def remove_temporaries(self) -> int:
        """Delete half-written files left by a driver that was killed; returns how many."""
        return remove_temporaries(self.out_dir)

    # -- shards ------------------------------------------------------------------------
    def job_dir(self, job: Job) -> Path:
        return self.scores_dir / job.folder

    def shard_path(self, shard: Shard) -> Path:
        return self.job_dir(shard.job) / f"{shard.name}.parquet"

    def write_shard(self, shard: Shard, rows: Sequence[Mapping[str, Any]], manifest: Manifest,
                    metadata: Mapping[str, str]) -> Path:
        """Write the rows of a finished shard under its final name, atomically; its footer
        describes it (job, cells, proxy fingerprints) so that it can be checked later."""
        got = sorted((r["arch_id"], r["proxy"]) for r in rows)
        if got != sorted((c, p) for c in shard.ids for p in shard.proxies):
            raise RuntimeError(f"{shard.name}: the rows do not match its cells and proxies")
        fingerprints = {p: manifest.fingerprint(p, shard.job) for p in shard.proxies}
        description = {"format": FORMAT, "job": [shard.job.space, shard.job.dataset, shard.job.seed],
                       "cells": list(shard.ids), "proxies": fingerprints}
        meta = {SHARD_KEY: json.dumps(description).encode(), **{k.encode(): v.encode() for k, v in metadata.items()}}
        table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
        table = table.replace_schema_metadata({**(SCHEMA.metadata or {}), **meta})
        path = self.shard_path(shard)
        self._make_job_dir(shard.job)
        with atomic_path(path, make_parents=False) as tmp:
            pq.write_table(table, tmp)
        return path

    def _make_job_dir(self, job: Job) -> None:
        """Create ``scores/<job>`` one level at a time below ``out_dir``, but never
        ``out_dir`` itself: a folder removed while the sweep runs stays removed, and the
        write fails (FileNotFoundError) instead of bringing it back."""
        folder = self.out_dir
        for part in (SCORES_DIR, *Path(job.folder).parts):
            folder = folder / part
            try:
                folder.mkdir()
            except FileExistsError:
                pass

    def scan(self, manifest: Manifest | None, quarantine: bool = True) -> Scan:
        """Check every file under ``scores/`` by its footer against ``manifest``; the
        valid ones are the folder's state. The others are moved to ``quarantine/`` (or,
        with ``quarantine=False``, only left out) with the reason."""
        scan = Scan()
        if not self.scores_dir.is_dir():
            return scan
        files = sorted(p for p in self.scores_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        # the same few fingerprints (proxy, job) for every file: computed once each
        fingerprint = functools.lru_cache(maxsize=None)(manifest.fingerprint) if manifest else None
        # a few threads, each given a whole run of files: reading a footer releases the GIL,
        # and one task per file would cost more in futures than the check itself
        chunks = [files[k::SCAN_THREADS] for k in range(SCAN_THREADS)]
        with ThreadPoolExecutor(max_workers=SCAN_THREADS) as pool:
            checked = sorted((pair for part in pool.map(lambda run: [(p, _check_file(self.scores_dir, p, fingerprint))
                                                                     for p in run], chunks) for pair in part),
                             key=lambda pair: pair[0])
        held: dict[Job, dict[str, frozenset[str]]] = {}
        for path, result in checked:
            if isinstance(result, StoredShard):
                cells = held.setdefault(result.job, {})
                proxies = frozenset(result.proxies)
                if any(not proxies.isdisjoint(cells.get(c, ())) for c in result.ids):
                    result = "holds scores another shard file holds already"
                else:
                    _add(cells, result.ids, proxies)
                    scan.shards.append(result)
                    continue
            reason = str(result)
            scan.quarantined.append((self.quarantine(path) if quarantine else path, reason))
        return scan

    def quarantine(self, path: Path) -> Path:
        """Move a file out of ``scores/`` into ``quarantine/`` (same relative path, a time
        stamp added), keeping it for inspection; returns where it went."""
        target = self.out_dir / QUARANTINE_DIR / path.relative_to(self.scores_dir)
        target = target.with_name(f"{target.name}.corrupt-{_utc_stamp()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return target

    def with_errors(self, shards: Iterable[StoredShard]) -> list[StoredShard]:
        """The shards among ``shards`` that hold at least one error row."""
        return [s for s in shards if "error" in pq.read_table(s.path, columns=["status"])["status"].to_pylist()]

    def read_scores(self, shards: Iterable[StoredShard], columns: Iterable[str] | None = None) -> pa.Table:
        """The rows of ``shards`` (empty table with the schema if none)."""
        files = sorted(str(s.path) for s in shards)
        if not files:
            return SCHEMA.empty_table()
        dataset = pads.dataset(files, schema=SCHEMA, format="parquet")
        return dataset.to_table(columns=list(columns) if columns else None)


def _check_file(scores_dir: Path, path: Path,
                fingerprint: Callable[[str, Job], str | None] | None) -> StoredShard | str:
    """The shard a file is, or why it is not a valid one (footer and metadata only);
    ``fingerprint``: the folder manifest's (None: the folder has no sweep.json)."""
    parts = path.relative_to(scores_dir).parts
    seed = JOB_RE.match(parts[2]) if len(parts) == 4 else None
    if seed is None or not SHARD_RE.match(path.name):
        return "not a shard file of this layout (scores/<space>/<dataset>/seed<N>/shard-<digest>.parquet)"
    folder_job = Job(parts[0], parts[1], int(seed.group(1)))
    try:
        footer = pq.read_metadata(path)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError, ArrowIOError an OSError
        return f"unreadable Parquet ({' '.join(str(exc).split())[:200]})"
    try:
        info = json.loads((footer.metadata or {})[SHARD_KEY])
        job = Job(str(info["job"][0]), str(info["job"][1]), int(info["job"][2]))
        ids = tuple(str(c) for c in info["cells"])
        fingerprints = {str(k): str(v) for k, v in info["proxies"].items()}
    except (KeyError, ValueError, TypeError, IndexError):
        return "no proxysweep shard description in its footer"
    proxies = tuple(fingerprints)
    if job != folder_job or path.stem != shard_name(job, ids, proxies):
        return "its footer describes another shard than its name and folder say"
    if not footer.schema.equals(_parquet_columns()):  # 25 times cheaper than comparing Arrow schemas
        return "its columns are not those of a scores file"
    if footer.num_rows != len(ids) * len(proxies):
        return f"{footer.num_rows} rows where its {len(ids)} cells x {len(proxies)} proxies need {len(ids) * len(proxies)}"
    if fingerprint is None:
        return "the folder has no sweep.json to check it against"
    wrong = [p for p, fp in fingerprints.items() if fingerprint(p, job) != fp]
    if wrong:
        return f"scored with other settings than this folder's sweep.json ({', '.join(wrong)})"
    return StoredShard(path, job, ids, proxies)
