"""NAS-Bench-201: 15,625 cells, their official indices, networks and trained accuracies.

The official index <-> cell string mapping is the order of the benchmark's own file (it is
not a product order of the six edge operations), so it is read from the ``arch_index`` and
``arch_str`` columns of the accuracy table; ``cells`` checks that the table holds each of the
5^6 cells exactly once under indices 0..15624.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

import pyarrow as pa
from torch import nn

from spaces.base import CellTable, is_number, is_text, read_table, require_files
from benchdata.root import find_data
from spaces.registry import register_space
from spaces.nb201.network import EDGES, OPS, NB201Network

NUM_CELLS = len(OPS) ** len(EDGES)
TRUTH_HOW_TO = (
    "a Parquet table with columns arch_index, arch_str and accuracy columns, built from "
    "NATS-Bench/NAS-Bench-201 results (see the README section 'Data')"
)


def format_cell(ops: Sequence[str]) -> str:
    """The benchmark's cell string, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
    nodes = []
    for target in (1, 2, 3):
        edges = [f"{op}~{src}" for op, (tgt, src) in zip(ops, EDGES) if tgt == target]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def parse_cell(arch: str) -> tuple[str, ...]:
    """The six edge operations of a cell string; ValueError naming the problem otherwise."""
    nodes = arch.split("+")
    if len(nodes) != 3:
        raise ValueError(f"malformed NAS-Bench-201 cell {arch!r}: expected 3 nodes joined by '+'")
    ops: list[str] = []
    for target, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ValueError(f"malformed NAS-Bench-201 cell {arch!r}: node {node!r} not in |...|")
        edges = node[1:-1].split("|")
        if len(edges) != target:
            raise ValueError(f"malformed NAS-Bench-201 cell {arch!r}: node {target} needs {target} edges")
        for source, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep or src != str(source) or op not in OPS:
                raise ValueError(
                    f"malformed NAS-Bench-201 cell {arch!r}: edge {edge!r} must be "
                    f"<op>~{source} with op in {OPS}"
                )
            ops.append(op)
    return tuple(ops)


@register_space(
    "nb201",
    defaults={
        # the accuracy table: the official index <-> cell string mapping and the accuracies
        "truth_file": "nb201_accuracy.parquet",
        # the accuracy columns each dataset's scores are correlated with (a column or a list,
        # the main one first; every metric is computed against each). CIFAR-10 has two in
        # the literature: cifar10_valid_test (trained on the train split, tested on the test
        # split; Abdelfattah et al. 2021, NASWOT's correlations) and cifar10_test (trained
        # on train+valid; ZiCo's Table 1, MeCo, most search tables)
        "truth": {"cifar10": ["cifar10_valid_test", "cifar10_test"], "cifar100": "cifar100_test",
                  "ImageNet16-120": "imagenet16_120_test"},
        # the benchmark's network: channels of the first stage, cells per stage
        "channels": 16,
        "cells_per_stage": 5,
        # proxy settings whose reference value is specific to this space
        # (egracheva/epsinas NAS-Bench-201/Reproduce.ipynb: weights 1e-7 and 1)
        "proxy_constants": {"epsinas": {"weights": [1.0e-7, 1.0]}},
    },
)
class NB201Space:
    """NAS-Bench-201 topology space (Dong & Yang, ICLR 2020)."""

    name = "nb201"
    num_classes: Mapping[str, int] = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
    #: the benchmark's own id: the integer index of nas_201_api / NATS-Bench
    arch_id_type = pa.int64()

    def __init__(self, settings: Mapping, data_root: Path | None = None) -> None:
        self.settings = settings
        self.data_root = data_root
        self.channels = int(settings.get("channels", 16))
        self.cells_per_stage = int(settings.get("cells_per_stage", 5))

    def _table_path(self) -> Path:
        """The table under the data root, else the embedded one (also for a space made
        without a root, as on workers and in notebooks)."""
        return find_data(self.data_root, self.settings["truth_file"])

    def required_files(self) -> list[tuple[str, str]]:
        return [(self.settings["truth_file"], TRUTH_HOW_TO)]

    @cached_property
    def _table(self) -> pa.Table:
        require_files(self.data_root, self.required_files())  # type: ignore[arg-type]
        return read_table(self._table_path(), "a NAS-Bench-201 accuracy table", TRUTH_HOW_TO, {
            "arch_index": ("integer cell indices", pa.types.is_integer),
            "arch_str": ("cell strings", is_text),
        })

    def cells(self) -> CellTable:
        return self._cells

    @cached_property
    def _cells(self) -> CellTable:
        """The table's cells, checked: indices 0..15624 and every cell string once."""
        table = self._table.sort_by("arch_index")
        index = table.column("arch_index").to_pylist()
        archs = table.column("arch_str").to_pylist()
        if index != list(range(NUM_CELLS)):
            raise ValueError(f"{self._table_path()}: arch_index must be 0..{NUM_CELLS - 1}, each once "
                             f"(it has {len(index)} rows)")
        try:
            specs = {parse_cell(a) for a in archs}
        except ValueError as exc:
            raise ValueError(f"{self._table_path()}: {exc}") from None
        if len(specs) != NUM_CELLS:
            raise ValueError(f"{self._table_path()}: a cell string appears more than once")
        return CellTable(ids=[str(i) for i in index], archs=archs)

    def parse(self, arch: str) -> tuple[str, ...]:
        return parse_cell(arch)

    def build(self, spec: object, num_classes: int) -> nn.Module:
        return NB201Network(spec, num_classes, self.channels, self.cells_per_stage)  # type: ignore[arg-type]

    @staticmethod
    def convert(src: Path, out: Path, verify: bool = True) -> list[str]:
        """the NAS-Bench-201 table (nb201_accuracy.parquet's columns) from
        NAS-Bench-201-v1_0-e61699.pth, NAS-Bench-201-v1_1-096897.pth or the
        NATS-tss-v1_0-3ffb9-simple folder (spaces/nb201/convert.py). Returns the lines
        to print; DataError on a bad input. ``verify`` has no effect: every entry is
        checked as it is read."""
        import sys

        from orchestrator.progress import Progress
        from spaces.nb201.convert import convert, missing_counts

        table = convert(src, out, progress=lambda n: Progress(n, stream=sys.stdout, every=5.0))
        return [f"{table.num_rows} cells -> {out}"] + [
            f"note: {column} is NaN for {n} of {table.num_rows} cells (the input has no such results)"
            for column, n in missing_counts(table).items()]

    @staticmethod
    def convert_hint(name: str, path: Path) -> str | None:
        """The command that makes the missing data file ``name`` at ``path``, if it is a
        NB201 table."""
        if not name.startswith("nb201"):
            return None
        return f"python -m orchestrator.data convert nb201 NAS-Bench-201-v1_1-096897.pth (or NATS-tss-v1_0-3ffb9-simple/) {path}"

    def truth_columns(self) -> Sequence[str]:
        """The numeric columns besides the index: text or booleans are never accuracies."""
        return [f.name for f in self._table.schema if f.name not in ("arch_index", "arch_str") and is_number(f.type)]

    def ground_truth(self, dataset: str, column: str) -> pa.Table:
        if column not in self.truth_columns():
            held = (f" (it holds {self._table.schema.field(column).type}, not numbers)"
                    if column in self._table.column_names else "")
            raise ValueError(f"no truth column {column!r} in {self._table_path()}{held}: set space.nb201.truth.{dataset} "
                             f"to one of {self.truth_columns()}")
        self.cells()  # the index is checked before any id is handed out (the reducer may come first)
        table = self._table
        ids = pa.array([str(i) for i in table.column("arch_index").to_pylist()])
        acc = table.column(column).cast(pa.float64())
        return pa.table({"arch_id": ids, "accuracy": acc})

