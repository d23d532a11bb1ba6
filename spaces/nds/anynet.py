"""The ResNet, ResNeXt and Vanilla networks of the NDS design spaces, as pycls trained them.

Follows pycls's AnyNet (facebookresearch/unnas at commit 0ed0dbc, ``pycls/models/anynet.py``,
the pycls of NDS's time; facebookresearch/pycls keeps it as ``pycls/models/anynet.py``). An
NDS record describes a network by per-stage lists (``ds`` depths, ``ws`` widths, ``ss``
strides, ``bot_muls`` bottleneck ratios, ``num_gs`` groups) whose FIRST entry is the stem
(the public AnyNet takes the stem's width separately):

- stem: one 3x3 convolution (3 -> ``ws[0]``, stride 1, no bias), BatchNorm, ReLU on CIFAR
  (pycls ``ResStemCifar``). On ImageNet, pycls's ``ResStemIN`` (7x7 convolution stride 2,
  BatchNorm, ReLU, 3x3 max pool stride 2) of width ``ws[0]``: pycls's ImageNet ResNet stem,
  the one choice here that no recorded parameter count has confirmed (no ImageNet record
  was at hand). Stems have their own strides (CIFAR records hold ``ds[0] = ss[0] = 1``).
- stages 1..: ``ds[i]`` blocks of width ``ws[i]``, the first with stride ``ss[i]``:
  ``res_bottleneck_block`` (ResNeXt; pycls ``ResBottleneckBlock``: 1x1 conv to
  ``round(ws[i] * bot_muls[i])`` channels, 3x3 conv in ``num_gs[i]`` groups carrying the
  stride, 1x1 conv back, each followed by BatchNorm, ReLU between; a 1x1 conv + BatchNorm
  projection when the width or resolution changes; ReLU after the sum),
  ``res_basic_block`` (ResNet; two 3x3 convs, the same shortcut) or ``double_plain_block``
  (Vanilla; pycls ``VanillaBlock``: two 3x3 conv + BatchNorm + ReLU, no shortcut).
- head: global average pooling and a linear layer with bias.

``num_gs`` counts groups (the public AnyNet's ``gws`` is a group width instead): so read,
real NDS records give exactly the ``params`` their files record (``tests/test_nds_space.py``
checks a ResNeXt-A, a ResNet and a Vanilla record). Weights are initialised as pycls does
(``pycls/core/net.py`` ``init_weights``): convolutions N(0, sqrt(2 / (k * k * out_channels))),
BatchNorm weight 1 and bias 0 (no zero-init of a block's last BatchNorm, pycls's default),
linear N(0, 0.01) with bias 0. BatchNorm eps and momentum are pycls's (1e-5, 0.1), torch's
defaults. ``forward`` returns the logits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import torch
from torch import nn

#: block types of the NDS files and what pycls builds for them
BLOCK_TYPES = ("res_bottleneck_block", "res_basic_block", "double_plain_block")


@dataclass(frozen=True)
class AnyNetSpec:
    """One NDS residual/plain network: block type and per-stage lists, entry 0 the stem.
    ``bot_muls`` and ``num_gs`` are empty unless the block is a bottleneck."""

    block_type: str
    ds: tuple[int, ...]
    ws: tuple[int, ...]
    ss: tuple[int, ...]
    bot_muls: tuple[float, ...] = ()
    num_gs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_spec(self)


def check_spec(spec: AnyNetSpec) -> None:
    """ValueError in one line unless ``spec`` describes a network pycls can build."""
    if spec.block_type not in BLOCK_TYPES:
        raise ValueError(f"unknown NDS block type {spec.block_type!r}; expected one of {', '.join(BLOCK_TYPES)}")
    n = len(spec.ds)
    if n < 2 or len(spec.ws) != n or len(spec.ss) != n:
        raise ValueError(f"ds, ws and ss must be lists of one length >= 2 (the stem, then the stages); "
                         f"got {len(spec.ds)}, {len(spec.ws)}, {len(spec.ss)} entries")
    for name, values in (("ds", spec.ds), ("ws", spec.ws), ("ss", spec.ss)):
        if not all(_positive_int(v) for v in values):
            raise ValueError(f"{name} must hold positive integers; got {list(values)}")
    if spec.ds[0] != 1:
        raise ValueError(f"ds[0] describes the stem and must be 1; got {spec.ds[0]}")
    if spec.block_type == "res_bottleneck_block":
        if len(spec.bot_muls) != n or len(spec.num_gs) != n:
            raise ValueError(f"a res_bottleneck_block network needs bot_muls and num_gs with {n} entries; got "
                             f"{len(spec.bot_muls)} and {len(spec.num_gs)}")
        for i in range(1, n):
            bm, g = spec.bot_muls[i], spec.num_gs[i]
            if not (isinstance(bm, (int, float)) and not isinstance(bm, bool) and math.isfinite(bm) and bm > 0):
                raise ValueError(f"bot_muls[{i}] must be a positive number; got {bm!r}")
            if not _positive_int(g):
                raise ValueError(f"num_gs[{i}] must be a positive integer; got {g!r}")
            width = bottleneck_width(spec.ws[i], bm)
            if width < 1 or width % g:
                raise ValueError(f"stage {i}: the bottleneck width round({spec.ws[i]} * {bm}) = {width} is not a "
                                 f"positive multiple of num_gs[{i}] = {g}")
    elif spec.bot_muls or spec.num_gs:
        raise ValueError(f"a {spec.block_type} network takes no bot_muls or num_gs; got {list(spec.bot_muls)}, "
                         f"{list(spec.num_gs)}")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def bottleneck_width(width: int, bot_mul: float) -> int:
    """pycls's ``w_b = int(round(w_out * bm))``."""
    return int(round(width * bot_mul))


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out)]


class Block(nn.Module):
    """One block: pycls ``ResBottleneckBlock``, ``ResBasicBlock`` or ``VanillaBlock``."""

    def __init__(self, block_type: str, w_in: int, w_out: int, stride: int, bot_mul: float | None = None,
                 groups: int | None = None) -> None:
        super().__init__()
        self.residual = block_type != "double_plain_block"
        if block_type == "res_bottleneck_block":
            assert bot_mul is not None and groups is not None
            w_b = bottleneck_width(w_out, bot_mul)
            layers = [*_conv_bn(w_in, w_b, 1), nn.ReLU(), *_conv_bn(w_b, w_b, 3, stride, groups), nn.ReLU(),
                      *_conv_bn(w_b, w_out, 1)]
        else:
            layers = [*_conv_bn(w_in, w_out, 3, stride), nn.ReLU(), *_conv_bn(w_out, w_out, 3)]
            if not self.residual:
                layers.append(nn.ReLU())
        self.f = nn.Sequential(*layers)
        self.proj = (nn.Sequential(*_conv_bn(w_in, w_out, 1, stride))
                     if self.residual and (w_in != w_out or stride != 1) else None)
        self.relu = nn.ReLU() if self.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return self.f(x)
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(shortcut + self.f(x))


class AnyNet(nn.Module):
    """Stem, stages, head of one NDS record (see the module docstring)."""

    def __init__(self, spec: AnyNetSpec, num_classes: int, imagenet: bool = False) -> None:
        super().__init__()
        w0 = spec.ws[0]
        if imagenet:
            self.stem = nn.Sequential(nn.Conv2d(3, w0, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(w0),
                                      nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(*_conv_bn(3, w0, 3), nn.ReLU())
        stages: list[nn.Module] = []
        w_in = w0
        bottleneck = spec.block_type == "res_bottleneck_block"
        for i in range(1, len(spec.ds)):
            blocks = [Block(spec.block_type, w_in if b == 0 else spec.ws[i], spec.ws[i], spec.ss[i] if b == 0 else 1,
                            spec.bot_muls[i] if bottleneck else None, spec.num_gs[i] if bottleneck else None)
                      for b in range(spec.ds[i])]
            stages.append(nn.Sequential(*blocks))
            w_in = spec.ws[i]
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w_in, num_classes)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


def init_weights(m: nn.Module) -> None:
    """pycls's ResNet-style initialisation (``pycls/core/net.py`` ``init_weights``)."""
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, mean=0.0, std=0.01)
        nn.init.zeros_(m.bias)

