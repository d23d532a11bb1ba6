"""The contract every search space fulfils, so the orchestrator never special-cases one."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import pyarrow as pa
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


def require_files(root: Path | None, needed: Sequence[tuple[str, str]]) -> None:
    """Raise MissingDataError for the first needed file that is neither under ``root``
    nor among the embedded defaults."""
    from spaces.data_root import require_data

    for rel, how in needed:
        require_data(root, rel, how)
