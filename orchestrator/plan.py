"""Expand a sweep into jobs (space, dataset, seed) and the work still missing into shards.

A sweep asks for every (cell, proxy) of its selection in each job. What is stored already
(the shard files, ``store``) covers some of those pairs; a shard is a group of cells that
miss the same proxies, at most ``shard_size`` cells, and is named by a digest of its job,
cells and proxies. So the same request against the same folder always gives the same
shards; a sweep extended by a proxy, a seed, a dataset or cells gets shards of exactly the
missing pairs; and no pair is ever in two shards. Shards hold cell ids and spec strings
only, never models, so planning all of NAS-Bench-101 stays small.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Iterable, Mapping, Sequence

import numpy as np

from orchestrator.errors import SweepError
from spaces.base import CellTable

if TYPE_CHECKING:
    from orchestrator.settings import CellSelection
    from spaces.base import SearchSpace


@dataclass(frozen=True, order=True)
class Job:
    """One (space, dataset, seed) combination."""

    space: str
    dataset: str
    seed: int

    @property
    def folder(self) -> str:
        """Its folder under ``scores/``: plain names, no ``key=value`` partitions, so that
        every Parquet reader takes the columns from the files alone."""
        return f"{self.space}/{self.dataset}/seed{self.seed}"


@dataclass(frozen=True)
class Shard:
    """Cells ``ids[i]`` (spec strings ``archs[i]``) of a job, each scored with ``proxies``."""

    job: Job
    ids: tuple[str, ...]
    archs: tuple[str, ...]
    proxies: tuple[str, ...]

    @property
    def name(self) -> str:
        return shard_name(self.job, self.ids, self.proxies)

    @property
    def rows(self) -> int:
        return len(self.ids) * len(self.proxies)

    def __len__(self) -> int:
        return len(self.ids)


def shard_name(job: Job, ids: Sequence[str], proxies: Sequence[str]) -> str:
    """``shard-`` and 16 hex digits of a digest of what the shard holds."""
    digest = hashlib.sha256(json.dumps([job.space, job.dataset, job.seed, list(proxies)]).encode())
    for cell_id in ids:
        digest.update(cell_id.encode() + b"\n")
    return f"shard-{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class Plan:
    """The request: jobs in order, the selected cells in official order, the proxies."""

    jobs: tuple[Job, ...]
    ids: Sequence[str]
    archs: Sequence[str]
    proxies: tuple[str, ...]
    shard_size: int

    @property
    def total_cells(self) -> int:
        return len(self.jobs) * len(self.ids)

    def missing(self, job: Job, covered: Mapping[str, AbstractSet[str]]) -> list[Shard]:
        """Shards of the (cell, proxy) pairs of ``job`` that ``covered`` (cell -> proxies
        stored) lacks: cells grouped by the proxies they miss, in official order."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for pos, cell_id in enumerate(self.ids):
            have = covered.get(cell_id, ())
            lacking = tuple(p for p in self.proxies if p not in have)
            if lacking:
                groups.setdefault(lacking, []).append(pos)
        shards = []
        for lacking, positions in groups.items():
            for lo in range(0, len(positions), self.shard_size):
                part = positions[lo:lo + self.shard_size]
                shards.append(Shard(job, tuple(self.ids[i] for i in part), tuple(self.archs[i] for i in part), lacking))
        return shards


def read_id_file(path: Path) -> list[str]:
    """Ids from a text file: one per line, blank lines and '#' comments ignored; SweepError
    for a file that cannot be read or is not UTF-8 text."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SweepError(f"cells.path {path} is not a text file of cell ids (no UTF-8 at byte {exc.start}): "
                         "write one id per line") from None
    except OSError as exc:
        raise SweepError(f"cannot read cells.path {path}: {exc.strerror or exc}") from None
    ids = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    if not ids:
        raise SweepError(f"cells.path {path} lists no ids")
    return ids


def select_positions(
    table: CellTable, cells: "CellSelection", truth_ids: AbstractSet[str] | None = None
) -> np.ndarray:
    """Positions (in official order, ascending) of the cells the selection names;
    ``truth_ids`` (the cells with ground truth) serves ``select: truth``."""
    total = len(table)
    if cells.select == "all":
        return np.arange(total)
    if cells.select == "truth":
        if truth_ids is None:
            raise SweepError("cells=truth needs the ids of the cells with ground truth")
        with_truth = np.array([i for i, cell_id in enumerate(table.ids) if cell_id in truth_ids], dtype=np.int64)
        if not len(with_truth):
            raise SweepError("no cell of the space has ground truth")
        if cells.n is None:
            return with_truth
        return _seeded_sample(with_truth, cells, f"the {len(with_truth)} cells with ground truth")
    if cells.select == "sample":
        return _seeded_sample(np.arange(total), cells, f"the space ({total} cells)")
    if cells.select == "range":
        if cells.stop > total:
            raise SweepError(f"cells.stop={cells.stop} is past the end of the space ({total} cells)")
        return np.arange(cells.start, cells.stop)
    wanted = read_id_file(Path(str(cells.path))) if cells.select == "file" else list(cells.ids)
    position = {cell_id: i for i, cell_id in enumerate(table.ids)}
    unknown = [c for c in wanted if c not in position]
    if unknown:
        shown = ", ".join(map(_shown, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise SweepError(f"{len(unknown)} cell id(s) not in the space: {shown}")
    _check_distinct(wanted)
    return np.asarray(sorted(position[c] for c in wanted))


def space_cells(space: "SearchSpace", cells: "CellSelection") -> tuple[CellTable, "CellSelection"]:
    """The table a selection picks from, and the selection to apply to it: the space's
    listed cells (``cells()``), except for a space that draws its own sample
    (``sample_cells``) or names any cell by id (``cells_of``; see ``spaces.base``), whose
    table is then exactly the selected cells."""
    from orchestrator.settings import CellSelection

    sample = getattr(space, "sample_cells", None)
    if cells.select == "sample" and sample is not None:
        return sample(int(cells.n or 0), int(cells.seed)), CellSelection("all")
    lookup = getattr(space, "cells_of", None)
    if cells.select in ("ids", "file") and lookup is not None:
        wanted = read_id_file(Path(str(cells.path))) if cells.select == "file" else list(cells.ids)
        _check_distinct(wanted)
        table = lookup(wanted)
        _check_distinct(list(table.ids))  # two forms of one cell
        return table, CellSelection("all")
    return space.cells(), cells


def _check_distinct(wanted: Sequence[str]) -> None:
    if len(set(wanted)) != len(wanted):
        seen: set[str] = set()
        twice = next(c for c in wanted if c in seen or seen.add(c))  # type: ignore[func-returns-value]
        raise SweepError(f"the cell id list names cell {_shown(twice)} twice")


def _shown(cell_id: str) -> str:
    """An id as typed, quoted where it holds what would not show (a line break, a tab, an
    empty or blank id)."""
    return cell_id if cell_id.isprintable() and cell_id.strip() == cell_id and cell_id else repr(cell_id)


def _seeded_sample(positions: np.ndarray, cells: "CellSelection", pool: str) -> np.ndarray:
    """``cells.n`` of ``positions`` drawn without replacement with ``cells.seed``, ascending."""
    n = int(cells.n or 0)
    if n > len(positions):
        raise SweepError(f"cells.n={n} is larger than {pool}")
    rng = np.random.Generator(np.random.PCG64(int(cells.seed)))
    return np.sort(rng.choice(positions, size=n, replace=False))


def make_plan(
    space: str, datasets: Sequence[str], seeds: Sequence[int], proxies: Iterable[str], table: CellTable,
    cells: "CellSelection", shard_size: int, truth_ids: AbstractSet[str] | None = None,
) -> Plan:
    """Jobs dataset-major, then seed; the selected cells in official order."""
    positions = select_positions(table, cells, truth_ids)
    ids = [table.ids[i] for i in positions]
    archs = [table.archs[i] for i in positions]
    jobs = tuple(Job(space, d, s) for d in datasets for s in seeds)
    return Plan(jobs, ids, archs, tuple(proxies), shard_size)
