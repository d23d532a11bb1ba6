"""Expand a sweep into jobs (space, dataset, seed) and each job into shards of cells.

The plan is a pure function of the settings and the space's cell table: the same config
gives the same shards, so a rerun finds its earlier shard files by name. Shards hold cell
ids and spec strings only, never models, so planning all of NAS-Bench-101 stays small.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Any, Iterator, Mapping, Sequence

import numpy as np

from orchestrator.errors import SweepError
from spaces.base import CellTable


@dataclass(frozen=True, order=True)
class Job:
    """One (space, dataset, seed) combination; its shards cover the selected cells."""

    space: str
    dataset: str
    seed: int

    @property
    def partition(self) -> str:
        return f"space={self.space}/dataset={self.dataset}/seed={self.seed}"


@dataclass(frozen=True)
class Shard:
    """Cells ``ids[i]`` with spec strings ``archs[i]``; ``index`` names its file."""

    job: Job
    index: int
    ids: Sequence[str]
    archs: Sequence[str]

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Plan:
    """Jobs in order and, for every job, the same split of the selected cells."""

    jobs: tuple[Job, ...]
    ids: Sequence[str]
    archs: Sequence[str]
    shard_size: int

    @property
    def shards_per_job(self) -> int:
        return -(-len(self.ids) // self.shard_size)

    def shard(self, job: Job, index: int) -> Shard:
        lo, hi = index * self.shard_size, min((index + 1) * self.shard_size, len(self.ids))
        return Shard(job, index, self.ids[lo:hi], self.archs[lo:hi])

    def shards(self, job: Job) -> Iterator[Shard]:
        for index in range(self.shards_per_job):
            yield self.shard(job, index)

    @property
    def total_cells(self) -> int:
        return len(self.jobs) * len(self.ids)


def read_id_file(path: Path) -> list[str]:
    """Ids from a text file: one per line, blank lines and '#' comments ignored."""
    ids = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    if not ids:
        raise SweepError(f"cells.path {path} lists no ids")
    return ids


def select_positions(
    table: CellTable, cells: Mapping[str, Any], truth_ids: AbstractSet[str] | None = None
) -> np.ndarray:
    """Positions (in official order, ascending) of the cells the selection names;
    ``truth_ids`` (the cells with ground truth) serves ``select: truth``."""
    total = len(table)
    select = cells["select"]
    if select == "all":
        return np.arange(total)
    if select == "truth":
        if truth_ids is None:
            raise SweepError("cells=truth needs the ids of the cells with ground truth")
        with_truth = np.array([i for i, cell_id in enumerate(table.ids) if cell_id in truth_ids], dtype=np.int64)
        if not len(with_truth):
            raise SweepError("no cell of the space has ground truth")
        if cells.get("n") is None:
            return with_truth
        return _seeded_sample(with_truth, cells, f"the {len(with_truth)} cells with ground truth")
    if select == "sample":
        return _seeded_sample(np.arange(total), cells, f"the space ({total} cells)")
    if select == "range":
        start, stop = int(cells["start"]), int(cells["stop"])
        if stop > total:
            raise SweepError(f"cells.stop={stop} is past the end of the space ({total} cells)")
        return np.arange(start, stop)
    wanted = read_id_file(Path(cells["path"])) if select == "file" else list(cells["ids"])
    position = {cell_id: i for i, cell_id in enumerate(table.ids)}
    unknown = [c for c in wanted if c not in position]
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise SweepError(f"{len(unknown)} cell id(s) not in the space: {shown}")
    if len(set(wanted)) != len(wanted):
        raise SweepError("the cell id list names a cell twice")
    return np.asarray(sorted(position[c] for c in wanted))


def _seeded_sample(positions: np.ndarray, cells: Mapping[str, Any], pool: str) -> np.ndarray:
    """``cells.n`` of ``positions`` drawn without replacement with ``cells.seed``, ascending."""
    n = int(cells["n"])
    if n > len(positions):
        raise SweepError(f"cells.n={n} is larger than {pool}")
    rng = np.random.Generator(np.random.PCG64(int(cells["seed"])))
    return np.sort(rng.choice(positions, size=n, replace=False))


def make_plan(
    space: str, datasets: Sequence[str], seeds: Sequence[int], table: CellTable,
    cells: Mapping[str, Any], shard_size: int, truth_ids: AbstractSet[str] | None = None,
) -> Plan:
    """Jobs dataset-major, then seed; cells in official order split every ``shard_size``."""
    positions = select_positions(table, cells, truth_ids)
    ids = [table.ids[i] for i in positions]
    archs = [table.archs[i] for i in positions]
    jobs = tuple(Job(space, d, s) for d in datasets for s in seeds)
    return Plan(jobs, ids, archs, shard_size)


def fingerprint(parts: Mapping[str, Any], ids: Sequence[str]) -> str:
    """A digest of the score-relevant settings and of the selected cells."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for cell_id in ids:
        digest.update(cell_id.encode() + b"\n")
    return digest.hexdigest()
