"""NAS-Bench-101: 423,624 cells, their official module hashes, networks and accuracies.

Cell ids are the benchmark's module hashes; the official order is ascending hash (the order
of the benchmark's ``generate_graphs.py`` output, which zero-cost-nas's ``--start/--end``
index). The cell table comes from enumerating the space (``nb101_enumerate``, about half a
minute on two cores) and is cached as Parquet: a ``cells_file`` already under the data
root is used as is (a site can ship one), otherwise the table is read from, or enumerated
into, ``cache_dir``. The cache is kept apart from the data root because the data root is
the downloaded benchmark data, often read-only and shared (``/work/shared/data`` is),
while the cache is derived and per user.

Ground truth is a Parquet table with a ``hash`` column and accuracy columns
(``truth_file``, a setting): the 30,001-cell sample (``nb101_sample_accuracy.parquet``, one
training repeat) or a table converted from the official tfrecords by
``python -m spaces.nb101.convert convert`` (mean of the 3 repeats).
"""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from torch import nn

from spaces.base import CellTable, is_number, is_text, read_table, require_files
from benchdata.root import find_data
from spaces.registry import register_space
from spaces.nb101.cell import NB101Cell, parse_arch
from spaces.nb101.enumeration import CACHE_FORMAT, NUM_CELLS, enumerate_cells, to_table, write_table
from spaces.nb101.network import build_network

TRUTH_HOW_TO = (
    "a Parquet table with a 'hash' column and accuracy columns: the 30,001-cell sample "
    "nb101_sample_accuracy.parquet, or one converted from the official nasbench_only108.tfrecord "
    "with 'python -m spaces.nb101.convert convert' (see the README section 'NAS-Bench-101')"
)
SPEC_COLUMNS = ("hash", "adjacency", "operations", "arch")


@register_space(
    "nb101",
    defaults={
        # the truth source, a Parquet table with a 'hash' column: the 30,001-cell sample
        # (ONE training repeat, validation only), or nb101_only108.parquet (all cells, mean of
        # 3 repeats, validation and test) from python -m spaces.nb101.convert convert
        "truth_file": "nb101_sample_accuracy.parquet",
        # the accuracy column each dataset's scores are correlated with (the benchmark is
        # CIFAR-10 only): validation accuracy after 108 epochs, in both truth tables;
        # test_acc_108 exists in converted tables only
        "truth": {"cifar10": "val_acc_108"},
        # the enumerated cell table: used from the data root if a file of this name is
        # there, else read from (or enumerated once into) cache_dir
        "cells_file": "nb101_cells.parquet",
        "cache_dir": "${oc.env:PROXYSWEEP_CACHE,'~/.cache/proxysweep'}",
        # the benchmark's network: stem channels, stacks, modules per stack
        "stem_channels": 128,
        "num_stacks": 3,
        "modules_per_stack": 3,
        # proxy settings whose reference value is specific to this space
        # (egracheva/epsinas NAS-Bench-101/Reproduce.ipynb: weights 1e-4 and 10)
        "proxy_constants": {"epsinas": {"weights": [1.0e-4, 10.0]}},
    },
)
class NB101Space:
    """NAS-Bench-101 (Ying et al., ICML 2019): 423,624 cells of at most 7 vertices and 9
    edges; ids are the official module hashes."""

    name = "nb101"
    num_classes: Mapping[str, int] = {"cifar10": 10}
    #: the benchmark's own id: the module hash (a hex string) of nasbench's API
    arch_id_type = pa.string()

    def __init__(self, settings: Mapping, data_root: Path | None = None) -> None:
        self.settings = settings
        self.data_root = data_root
        self.stem_channels = int(settings.get("stem_channels", 128))
        self.num_stacks = int(settings.get("num_stacks", 3))
        self.modules_per_stack = int(settings.get("modules_per_stack", 3))

    # -- the cell table -----------------------------------------------------------------
    @property
    def cells_file(self) -> str:
        return str(self.settings.get("cells_file", "nb101_cells.parquet"))

    def cache_path(self) -> Path:
        """Where the enumerated cell table is read from or written to."""
        if self.data_root is not None and (self.data_root / self.cells_file).exists():
            return self.data_root / self.cells_file
        cache = self.settings.get("cache_dir") or "~/.cache/proxysweep"
        return Path(os.path.expanduser(str(cache))).resolve() / self.cells_file

    def cell_table(self) -> pa.Table:
        """The cached cell table (hash, arch), enumerating and caching it on first use."""
        path = self.cache_path()
        if path.exists():
            table = pq.read_table(path, columns=["hash", "arch"])
            meta = table.schema.metadata or {}
            if meta.get(b"proxysweep.format") == CACHE_FORMAT.encode() and table.num_rows == NUM_CELLS:
                return table
            if self.data_root is not None and path.parent == self.data_root:
                raise ValueError(f"{path} is not a NAS-Bench-101 cell table of this version ({CACHE_FORMAT}, "
                                 f"{NUM_CELLS} rows): remove it, or build one with python -m spaces.nb101.enumeration")
        full = to_table(enumerate_cells())
        write_table(full, path)
        return full.select(["hash", "arch"])

    def cells(self) -> CellTable:
        table = self.cell_table()
        return CellTable(ids=table.column("hash").to_pylist(), archs=table.column("arch").to_pylist())

    # -- building -------------------------------------------------------------------------
    def parse(self, arch: str) -> NB101Cell:
        return parse_arch(arch)

    def build(self, spec: object, num_classes: int) -> nn.Module:
        if not isinstance(spec, NB101Cell):
            raise TypeError(f"NB101Space.build takes an NB101Cell, not {type(spec).__name__}")
        return build_network(spec, num_classes, self.stem_channels, self.num_stacks, self.modules_per_stack)

    # -- ground truth ---------------------------------------------------------------------
    @property
    def truth_file(self) -> str:
        return str(self.settings.get("truth_file", "nb101_sample_accuracy.parquet"))

    def required_files(self) -> list[tuple[str, str]]:
        return [(self.truth_file, TRUTH_HOW_TO)]

    @cached_property
    def _truth(self) -> pa.Table:
        require_files(self.data_root, self.required_files())
        path = find_data(self.data_root, self.truth_file)
        table = read_table(path, "a NAS-Bench-101 truth table", TRUTH_HOW_TO,
                           {"hash": ("module hashes (strings)", is_text)}, skip=("adjacency", "operations"))
        hashes = table.column("hash")
        if pc.count_distinct(hashes).as_py() != len(hashes):
            counts = pc.value_counts(hashes)
            twice = next(str(v["values"]) for v in counts.to_pylist() if v["counts"] > 1)
            raise ValueError(f"{path}: hash {twice} appears more than once; a truth table holds one row per cell "
                             "(average repeats before writing it)")
        return table

    @staticmethod
    def convert(src: Path, out: Path, verify: bool = True) -> list[str]:
        """the NAS-Bench-101 table from nasbench_only108.tfrecord or nasbench_full.tfrecord
        (spaces/nb101/convert.py). It writes atomically; ``verify``: recompute every
        cell's hash. Returns the lines to print; DataError on a bad input."""
        from orchestrator.data import DataError
        from spaces.nb101.convert import convert
        from spaces.nb101.tfrecord import TFRecordError

        if not src.is_file():
            raise DataError(f"no such file {src} (get the tfrecords from the links in the google-research/nasbench README)")
        try:
            done = convert(src, out, verify_hashes=verify)
        except (TFRecordError, OSError) as exc:
            raise DataError(str(exc).splitlines()[0]) from None
        return [f"{done.records} records, {done.cells} cells, epoch budgets {list(done.epochs)} -> {out} "
                f"({done.seconds:.1f} s)"]

    @staticmethod
    def convert_hint(name: str, path: Path) -> str | None:
        """The command that makes the missing data file ``name`` at ``path``, if it is a
        converted NB101 table (the 30,001-cell sample is not: it ships embedded)."""
        if not name.startswith("nb101") or name in ("nb101_sample_accuracy.parquet", "nb101_cells.parquet"):
            return None
        return f"python -m orchestrator.data convert nb101 nasbench_only108.tfrecord {path}"

    def truth_columns(self) -> Sequence[str]:
        return [f.name for f in self._truth.schema if f.name not in SPEC_COLUMNS and is_number(f.type)]

    def ground_truth(self, dataset: str, column: str) -> pa.Table:
        if dataset not in self.num_classes:
            raise ValueError(f"NAS-Bench-101 was trained on {list(self.num_classes)} only, not {dataset!r}")
        if column not in self.truth_columns():
            path = find_data(self.data_root, self.truth_file)
            held = (f" (it holds {self._truth.schema.field(column).type}, not numbers)"
                    if column in self._truth.column_names else "")
            raise ValueError(f"no truth column {column!r} in {path}{held}: set space.nb101.truth.{dataset} to one of "
                             f"{self.truth_columns()}")
        table = self._truth
        return pa.table({"arch_id": pc.cast(table.column("hash"), pa.string()),
                         "accuracy": table.column(column).cast(pa.float64())})
