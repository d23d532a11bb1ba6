"""Two proxies of a user's own: one that is a simple function of the network, one that
always fails (so a sweep's error rows can be tested without breaking a real proxy)."""
from __future__ import annotations

from typing import Any, Mapping

from proxies import ScoringContext, register


@register("scaled_params", uses_images=False, defaults={"scale": 1.0})
def scaled_params(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """``scale`` times the number of trainable parameters: by hand, scale x ``params``."""
    return params["scale"] * sum(p.numel() for p in ctx.model.parameters() if p.requires_grad)


@register("always_fails", uses_images=False, defaults={"reason": "a proxy that raises"})
def always_fails(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    raise ValueError(f"oops: {params['reason']}")
