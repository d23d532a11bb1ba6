"""The contract every search space fulfils, so the orchestrator never special-cases one."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from torch import nn


@dataclass(frozen=True)
class CellTable:
    """All cells of a space in the benchmark's official order.

    ``ids`` are the benchmark's own ids as strings (NB201 index, NB101 module hash) so that
    results join with other tools; ``archs`` are the matching spec strings that the space
    parses back, which is what travels to the workers: they never need the data files.
    """

    ids: Sequence[str]
    archs: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.archs):
            raise ValueError("ids and archs differ in length")

    def __len__(self) -> int:
        return len(self.ids)


class SearchSpace(Protocol):
    """A benchmark search space: its cells, how to build them, and their trained accuracies.

    Implementations take their settings (``conf/space/<name>.yaml``) and the data root in
    the constructor; with a root of None only the embedded defaults are found (workers
    only ``parse`` and ``build``).
    """

    name: str
    #: dataset name -> number of classes of the benchmark's network for it
    num_classes: Mapping[str, int]
    #: the Arrow type of the benchmark's own cell id (results store ids as strings;
    #: proxysweep.load_scores casts them to this for joins with the benchmark's tools)
    arch_id_type: pa.DataType

    def required_files(self) -> list[tuple[str, str]]:
        """(path relative to the data root, how to obtain it) that planning and truth read."""

    def cells(self) -> CellTable:
        """Every cell of the space, in official order."""

    def parse(self, arch: str) -> object:
        """The spec ``build`` takes, from a spec string; ValueError if it is malformed."""

    def build(self, spec: object, num_classes: int) -> nn.Module:
        """The benchmark's network for this cell, initialised from the torch RNG."""

    def ground_truth(self, dataset: str, column: str) -> pa.Table:
        """Columns ``arch_id`` (string) and ``accuracy`` (float64) for every cell with truth."""

    def truth_columns(self) -> Sequence[str]:
        """The accuracy columns a sweep's truth setting may name."""

    # Optional, for spaces too large to list (NB301: about 10^18 cells). Such a space lists in
    # ``cells`` the cells it can name (those with truth), and may define:
    #
    #   def sample_cells(self, n: int, seed: int) -> CellTable:
    #       """``cells=sample``: n distinct cells drawn with ``seed`` from the space's own
    #       sampling distribution; ValueError (one line) for an n it cannot draw."""
    #
    #   def cells_of(self, ids: Sequence[str]) -> CellTable:
    #       """``cells=ids`` / ``cells=file``: the named cells, in the order given, under the
    #       space's ids (a cell may be named in another of its forms); ValueError (one line)
    #       for one that is not a cell of the space."""
    #
    # Without them, ``cells=sample`` draws from ``cells()`` and ids must be among its ids
    # (``orchestrator.plan.space_cells``).


#: the operations a network variant is built with (``NetworkVariant.ops``)
VARIANT_OPS = ("benchmark", "zero_cost_nas")


@dataclass(frozen=True)
class NetworkVariant:
    """Another network of a cell than the benchmark's, for a proxy whose reference scores
    another one: TE-NAS's thin networks, zero-cost-nas's own copy of the network.

    ``channels``: channels of the first stage (None: the space's own); later stages scale
    with it as in the benchmark's network. ``cells_per_stage``: cells in each stage (None:
    the space's own). ``depth``: how many layers are kept, counted from the input over the
    cells and reduction blocks in network order, as TE-NAS's ``depth``; 0: all. The head
    (whatever the benchmark has after its last layer: final BatchNorm and ReLU, global
    pooling, classifier) follows the last layer kept and takes its width. ``stem``: False
    feeds the input straight to the first layer, so the input must have ``channels``
    channels (the proxy chooses which image channels); True keeps the benchmark's stem,
    which takes the images as they are. ``ops``: ``benchmark``, the benchmark's operations
    (as ``build``), or ``zero_cost_nas``, those of SamsungLabs/zero-cost-nas's model code for
    the space (foresight/models), which references built on it score.
    """

    channels: int | None = None
    cells_per_stage: int | None = None
    depth: int = 0
    stem: bool = True
    ops: str = "benchmark"

    def __post_init__(self) -> None:
        for name in ("channels", "cells_per_stage"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"a network variant's {name} must be a positive integer or None; got {value!r}")
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 0:
            raise ValueError(f"a network variant's depth must be 0 (all layers) or a number of layers; got {self.depth!r}")
        if self.ops not in VARIANT_OPS:
            raise ValueError(f"a network variant's ops must be one of {', '.join(VARIANT_OPS)}; got {self.ops!r}")

    @property
    def own_shape(self) -> bool:
        """Whether the variant has the benchmark network's shape (only its ops may differ)."""
        return (self.channels, self.cells_per_stage, self.depth, self.stem) == (None, None, 0, True)


class BuildsVariants(Protocol):
    """The optional part of the space contract: building other networks of a cell.

    A space that has both methods builds the variants its ``check_variant`` accepts; a
    space without them builds only its benchmark's network, and a sweep whose proxy asks
    for another one stops at the settings check, naming the proxy's ``network`` setting.
    Other networks are for proxies only: cell ids, parsing, truth and ``build`` are
    unchanged.
    """

    def check_variant(self, variant: NetworkVariant) -> None:
        """Return if ``build_variant`` builds ``variant`` for every cell of the space, else
        raise ValueError with one line saying why not. Called once per sweep on the
        driver, before any work, and must not read data files."""

    def build_variant(self, spec: object, num_classes: int, variant: NetworkVariant) -> nn.Module:
        """The cell's network as ``variant`` describes it, on the CPU and in train mode,
        forward returning the logits. Its parameters come from the torch RNG only, drawn in
        construction order as ``build`` draws them: the scorer seeds that RNG from the
        cell's seed and the proxy's name before each proxy, so a variant is the same on
        every worker and in every order."""


def require_variant(space: object, variant: NetworkVariant) -> None:
    """ValueError (one line) unless ``space`` builds ``variant`` (see ``BuildsVariants``)."""
    check = getattr(space, "check_variant", None)
    if check is None or not callable(getattr(space, "build_variant", None)):
        raise ValueError(f"search space {getattr(space, 'name', space)!s} builds no other network than its benchmark's")
    check(variant)


def require_files(root: Path | None, needed: Sequence[tuple[str, str]]) -> None:
    """Raise MissingDataError for the first needed file that is neither under ``root``
    nor among the embedded defaults."""
    from benchdata.root import require_data

    for rel, how in needed:
        require_data(root, rel, how)


def is_number(dtype: pa.DataType) -> bool:
    """Integer or floating point: what an accuracy column may hold (not bool, not text)."""
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype)


def is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def read_table(
    path: Path, what: str, how_to_obtain: str, key_columns: Mapping[str, tuple[str, Callable[[pa.DataType], bool]]],
    skip: Sequence[str] = (),
) -> pa.Table:
    """A Parquet table whose ``key_columns`` (name -> (what it holds, type test)) are all
    there, of the right type and without nulls; ValueError in one line otherwise, naming
    the file and what to do. Truth and cell tables come from users' own conversions, so
    a wrong column type is found here, not as a crash (or silently odd ids) later.
    ``skip``: columns not read."""
    if not path.is_file():
        raise ValueError(f"{path} is not a file; {what} expected: {how_to_obtain}")
    try:
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in names if c not in skip])
    except (OSError, ValueError, pa.ArrowException) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ValueError(f"{path} is not a readable Parquet table ({detail}); {what} expected: {how_to_obtain}") from None
    for name, (holds, test) in key_columns.items():
        if name not in table.column_names:
            raise ValueError(f"{path} has no column {name!r} ({holds}): not {what}; {how_to_obtain}")
        column = table.column(name)
        if not test(column.type):
            raise ValueError(f"{path}: column {name!r} must hold {holds}; it holds {column.type}")
        if column.null_count:
            raise ValueError(f"{path}: column {name!r} has {column.null_count} empty (null) value(s); it must hold "
                             f"{holds} in every row")
    return table
