"""A user's own search space, registered from a plugin module as the README describes.

``conv_widths``: a cell is a width w (ids ``"1"`` to ``"max_width"``), its network a 3x3
convolution with w filters (no bias), BatchNorm, ReLU, global average pooling and a linear
classifier: 27w + 2w + (w + 1) x classes parameters, so ``params`` grows strictly with w.
Its truth is a Parquet table the user keeps in the data root (``truth_file``: ``arch_id``
and one accuracy column per dataset)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from torch import nn

from benchdata.root import find_data
from proxysweep import register_space
from spaces.base import CellTable


@register_space("conv_widths", defaults={"truth_file": "conv_widths.parquet", "truth": {"cifar10": "cifar10"},
                                         "max_width": 16, "proxy_constants": {}})
class ConvWidths:
    name = "conv_widths"
    num_classes: Mapping[str, int] = {"cifar10": 10}
    arch_id_type = pa.int64()

    def __init__(self, settings: Mapping, data_root: Path | None = None) -> None:
        self.settings, self.data_root = settings, data_root

    def required_files(self) -> list[tuple[str, str]]:
        return [(self.settings["truth_file"], "write it yourself: arch_id and one accuracy column per dataset")]

    def cells(self) -> CellTable:
        ids = [str(w) for w in range(1, int(self.settings["max_width"]) + 1)]
        return CellTable(ids=ids, archs=ids)

    def parse(self, arch: str) -> int:
        if not arch.isdigit() or not 1 <= int(arch) <= int(self.settings["max_width"]):
            raise ValueError(f"conv_widths: {arch!r} is not a width from 1 to {self.settings['max_width']}")
        return int(arch)

    def build(self, spec: object, num_classes: int) -> nn.Module:
        width = int(spec)
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def truth_columns(self) -> Sequence[str]:
        return [c for c in pq.read_schema(find_data(self.data_root, self.settings["truth_file"])).names
                if c != "arch_id"]

    def ground_truth(self, dataset: str, column: str) -> pa.Table:
        table = pq.read_table(find_data(self.data_root, self.settings["truth_file"]), columns=["arch_id", column])
        return pa.table({"arch_id": table["arch_id"].cast(pa.string()),
                         "accuracy": table[column].cast(pa.float64())})
