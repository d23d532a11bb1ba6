"""Baselines every proxy should beat."""
from __future__ import annotations

from typing import Any, Mapping

from proxies.context import ScoringContext
from proxies.registry import register


@register("params", uses_images=False)
def params(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Number of trainable parameters of the network as built (NB201: equals the
    benchmark's ``params`` column times 1e6, CIFAR-10 head)."""
    return float(sum(p.numel() for p in ctx.model.parameters() if p.requires_grad))
