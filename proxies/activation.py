"""Activation-pattern proxies."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from proxies.context import ScoringContext, batch_spec
from proxies.registry import register


@register("naswot")
def naswot(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """NASWOT (Mellor et al., ICML 2021, "Neural Architecture Search without Training"),
    the ``hook_logdet`` score of BayesWatch/nas-without-training (score_networks.py,
    scores.py): K = sum over ReLUs on a path to the output of c c^T + (1-c)(1-c)^T with c
    the binary codes (ReLU input > 0) of the batch; score = log|det K| from ``slogdet``.

    Reference choices kept: network in train mode, 128 training images without
    augmentation (``augtype none``), codes read at the input of every nn.ReLU.
    """
    kernel = ctx.relu_kernel(batch_spec(params), params["mode"])
    _sign, logdet = np.linalg.slogdet(kernel)
    return float(logdet)
