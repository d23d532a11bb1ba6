"""The genotype-cell network of the NASNet/DARTS family, built from a genotype.

Follows DARTS's evaluation network (Liu et al., ICLR 2019), quark0/darts ``cnn/model.py``
(``Cell``, ``NetworkCIFAR``, ``NetworkImageNet``) at f276dd346a09ae3160f8e3aca5c7b193fda1da37,
which pycls ``pycls/models/nas/nas.py`` (the NDS networks; read in the copy of
BayesWatch/nas-without-training at b74255e1f3c5d9344b68534a5549c354da7b031b) reuses for the
DARTS, ENAS, PNAS, NASNet and Amoeba cell spaces:

- stem: CIFAR, a 3x3 convolution to ``stem_multiplier * C`` channels (3C) and BatchNorm;
  ImageNet, DARTS's two stride-2 stems (3 -> C/2 -> C, then C -> C), so cells start at 1/8
  resolution and the first cell's earlier input is reduced like a cell after a reduction;
- ``layers`` cells; those at ``layers // 3`` and ``2 * layers // 3`` are reduction cells,
  which double the channels and halve the resolution (stride 2 on every edge that reads a
  cell input);
- each cell first maps its two inputs to C channels (1x1 ReLU-conv-BN; a FactorizedReduce for
  the earlier input when the previous cell reduced), then node k sums its two operations,
  and the output concatenates the ``concat`` states, so a cell outputs ``len(concat) * C``
  channels (normal and reduction cells may have different node counts and concat lists);
- global average pooling (``nn.AdaptiveAvgPool2d``; DARTS's ImageNet net uses a 7x7 average
  pool, the same on 224-pixel images) and one linear layer. ``forward`` returns the logits.

Left out, as zero-cost scoring at initialisation never uses them: the auxiliary head (a
training-time loss; DARTS's ``count_parameters_in_MB`` leaves it out of parameter counts
too) and drop-path (DARTS applies it only in training with a probability above 0; NASLib's
zero-cost scores of NAS-Bench-301 cells use neither).

Two settings choose between the op variants of the references, for the operations inside
cells only (the preprocessing 1x1 convolutions and FactorizedReduce are always affine):
``affine`` (BatchNorm layers inside operations with learnable scale and shift: DARTS's and
pycls's evaluation networks; NASLib's NAS-Bench-301 graph builds them without) and
``pool_bn`` (a BatchNorm without affine parameters after every pooling operation, as DARTS's
search network ``model_search.py`` and NASLib's NAS-Bench-301 graph do; not in the DARTS
evaluation network). The ops come from ``spaces.darts.ops.OPS``, which other modules extend.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spaces.darts.genotype import Genotype, Pair
from spaces.darts.ops import FactorizedReduce, OPS, ReLUConvBN, make_op, register_op

__all__ = ["Cell", "DartsNetwork", "OPS", "TenasDartsNetwork", "register_op", "reduction_layers"]

STEMS = ("cifar", "imagenet")


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: ``layers // 3`` and ``2 * layers // 3`` (DARTS)."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


class Cell(nn.Module):
    """One cell: preprocessing of both inputs, the nodes' summed operations, the concat."""

    def __init__(
        self, pairs: Sequence[Pair], concat: Sequence[int], c_prev_prev: int, c_prev: int, channels: int,
        reduction: bool, reduction_prev: bool, affine: bool = True, pool_bn: bool = False,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0)
        self.indices = tuple(i for _, i in pairs)
        self.concat = tuple(concat)
        self.multiplier = len(self.concat)
        ops = []
        for name, index in pairs:
            stride = 2 if reduction and index < 2 else 1
            op = make_op(name, channels, stride, affine)
            if pool_bn and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(len(self.ops) // 2):
            a, b = 2 * k, 2 * k + 1
            states.append(self.ops[a](states[self.indices[a]]) + self.ops[b](states[self.indices[b]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsNetwork(nn.Module):
    """Stem, ``layers`` cells of ``genotype`` (reductions at a third and two thirds), global
    average pooling, linear head; see the module docstring for the reference and choices.

    ``channels`` is DARTS's ``C`` (``init_channels``): the width of the first stage's
    operations. ``stem`` is ``"cifar"`` or ``"imagenet"``.
    """

    def __init__(
        self, genotype: Genotype, num_classes: int, channels: int = 36, layers: int = 20, *,
        stem: str = "cifar", stem_multiplier: int = 3, affine: bool = True, pool_bn: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, not {stem!r}")
        if layers < 1 or channels < 1:
            raise ValueError(f"a network needs at least one cell and one channel (layers={layers}, channels={channels})")
        if stem == "imagenet" and channels % 2:
            # the first cell's FactorizedReduce splits C in halves
            raise ValueError(f"the ImageNet stem needs an even number of channels; got {channels}")
        self.genotype = genotype
        self.imagenet = stem == "imagenet"
        c = channels
        if self.imagenet:
            # DARTS's NetworkImageNet: stem0 (3 -> C/2 -> C, two stride-2 convolutions) and
            # stem1 (C -> C, stride 2); the first cell reads both, so its earlier input is
            # reduced as after a reduction cell
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=False),
                nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
            c_prev_prev, c_prev, reduction_prev = c, c, True
        else:
            c_stem = stem_multiplier * c
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
            c_prev_prev, c_prev, reduction_prev = c_stem, c_stem, False
        reductions = reduction_layers(layers)
        cells = []
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            pairs, concat = genotype.cell(reduction)
            cell = Cell(pairs, concat, c_prev_prev, c_prev, c, reduction, reduction_prev, affine, pool_bn)
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.imagenet:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        else:
            s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


class TenasDartsNetwork(nn.Module):
    """TE-NAS's network of the DARTS space, holding one genotype's cells: the thin networks
    TE-NAS scores DARTS cells on (Chen et al., ICLR 2021).

    Follows VITA-Group/TENAS ``lib/models/cell_searchs/search_model_darts_nasnet.py``
    (``NASNetworkDARTS``, commit 1115d109ca497b14ba2bd371784b2b39bbfd1e04) as ``prune_tenas.py``
    builds it for ``--search_space_name darts`` (``super_type nasnet-super``): a stem of one
    3x3 convolution to ``stem_multiplier * C`` channels and BatchNorm (TE-NAS: multiplier 1),
    or none (the input goes straight to the first cell, so it must have ``C *
    stem_multiplier`` channels); ``cells_per_stage`` = N normal cells, a reduction, N - 1
    normal cells, a reduction, N - 1 normal cells, at C, 2C and 4C channels; only the first
    ``depth`` of them (0: all); then BatchNorm and ReLU, global average pooling and a linear
    layer. Cells as DARTS's (``Cell``), with TE-NAS's operations: affine BatchNorm, pooling
    without BatchNorm (``lib/models/cell_operations.py``, the same modules as DARTS's
    evaluation ops; its FactorizedReduce pads odd sizes as ``ops.FactorizedReduce`` does).

    Changed: TE-NAS's supernet holds every candidate operation on every edge and masks all
    but the genotype's (the same function, other random draws); without a stem it still
    builds one it never runs, which is left out here.
    """

    def __init__(
        self, genotype: Genotype, num_classes: int, channels: int, cells_per_stage: int, depth: int = 0,
        stem: bool = True, stem_multiplier: int = 1,
    ) -> None:
        super().__init__()
        n = cells_per_stage
        layout = [(1, False)] * n + [(2, True)] + [(2, False)] * (n - 1) + [(4, True)] + [(4, False)] * (n - 1)
        if depth < 0 or depth > len(layout):
            raise ValueError(f"depth {depth} is out of range: the network has {len(layout)} cells (0 keeps all)")
        if depth:
            layout = layout[:depth]
        c_stem = stem_multiplier * channels
        self.stem: nn.Module = (
            nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)) if stem
            else nn.Identity())
        c_prev_prev, c_prev, reduction_prev = c_stem, c_stem, False
        cells = []
        for multiple, reduction in layout:
            c = multiple * channels
            pairs, concat = genotype.cell(reduction)
            cell = Cell(pairs, concat, c_prev_prev, c_prev, c, reduction, reduction_prev, affine=True, pool_bn=False)
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(self.lastact(s1)).flatten(1))
