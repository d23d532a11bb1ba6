"""The operation table of the genotype-cell family: op name -> builder(C, stride, affine).

Follows DARTS (Liu et al., ICLR 2019), quark0/darts ``cnn/operations.py`` at
f276dd346a09ae3160f8e3aca5c7b193fda1da37, whose table pycls ``pycls/models/nas/operations.py``
(the NDS code, Radosavovic et al. 2019) copies and extends. Every builder takes the channel
count ``C`` (in == out), the stride (2 on the edges of a reduction cell that read a cell
input, else 1) and whether the BatchNorm layers inside the op are affine, and returns a
module mapping ``N x C x H x W`` to ``N x C x H/stride x W/stride``.

The table is open: another module adds operations with ``@register_op("name")`` (the NDS
cell spaces add ``conv_3x3``, ``sep_conv_7x7``, ``dil_sep_conv_3x3``, ... this way), and
genotypes are checked against it when parsed, so a space must import the module that
registers its operations before it parses its cells.

Choices kept from the reference, and where this code differs:

- Convolutions have no bias; every ReLU is out of place (DARTS's ImageNet stem uses
  in-place ReLUs whose only effect is to apply, once more, a ReLU the next op applies anyway).
- ``skip_connect`` with stride 2 is a FactorizedReduce (two 1x1 convolutions of stride 2,
  the second shifted by one pixel, concatenated, then BatchNorm). DARTS shifts by slicing
  (``x[:, :, 1:, 1:]``), pycls pads by one pixel first; on even sizes (every CIFAR and
  ImageNet stage) both give the same numbers, and the padded form also works on odd sizes,
  so it is the one used here.
- ``none`` multiplies by zero (subsampled with stride 2), so it stays in the autograd graph
  as in DARTS; NASLib's name for it, ``zero``, is read as ``none`` by the genotype parser.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

#: builder(C, stride, affine) -> module
OpBuilder = Callable[[int, int, bool], nn.Module]

#: the operation table; extend it with ``register_op``
OPS: dict[str, OpBuilder] = {}

#: the DARTS search space's candidate operations (quark0/darts ``cnn/genotypes.py`` PRIMITIVES)
DARTS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")


def register_op(name: str) -> Callable[[OpBuilder], OpBuilder]:
    """Decorator adding ``builder(C, stride, affine)`` to the table under ``name``;
    KeyError if the name is taken (two meanings of one name would make genotypes ambiguous)."""

    def add(builder: OpBuilder) -> OpBuilder:
        if name in OPS:
            raise KeyError(f"operation {name!r} is registered twice")
        OPS[name] = builder
        return builder

    return add


def make_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    """The operation ``name``; ValueError naming the known ones otherwise."""
    try:
        builder = OPS[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(sorted(OPS))}") from None
    return builder(channels, stride, affine)


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution without bias, BatchNorm: DARTS's 1x1 preprocessing of cell inputs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise dilated convolution, pointwise convolution, BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two DilConv-like blocks without dilation, the first with the stride: DARTS's
    separable convolution (so its parameters are twice a single depthwise-separable block's)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=1, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` operation: zeros of the output's shape, kept in the autograd graph."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the resolution without losing every other pixel: ReLU, two 1x1 convolutions of
    stride 2 (the second on the input shifted by one pixel), concatenated, BatchNorm."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, not {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


@register_op("none")
def _none(c: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@register_op("avg_pool_3x3")
def _avg_pool_3x3(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


@register_op("max_pool_3x3")
def _max_pool_3x3(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.MaxPool2d(3, stride=stride, padding=1)


@register_op("skip_connect")
def _skip_connect(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)


@register_op("sep_conv_3x3")
def _sep_conv_3x3(c: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(c, c, 3, stride, 1, affine=affine)


@register_op("sep_conv_5x5")
def _sep_conv_5x5(c: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(c, c, 5, stride, 2, affine=affine)


@register_op("dil_conv_3x3")
def _dil_conv_3x3(c: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(c, c, 3, stride, 2, 2, affine=affine)


@register_op("dil_conv_5x5")
def _dil_conv_5x5(c: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(c, c, 5, stride, 4, 2, affine=affine)
