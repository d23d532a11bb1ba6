"""NAS-Bench-301 (Siems et al. 2020): the DARTS search space, its cells as genotypes.

The space holds about 10^18 cells, and the benchmark's accuracies of any cell come from a
surrogate model (not available offline here). What proxysweep has is the 725 cells NASLib
scored for its zero-cost benchmark (``nb301_naslib_sample.parquet``: NASLib's compact form,
the DARTS Genotype string and ``val_accuracy``; see the README section "NAS-Bench-301").

Cells, as the orchestrator gets them:

- ``cells()`` lists the cells of the truth table (NASLib's order, ``naslib_idx``), so
  ``cells=truth``, ``cells=all`` and ``cells=range`` pick among those 725;
- ``sample_cells(n, seed)`` serves ``cells=sample``: ``n`` random valid genotypes drawn as
  DARTS's space is sampled (NASLib's ``sample_random_architecture``: for each of the 4 nodes
  of each cell, two distinct inputs among the earlier states and two operations among the 7
  without ``none``, drawn independently), with numpy's PCG64 seeded by ``seed``; drawn again
  until ``n`` distinct cells are found, in the order drawn;
- ``cells_of(ids)`` serves ``cells=ids`` and ``cells=file``: any valid genotype, in any of its
  three forms (canonical id, Genotype string, NASLib compact), stored under its canonical id.

Ids are canonical genotype ids (``spaces.darts.genotype``), which are also the spec strings.
The network is ``DartsNetwork`` with the settings NASLib used for its NAS-Bench-301
zero-cost scores (``naslib/search_spaces/nasbench301/graph.py``, zero-cost branch at
8c45f19dc259956c3bd253071135c798ad3df8ce, as when ``zc_nasbench301.json`` was computed):
C = 32 (stages of 32/64/128 channels, a 96-channel stem), 8 cells (reductions at cells 2 and
5), no auxiliary head (NASLib's auxiliary output node is an identity edge the loss never
reads), no drop-path, the operations inside cells without affine BatchNorm and pooling
followed by a non-affine BatchNorm (NASLib builds the cell ops of its one-shot search graph,
``_set_ops``, and discretises them). These are also NAS-Bench-301's training settings for
width and depth (32 channels, 8 cells). ``space.nb301.affine=true space.nb301.pool_bn=false``
gives DARTS's evaluation-network operations instead.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
from torch import nn

from benchdata.root import find_data
from spaces.base import CellTable, NetworkVariant, is_number, is_text, read_table, require_files
from spaces.darts.genotype import COMPACT_OPS, Genotype, parse_compact, parse_genotype
from spaces.darts.network import DartsNetwork, TenasDartsNetwork
from spaces.registry import register_space

NODES = 4
CONCAT = (2, 3, 4, 5)
#: TE-NAS's stem multiplier for the DARTS space (prune_tenas.py, both networks)
TENAS_STEM_MULTIPLIER = 1
#: the most cells ``cells=sample`` draws (a guard against a typo of a few zeros too many)
MAX_SAMPLE = 10_000_000
TRUTH_HOW_TO = (
    "a Parquet table with a 'genotype' column (DARTS Genotype strings) and accuracy columns, like the "
    "shipped nb301_naslib_sample.parquet (see the README section 'NAS-Bench-301')"
)


def check_nb301(genotype: Genotype) -> Genotype:
    """The genotype if it is a cell of the NAS-Bench-301 (DARTS) space, ValueError in one
    line otherwise: 4 nodes per cell, two distinct inputs per node, the 7 operations
    without ``none``, every node concatenated."""
    for cell in ("normal", "reduce"):
        pairs, concat = genotype.cell(cell == "reduce")
        if len(pairs) != 2 * NODES:
            raise ValueError(f"not a NAS-Bench-301 cell: its {cell} cell has {len(pairs) // 2} nodes, not {NODES}")
        if concat != CONCAT:
            raise ValueError(f"not a NAS-Bench-301 cell: its {cell} cell concatenates {list(concat)}, not {list(CONCAT)}")
        for k in range(NODES):
            (op_a, in_a), (op_b, in_b) = pairs[2 * k], pairs[2 * k + 1]
            bad = next((op for op in (op_a, op_b) if op not in COMPACT_OPS), None)
            if bad is not None:
                raise ValueError(f"not a NAS-Bench-301 cell: operation {bad!r} in its {cell} cell is not one of "
                                 f"{', '.join(COMPACT_OPS)}")
            if in_a == in_b:
                raise ValueError(f"not a NAS-Bench-301 cell: node {k} of its {cell} cell reads input {in_a} twice "
                                 "(DARTS cells read two distinct inputs per node)")
    return genotype


def parse_nb301(arch: str) -> Genotype:
    """A NAS-Bench-301 cell from any of the three genotype forms, checked."""
    return check_nb301(parse_genotype(arch))


def sample_genotype(rng: np.random.Generator) -> Genotype:
    """One random cell, drawn as NASLib's ``sample_random_architecture`` draws it: per node
    k, four operations (normal, normal, reduce, reduce) with replacement among the 7, then
    two distinct inputs among 0..k+1 for the normal cell, then for the reduction cell."""
    normal: list[tuple[str, int]] = []
    reduce: list[tuple[str, int]] = []
    for k in range(NODES):
        ops = rng.integers(0, len(COMPACT_OPS), size=4)
        into_normal = rng.choice(k + 2, size=2, replace=False)
        into_reduce = rng.choice(k + 2, size=2, replace=False)
        normal += [(COMPACT_OPS[ops[0]], int(into_normal[0])), (COMPACT_OPS[ops[1]], int(into_normal[1]))]
        reduce += [(COMPACT_OPS[ops[2]], int(into_reduce[0])), (COMPACT_OPS[ops[3]], int(into_reduce[1]))]
    return Genotype(tuple(normal), CONCAT, tuple(reduce), CONCAT)


@register_space(
    "nb301",
    defaults={
        # the truth table: 725 cells NASLib scored, with NAS-Bench-301's validation accuracy
        "truth_file": "nb301_naslib_sample.parquet",
        # the accuracy column each dataset's scores are correlated with (CIFAR-10 only)
        "truth": {"cifar10": "val_accuracy"},
        # the network NASLib scored: C and cells (see the module docstring)
        "channels": 32,
        "layers": 8,
        # BatchNorm inside cell operations affine (DARTS's evaluation network) or not (NASLib)
        "affine": False,
        # a non-affine BatchNorm after each pooling operation (NASLib, DARTS's search network)
        "pool_bn": True,
        # proxy settings whose reference value is specific to the space: none for NB301
        # (epsinas's reference gives its weights for NB201 and NB101 only, so an nb301 sweep
        # with epsinas stops before Ray until they are given)
        "proxy_constants": {},
    },
)
class NB301Space:
    """NAS-Bench-301: DARTS genotypes; truth from NASLib's 725-cell zero-cost sample."""

    name = "nb301"
    num_classes: Mapping[str, int] = {"cifar10": 10}
    #: the canonical genotype id (a string)
    arch_id_type = pa.string()

    def __init__(self, settings: Mapping, data_root: Path | None = None) -> None:
        self.settings = settings
        self.data_root = data_root
        self.channels = int(settings.get("channels", 32))
        self.layers = int(settings.get("layers", 8))
        self.affine = bool(settings.get("affine", False))
        self.pool_bn = bool(settings.get("pool_bn", True))

    # -- truth and the listed cells ------------------------------------------------------
    @property
    def truth_file(self) -> str:
        return str(self.settings.get("truth_file", "nb301_naslib_sample.parquet"))

    def required_files(self) -> list[tuple[str, str]]:
        return [(self.truth_file, TRUTH_HOW_TO)]

    @cached_property
    def _truth(self) -> tuple[pa.Table, list[str]]:
        """The truth table in NASLib's order (``naslib_idx`` when present) and each row's
        canonical id; ValueError in one line for a row that is no NB301 cell, a compact form
        that disagrees with the Genotype string, or a cell listed twice."""
        require_files(self.data_root, self.required_files())
        path = find_data(self.data_root, self.truth_file)
        table = read_table(path, "a NAS-Bench-301 truth table", TRUTH_HOW_TO,
                           {"genotype": ("DARTS Genotype strings", is_text)})
        if "naslib_idx" in table.column_names and is_number(table.schema.field("naslib_idx").type):
            table = table.sort_by("naslib_idx")
        compact = table.column("compact").to_pylist() if "compact" in table.column_names else None
        ids: list[str] = []
        row_of: dict[str, int] = {}
        for row, text in enumerate(table.column("genotype").to_pylist()):
            try:
                genotype = parse_nb301(text)
                if compact is not None and compact[row] is not None and parse_compact(compact[row]) != genotype:
                    raise ValueError(f"its compact form {compact[row]!r} is another cell than its genotype")
            except ValueError as exc:
                raise ValueError(f"{path}: row {row}: {exc}") from None
            cell_id = genotype.to_id()
            if cell_id in row_of:
                raise ValueError(f"{path}: rows {row_of[cell_id]} and {row} hold the same cell (up to the order of a "
                                 "node's two operations); a truth table holds one row per cell")
            row_of[cell_id] = row
            ids.append(cell_id)
        return table, ids

    def cells(self) -> CellTable:
        """The cells of the truth table, in NASLib's order."""
        _, ids = self._truth
        return CellTable(ids=ids, archs=ids)

    def sample_cells(self, n: int, seed: int) -> CellTable:
        """``n`` distinct random cells drawn with ``seed`` (see the module docstring)."""
        if not 1 <= n <= MAX_SAMPLE:
            raise ValueError(f"cells.n={n}: nb301 draws 1 to {MAX_SAMPLE:,} random cells")
        rng = np.random.Generator(np.random.PCG64(seed))
        seen: dict[str, None] = {}
        while len(seen) < n:
            seen.setdefault(sample_genotype(rng).to_id())
        ids = list(seen)
        return CellTable(ids=ids, archs=ids)

    def cells_of(self, ids: Sequence[str]) -> CellTable:
        """The named cells, each given in any genotype form, under their canonical ids;
        ValueError in one line for one that is not a NAS-Bench-301 cell."""
        out = []
        for position, text in enumerate(ids, start=1):
            try:
                out.append(parse_nb301(text).to_id())
            except ValueError as exc:
                raise ValueError(f"cell {position} of the list: {exc}") from None
        return CellTable(ids=out, archs=out)

    # -- building -------------------------------------------------------------------------
    def parse(self, arch: str) -> Genotype:
        return parse_nb301(arch)

    def build(self, spec: object, num_classes: int) -> nn.Module:
        if not isinstance(spec, Genotype):
            raise TypeError(f"NB301Space.build takes a Genotype, not {type(spec).__name__}")
        return DartsNetwork(spec, num_classes, self.channels, self.layers, affine=self.affine, pool_bn=self.pool_bn)

    def check_variant(self, variant: NetworkVariant) -> None:
        """The networks this space builds besides its own (``spaces.base.BuildsVariants``):

        - its own shape with either operation set: zero-cost-nas has no model of the DARTS
          space; NASLib's port of its measures scored NB301 cells on NASLib's graph, which
          is this space's network, so ``ops: zero_cost_nas`` is the benchmark's network;
        - any other shape: TE-NAS's network of the DARTS space (``TenasDartsNetwork``: stem
          multiplier 1, N cells per stage, the first ``depth`` cells, final BatchNorm and
          ReLU, TE-NAS's operations), which needs ``cells_per_stage``; TE-NAS scores DARTS
          cells on C=1, N=1, depth 2, with the stem for the NTK and without it for the
          linear regions (prune_tenas.py ``--search_space_name darts``), the settings the
          nb301 sweep files give ntk_cond and linear_regions."""
        if variant.own_shape:
            return
        if variant.ops != "benchmark":
            raise ValueError("NAS-Bench-301 builds zero-cost-nas's network in the benchmark's shape only")
        if variant.cells_per_stage is None:
            raise ValueError("NAS-Bench-301's other networks are TE-NAS's DARTS-space network, which needs "
                             "cells_per_stage (TE-NAS: 1)")
        if variant.depth > 3 * variant.cells_per_stage:
            raise ValueError(f"depth {variant.depth} is more than the {3 * variant.cells_per_stage} cells of "
                             f"TE-NAS's DARTS-space network with {variant.cells_per_stage} cell(s) per stage")

    def build_variant(self, spec: object, num_classes: int, variant: NetworkVariant) -> nn.Module:
        """The benchmark's network for its own shape, else TE-NAS's (``check_variant``)."""
        self.check_variant(variant)
        if variant.own_shape:
            return self.build(spec, num_classes)
        if not isinstance(spec, Genotype):
            raise TypeError(f"NB301Space.build_variant takes a Genotype, not {type(spec).__name__}")
        return TenasDartsNetwork(spec, num_classes, variant.channels or self.channels, variant.cells_per_stage or 1,
                                 variant.depth, variant.stem, TENAS_STEM_MULTIPLIER)

    # -- ground truth ---------------------------------------------------------------------
    def truth_columns(self) -> Sequence[str]:
        table, _ = self._truth
        return [f.name for f in table.schema if f.name != "naslib_idx" and is_number(f.type)]

    def ground_truth(self, dataset: str, column: str) -> pa.Table:
        if dataset not in self.num_classes:
            raise ValueError(f"NAS-Bench-301 was trained on {list(self.num_classes)} only, not {dataset!r}")
        table, ids = self._truth
        if column not in self.truth_columns():
            held = (f" (it holds {table.schema.field(column).type}, not numbers)" if column in table.column_names else "")
            raise ValueError(f"no truth column {column!r} in {find_data(self.data_root, self.truth_file)}{held}: set "
                             f"space.nb301.truth.{dataset} to one of {self.truth_columns()}")
        return pa.table({"arch_id": pa.array(ids, pa.string()), "accuracy": table.column(column).cast(pa.float64())})
