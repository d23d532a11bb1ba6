"""The operations of the NDS cell design spaces beyond DARTS's, added to the genotype-cell
family's op table (``spaces.darts.ops``), and each design space's operation list.

Follows pycls's NAS operations as NDS trained them (facebookresearch/unnas at commit
0ed0dbc, ``pycls/models/nas/operations.py`` ``OPS``; BayesWatch/nas-without-training keeps
the same file), called with ``affine=True`` (pycls's ``Cell``):

- ``conv_1x1``, ``conv_3x3``: ReLU, convolution (stride on it, no bias), BatchNorm;
- ``conv_3x1_1x3``, ``conv_7x1_1x7``: ReLU, a 1xk convolution with stride (1, s), a kx1
  convolution with stride (s, 1), one BatchNorm after both;
- ``max_pool_5x5``, ``max_pool_7x7``: max pooling with padding k // 2;
- ``sep_conv_7x7``: DARTS's separable convolution (two depthwise + pointwise blocks) of 7x7;
- ``dil_sep_conv_3x3``: the separable convolution with both depthwise convolutions dilated
  by 2 (padding 2).

The operation lists are pycls's ``pycls/models/nas/genotypes.py`` (``DARTS_OPS``,
``ENAS_OPS``, ``PNAS_OPS``, ``NASNET_OPS``, ``AMOEBA_OPS``), the operations NDS sampled each
design space's cells from; every one is in the table once this module is imported (a
genotype naming an operation the table lacks is refused when its file is read). The 2x2
pools of pycls's table are in none of these lists and are not added. An operation the
family's table already has is used as it is (DARTS's definitions, which pycls copies).
"""
from __future__ import annotations

from typing import Mapping

from torch import nn

from spaces.darts.ops import OPS, OpBuilder, SepConv, register_op


class FactorizedConv(nn.Sequential):
    """ReLU, 1xk then kx1 convolution (the stride split between them), BatchNorm."""

    def __init__(self, channels: int, kernel: int, stride: int, affine: bool = True) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, (1, kernel), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(channels, channels, (kernel, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )


class DilSepConv(nn.Sequential):
    """Two blocks of ReLU, dilated depthwise convolution, pointwise convolution, BatchNorm;
    the first depthwise convolution carries the stride."""

    def __init__(self, channels: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        c = channels
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=padding, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, padding=0, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=1, padding=padding, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, padding=0, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


def _relu_conv_bn(c: int, kernel: int, stride: int, affine: bool) -> nn.Module:
    return nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c, c, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c, affine=affine))


#: the NDS operations and their builders (C, stride, affine) -> module
NDS_EXTRA_OPS: Mapping[str, OpBuilder] = {
    "conv_1x1": lambda c, stride, affine: _relu_conv_bn(c, 1, stride, affine),
    "conv_3x3": lambda c, stride, affine: _relu_conv_bn(c, 3, stride, affine),
    "conv_3x1_1x3": lambda c, stride, affine: FactorizedConv(c, 3, stride, affine),
    "conv_7x1_1x7": lambda c, stride, affine: FactorizedConv(c, 7, stride, affine),
    "max_pool_5x5": lambda c, stride, affine: nn.MaxPool2d(5, stride=stride, padding=2),
    "max_pool_7x7": lambda c, stride, affine: nn.MaxPool2d(7, stride=stride, padding=3),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine=affine),
    "dil_sep_conv_3x3": lambda c, stride, affine: DilSepConv(c, 3, stride, 2, 2, affine=affine),
}

for _name, _builder in NDS_EXTRA_OPS.items():
    if _name not in OPS:
        register_op(_name)(_builder)

#: each cell design space's operations (pycls ``pycls/models/nas/genotypes.py``)
DESIGN_SPACE_OPS: Mapping[str, tuple[str, ...]] = {
    "DARTS": ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
              "dil_conv_3x3", "dil_conv_5x5"),
    "ENAS": ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"),
    "PNAS": ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7", "skip_connect", "avg_pool_3x3",
             "max_pool_3x3", "dil_conv_3x3"),
    "NASNet": ("skip_connect", "conv_3x1_1x3", "conv_7x1_1x7", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
               "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5",
               "sep_conv_7x7"),
    "Amoeba": ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3", "max_pool_3x3",
               "dil_sep_conv_3x3", "conv_7x1_1x7"),
}

missing = sorted({op for ops in DESIGN_SPACE_OPS.values() for op in ops} - set(OPS))
if missing:  # a design space naming an op no module registered: a bug here, not bad input
    raise ImportError(f"the NDS design spaces name operations missing from the op table: {missing}")
