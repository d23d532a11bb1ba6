"""The NAS-Bench-201 network, built like the benchmark's own training code builds it.

Follows the macro structure of NAS-Bench-201 (Dong & Yang, ICLR 2020; ``TinyNetwork`` and
``InferCell`` in D-X-Y/AutoDL-Projects ``xautodl/models/cell_infers``): a 3x3 conv + BN stem,
three stages of five cells with 16/32/64 channels separated by residual reduction blocks,
BN + ReLU, global average pooling and a linear head. A cell only instantiates the operation
chosen on each of its six edges, with convolutions without bias followed by affine
BatchNorm, so parameter counts equal the benchmark's ``params`` column. ``forward`` returns
the logits alone.

The same class builds the variants proxies score (``spaces.base.NetworkVariant``): other
widths and cells per stage, the first ``depth`` layers only, no stem (TE-NAS's thin
networks, ``TinyNetworkDarts`` in VITA-Group/TENAS lib/models/cell_searchs/
search_model_darts.py), and zero-cost-nas's cell operations (``zero_cost_nas_ops``: its
foresight/models/nasbench2_ops.py builds the cells' ReLU-conv-BN with ``affine=False``,
hence a bias on every cell convolution and BatchNorm without affine parameters or running
statistics after it; stem, reductions and head as the benchmark's).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: (target node, source node) of the six edges, in cell-string order
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution without bias, affine BatchNorm: the benchmark's conv operation.
    With ``zero_cost_nas`` zero-cost-nas's cell operation: a convolution with bias, then
    BatchNorm without affine parameters and without running statistics. ``affine=False``
    drops the BatchNorm's affine parameters only, as DARTS-style supernets build their
    cell operations (``spaces.nb201.supernet``)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, zero_cost_nas: bool = False,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=zero_cost_nas),
            nn.BatchNorm2d(c_out, affine=affine and not zero_cost_nas, track_running_stats=not zero_cost_nas),
        )


class Zero(nn.Module):
    """The 'none' edge: multiplies by zero, so it stays in the autograd graph as upstream."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int, zero_cost_nas: bool = False, affine: bool = True) -> nn.Module:
    """One edge operation of a cell (stride 1, channels in == channels out); ``affine``:
    whether the convolutions' BatchNorms have affine parameters (see ``ReLUConvBN``)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0, zero_cost_nas, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1, zero_cost_nas, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}; expected one of {OPS}")


class Cell(nn.Module):
    """A 4-node cell: node j sums its incoming edges; node 3 is the output."""

    def __init__(self, ops: Sequence[str], channels: int, zero_cost_nas: bool = False) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels, zero_cost_nas) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            nodes.append(
                sum(
                    op(nodes[source])
                    for op, (tgt, source) in zip(self.edges, EDGES)
                    if tgt == target
                )
            )
        return nodes[3]


class ResidualReduction(nn.Module):
    """The benchmark's reduction block: two ReLUConvBN (stride 2, then 1) plus an
    average-pool + 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem, 3 stages x ``cells_per_stage`` cells, residual reductions, head.

    ``depth`` > 0 keeps the first ``depth`` layers (cells and reductions in order) and
    puts the head after them, as TE-NAS's ``depth``; ``stem=False`` leaves the stem out (an
    identity), so the input must have ``channels`` channels; ``zero_cost_nas_ops`` builds
    the cells' convolutions as zero-cost-nas does (``ReLUConvBN``). ``cell`` builds each
    cell from its channel count instead of ``Cell(ops, ...)`` (the supernet's mixed cells,
    ``spaces.nb201.supernet``): everything else is built as here."""

    def __init__(
        self, ops: Sequence[str], num_classes: int, channels: int = 16, cells_per_stage: int = 5,
        depth: int = 0, stem: bool = True, zero_cost_nas_ops: bool = False,
        cell: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        make_cell = cell or (lambda c_in: Cell(ops, c_in, zero_cost_nas_ops))
        self.stem: nn.Module = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(channels)
        ) if stem else nn.Identity()
        plan: list[tuple[str, int]] = []  # (kind, input channels) of each layer, in order
        c = channels
        for stage in range(3):
            if stage > 0:
                plan.append(("reduction", c))
                c *= 2
            plan.extend([("cell", c)] * cells_per_stage)
        if depth > 0:
            plan = plan[:depth]  # the layers past it are never built, as in TE-NAS
            kind, c = plan[-1]
            c = 2 * c if kind == "reduction" else c
        self.cells = nn.Sequential(*(
            ResidualReduction(c_in, 2 * c_in) if kind == "reduction" else make_cell(c_in)
            for kind, c_in in plan
        ))
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(out).flatten(1))
