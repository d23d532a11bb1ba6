"""The sweep's state on disk: one Parquet file per finished shard, written atomically.

Layout: ``<out>/scores/space=S/dataset=D/seed=N/shard-NNNNN.parquet``. A file appears under
its final name only by ``os.replace`` of a complete temporary file, so listing the shard
files IS the list of finished work: resuming needs no other bookkeeping. ``sweep.json``
records the score-relevant settings, so a rerun with other settings into the same folder
is refused instead of silently mixing results.
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from orchestrator.errors import SweepError
from orchestrator.plan import Job, Shard

SCORES_DIR = "scores"
MANIFEST = "sweep.json"
SHARD_RE = re.compile(r"^shard-(\d{5,})\.parquet$")
TMP_MARK = ".tmp-"


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


class ScoreStore:
    """Reads and writes one sweep's output folder."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.scores_dir = self.out_dir / SCORES_DIR
        self._lock_fh: Any = None

    # -- ownership ---------------------------------------------------------------------
    def lock(self) -> None:
        """Take the folder for this driver; SweepError if another live driver holds it."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.out_dir / ".lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise SweepError(f"another proxysweep driver is writing to {self.out_dir}; wait for it or use another out_dir") from None
        self._lock_fh = fh

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def check_manifest(self, fingerprint: str, parts: Mapping[str, Any]) -> None:
        """Write ``sweep.json`` on first use; refuse a folder made with other settings."""
        path = self.out_dir / MANIFEST
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("fingerprint") != fingerprint:
                changed = sorted(k for k in set(parts) | set(old.get("settings", {}))
                                 if parts.get(k) != old.get("settings", {}).get(k))
                raise SweepError(
                    f"{self.out_dir} holds scores of a sweep with other settings "
                    f"(different: {', '.join(changed) or 'selected cells'}); "
                    "choose another out_dir or delete that folder"
                )
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        payload = {"fingerprint": fingerprint, "settings": parts}
        _atomic_write_bytes(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())

    # -- shards ------------------------------------------------------------------------
    def job_dir(self, job: Job) -> Path:
        return self.scores_dir / job.partition

    def shard_path(self, shard: Shard) -> Path:
        return self.job_dir(shard.job) / f"{shard.name}.parquet"

    def finished(self, job: Job) -> set[int]:
        """Indices of the shards of ``job`` whose files exist."""
        folder = self.job_dir(job)
        if not folder.is_dir():
            return set()
        return {int(m.group(1)) for p in folder.iterdir() if (m := SHARD_RE.match(p.name))}

    def with_errors(self, job: Job) -> set[int]:
        """Indices of the finished shards of ``job`` that hold at least one error row."""
        folder = self.job_dir(job)
        if not folder.is_dir():
            return set()
        return {
            int(m.group(1)) for p in folder.iterdir()
            if (m := SHARD_RE.match(p.name)) and "error" in pq.read_table(p, columns=["status"])["status"].to_pylist()
        }

    def remove_temporaries(self) -> int:
        """Delete half-written files left by a driver that was killed; returns how many."""
        if not self.scores_dir.is_dir():
            return 0
        stale = [p for p in self.scores_dir.rglob(f"*{TMP_MARK}*") if p.is_file()]
        for p in stale:
            p.unlink()
        return len(stale)

    def write_shard(self, shard: Shard, rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, str]) -> Path:
        """Write the rows of a finished shard under its final name, atomically."""
        table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
        meta = {k.encode(): v.encode() for k, v in metadata.items()}
        meta[b"proxysweep.shard"] = json.dumps(
            {"job": shard.job.partition, "index": shard.index, "cells": len(shard)}
        ).encode()
        table = table.replace_schema_metadata({**(SCHEMA.metadata or {}), **meta})
        path = self.shard_path(shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex}")
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        _fsync_dir(path.parent)
        return path

    def read_scores(self, columns: Iterable[str] | None = None) -> pa.Table:
        """All finished rows of the sweep (empty table with the schema if none)."""
        files = sorted(str(p) for p in self.scores_dir.rglob("shard-*.parquet") if SHARD_RE.match(p.name))
        if not files:
            return SCHEMA.empty_table()
        dataset = pads.dataset(files, schema=SCHEMA, format="parquet")
        return dataset.to_table(columns=list(columns) if columns else None)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
