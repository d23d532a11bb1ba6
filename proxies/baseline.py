"""Baselines every proxy should beat."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from proxies.context import ScoringContext, set_mode
from proxies.registry import register


@register("params", uses_images=False)
def params(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Number of trainable parameters of the network as built (NB201: equals the
    benchmark's ``params`` column times 1e6, CIFAR-10 head)."""
    return float(sum(p.numel() for p in ctx.model.parameters() if p.requires_grad))


@register("flops", uses_images=False, defaults={"batchnorm": False, "pooling": False})
def flops(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Multiply-accumulates (MACs) of one forward pass of one image, counted at the modules
    that actually run (a module called twice counts twice; one never called, not at all).

    Convention: NAS-Bench-201's own counter (D-X-Y/AutoDL-Projects
    xautodl/utils/flop_benchmark.py ``get_model_infos``), so NB201 values equal the
    benchmark's FLOPs column times 1e6: a Conv2d costs k_h k_w C_in C_out / groups per
    output position, a Linear C_in C_out, plus one per output value for a bias; BatchNorm,
    pooling, activations and additions cost nothing (``batchnorm: true`` adds one per
    output value, an inference-time scale and shift; ``pooling: true`` adds the window
    size per output value, AutoDL's pooling hook, which its total leaves out, and the input
size for adaptive pooling). A MAC is
    counted once, not as two FLOPs, as that counter and most NAS papers do.

    The count depends only on shapes: the input is zeros of the image shape, in eval mode
    so no BatchNorm statistics move.
    """
    counter = MacCounter(bool(params.get("batchnorm", False)), bool(params.get("pooling", False)))
    was_training = ctx.model.training
    set_mode(ctx.model, "eval")
    handles = [m.register_forward_hook(counter.hook) for m in ctx.model.modules()]
    try:
        with torch.no_grad():
            ctx.model(torch.zeros((1, *ctx.input_shape), device=ctx.device))
    finally:
        for h in handles:
            h.remove()
        ctx.model.train(was_training)
    return float(counter.total)


class MacCounter:
    """Forward hook that adds each called module's multiply-accumulates to ``total``."""

    def __init__(self, batchnorm: bool, pooling: bool) -> None:
        self.batchnorm = batchnorm
        self.pooling = pooling
        self.total = 0

    def hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.total += self.macs(module, inputs[0], output)

    def macs(self, module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
        per_sample = out[0].numel()  # one input image: counts are per image
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            positions = per_sample // module.out_channels
            macs = kh * kw * (module.in_channels // module.groups) * module.out_channels * positions
            return macs + (per_sample if module.bias is not None else 0)
        if isinstance(module, nn.Linear):
            rows = per_sample // module.out_features
            return rows * module.in_features * module.out_features + (per_sample if module.bias is not None else 0)
        if self.batchnorm and isinstance(module, nn.modules.batchnorm._BatchNorm):
            return per_sample
        if self.pooling and isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
            kh, kw = _pair(module.kernel_size)
            return kh * kw * per_sample
        if self.pooling and isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return x[0].numel()  # every input value is read once into some window
        return 0


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
