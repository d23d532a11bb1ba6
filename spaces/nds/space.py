"""The NDS design spaces (Radosavovic et al., ICCV 2019, "On Network Design Spaces for
Visual Recognition"), one search space per NDS sweep file.

Each space reads one file of https://dl.fbaipublicfiles.com/nds/data.zip (``truth_file``,
under the data root; ``spaces.nds.records`` describes the format): its cells are the
file's records, id = the record's index (0-based, ``top`` then ``mid`` for the files that
split them), arch = the record's network config as a compact string that workers parse
back (``spaces.nds.cells``, ``spaces.nds.residual``), truth = ``100 - test error``:
``final_test_acc`` (the last epoch's, the default, as nas-without-training and NNI) or
``best_test_acc`` (from ``min_test_top1``). The CIFAR-10 files give the spaces ``nds_<name>``
(dataset ``cifar10``); the ImageNet files (``<File>_in.json``) give ``nds_<name>_in``, with
dataset ``imagenet`` whose images the user provides (``data.images.imagenet``).

Files of the same design space and shape, such as ``DARTS_fix-w-d.json`` or
``DARTS_lr-wd.json``, are read by pointing ``truth_file`` at them
(``space.nds_darts.truth_file=DARTS_fix-w-d.json``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa
from torch import nn

from benchdata.root import find_data
from spaces.base import CellTable, require_files
from spaces.nds import cells, residual
from spaces.nds.anynet import BLOCK_TYPES, AnyNet
from spaces.nds.records import TRUTH_COLUMNS, Record, read_records
from spaces.registry import register_space

DATA_URL = "https://dl.fbaipublicfiles.com/nds/data.zip"


@dataclass(frozen=True)
class DesignSpace:
    """One NDS sweep file as a space: its name, file, family and dataset."""

    name: str
    file: str
    family: str  # "cell" (genotype networks) or "residual" (ResNet / ResNeXt / Vanilla)
    imagenet: bool = False

    @property
    def dataset(self) -> str:
        return "imagenet" if self.imagenet else "cifar10"


#: every NDS file exposed as a space (the CIFAR-10 sweeps and their ImageNet counterparts)
DESIGN_SPACES = (
    DesignSpace("nds_darts", "DARTS.json", "cell"),
    DesignSpace("nds_enas", "ENAS.json", "cell"),
    DesignSpace("nds_pnas", "PNAS.json", "cell"),
    DesignSpace("nds_nasnet", "NASNet.json", "cell"),
    DesignSpace("nds_amoeba", "Amoeba.json", "cell"),
    DesignSpace("nds_resnet", "ResNet.json", "residual"),
    DesignSpace("nds_resnext_a", "ResNeXt-A.json", "residual"),
    DesignSpace("nds_resnext_b", "ResNeXt-B.json", "residual"),
    DesignSpace("nds_vanilla", "Vanilla.json", "residual"),
    DesignSpace("nds_darts_in", "DARTS_in.json", "cell", imagenet=True),
    DesignSpace("nds_enas_in", "ENAS_in.json", "cell", imagenet=True),
    DesignSpace("nds_pnas_in", "PNAS_in.json", "cell", imagenet=True),
    DesignSpace("nds_nasnet_in", "NASNet_in.json", "cell", imagenet=True),
    DesignSpace("nds_amoeba_in", "Amoeba_in.json", "cell", imagenet=True),
    DesignSpace("nds_resnext_a_in", "ResNeXt-A_in.json", "residual", imagenet=True),
    DesignSpace("nds_resnext_b_in", "ResNeXt-B_in.json", "residual", imagenet=True),
)


def how_to_obtain(design: DesignSpace) -> str:
    return (f"download {DATA_URL} (NDS, Radosavovic et al. 2019), unzip it and put {design.file} under the data "
            f"root, or set space.{design.name}.truth_file (README section 'NDS')")


class NDSSpace:
    """One NDS sweep file as a search space; subclasses (one per ``DESIGN_SPACES`` entry)
    set ``design``."""

    design: DesignSpace
    name: str
    num_classes: Mapping[str, int]
    #: the cell id: the record's index in the file
    arch_id_type = pa.int64()

    def __init__(self, settings: Mapping[str, Any], data_root: Path | None = None) -> None:
        self.settings = settings
        self.data_root = data_root

    def required_files(self) -> list[tuple[str, str]]:
        return [(self.settings["truth_file"], how_to_obtain(self.design))]

    def _path(self) -> Path:
        return find_data(self.data_root, self.settings["truth_file"])

    @cached_property
    def _records(self) -> list[Record]:
        require_files(self.data_root, self.required_files())  # type: ignore[arg-type]
        return read_records(self._path(), how_to_obtain(self.design), self._net_to_arch)

    def _net_to_arch(self, net: Mapping[str, Any]) -> str:
        if self.design.family == "cell":
            return cells.format_arch(cells.spec_from_net(net, self.design.imagenet))
        return residual.format_arch(residual.spec_from_net(net, BLOCK_TYPES))

    def cells(self) -> CellTable:
        return self._cells

    @cached_property
    def _cells(self) -> CellTable:
        return CellTable(ids=[str(i) for i in range(len(self._records))], archs=[r.arch for r in self._records])

    def parse(self, arch: str) -> cells.CellSpec | residual.AnyNetSpec:
        if not isinstance(arch, str):
            raise ValueError(f"an NDS arch must be a string, not {type(arch).__name__}")
        if self.design.family == "cell":
            return cells.parse_arch(arch, self.design.imagenet)
        return residual.parse_arch(arch, BLOCK_TYPES)

    def build(self, spec: object, num_classes: int) -> nn.Module:
        if isinstance(spec, cells.CellSpec):
            return cells.build_network(spec, num_classes, self.design.imagenet)
        if isinstance(spec, residual.AnyNetSpec):
            return AnyNet(spec, num_classes, imagenet=self.design.imagenet)
        raise ValueError(f"{self.name} builds from a parsed arch, not {type(spec).__name__}")

    def truth_columns(self) -> Sequence[str]:
        return TRUTH_COLUMNS

    def ground_truth(self, dataset: str, column: str) -> pa.Table:
        if column not in TRUTH_COLUMNS:
            raise ValueError(f"no truth column {column!r} in an NDS space: set space.{self.name}.truth.{dataset} to "
                             f"one of {list(TRUTH_COLUMNS)}")
        records = self._records
        return pa.table({"arch_id": pa.array([str(i) for i in range(len(records))], pa.string()),
                         "accuracy": pa.array([getattr(r, column) for r in records], pa.float64())})


def _register(design: DesignSpace) -> type:
    """The space class of ``design``, registered under its name (and importable by it,
    so Ray pickles it by reference)."""
    qualname = "NDSSpace_" + design.name.removeprefix("nds_")
    cls = type(qualname, (NDSSpace,), {
        "__module__": __name__, "__qualname__": qualname,
        "__doc__": f"NDS {design.file}: {design.family} networks, {design.dataset}.",
        "design": design, "name": design.name, "num_classes": {design.dataset: 1000 if design.imagenet else 10},
    })
    setattr(sys.modules[__name__], qualname, cls)
    defaults = {
        # the NDS sweep file, under the data root (a file of the same design space, such as
        # DARTS_fix-w-d.json, may replace it)
        "truth_file": design.file,
        # the accuracy each dataset's scores are correlated with: final_test_acc (100 - the
        # last epoch's test error) or best_test_acc (100 - min_test_top1), or both as a list
        "truth": {design.dataset: "final_test_acc"},
        # settings proxies take from the space (proxy.<name>.<setting> left empty): none
        # published for NDS (epsinas's reference gives its weights for NB201 and NB101 only)
        "proxy_constants": {},
    }
    return register_space(design.name, defaults=defaults)(cls)


SPACE_CLASSES = {design.name: _register(design) for design in DESIGN_SPACES}
