"""Proxies read from the empirical neural tangent kernel (NTK) of one batch.

Both read ``ScoringContext.sample_kernel``: Theta[i, j] = g_i . g_j for per-sample
gradients g_i whose definition (scalar output, parameters, how BatchNorm couples samples)
is set per proxy in its config, with its reference's choice as default (see
proxies/per_sample.py). When two proxies' settings and batches match, they share the pass.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from proxies.context import ScoringContext, batch_spec
from proxies.per_sample import METHODS, OUTPUTS, PARAMETER_SETS
from proxies.registry import register

NTK_CHOICES = {"output": OUTPUTS, "parameters": PARAMETER_SETS, "method": METHODS}


def _kernel(ctx: ScoringContext, params: Mapping[str, Any]) -> torch.Tensor:
    return ctx.sample_kernel(
        batch_spec(params), params["mode"], params["output"], params["parameters"], params["method"]
    )


@register(
    "ntk_cond", higher_is_better=False,
    # 72 augmented images (prune_launch.py, NAS-Bench-201)
    defaults={"batch_size": 72, "augment": True, "mode": "train", "output": "logit_sum", "parameters": "weights",
              "method": "jacobian"},
    choices=NTK_CHOICES,
)
def ntk_cond(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Condition number of the NTK, largest over smallest eigenvalue: TE-NAS (Chen, Gong
    and Wang, ICLR 2021), ``get_ntk_n`` in VITA-Group/TENAS lib/procedures/ntk.py. Lower is
    better (TE-NAS prunes towards a smaller condition number).

    Reference choices kept (config defaults): network in train mode with BatchNorm on batch
    statistics (``train_mode=True`` in prune_tenas.py); one batch of 72 augmented training
    images (prune_launch.py for NAS-Bench-201); the gradient of each sample's summed logits
    through the batched forward (``method: jacobian``, ``output: logit_sum``), over every
    parameter named ``weight`` (Conv2d, Linear, BatchNorm scales; ``parameters: weights``).
    As the reference, a nan ratio becomes 1e5 and an infinite one the largest float
    (``np.nan_to_num``). The eigenvalues are computed in float64 (reference: float32).
    Not kept: TE-NAS scores pruned supernets, re-initialised Kaiming-normal and averaged
    over 3 re-drawn initialisations; here the cell's own network is scored with the sweep's
    initialisation (seeds give the repeats).
    """
    eigenvalues = torch.linalg.eigvalsh(_kernel(ctx, params))  # ascending
    ratio = (eigenvalues[-1] / eigenvalues[0]).item()
    return float(np.nan_to_num(ratio, nan=100000.0))


@register(
    "ntk_trace_norm", uses_labels=True,
    # 64 augmented images (nasbench2_pred.py); autograd_hacks: per-layer gradients of one backward
    defaults={"batch_size": 64, "augment": True, "mode": "train", "output": "label_logit",
              "parameters": "conv_linear", "method": "layer_local"},
    choices=NTK_CHOICES,
)
def ntk_trace_norm(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """sqrt(trace norm of the NTK / N): the training-free metric of Shu, Dai, Wu and Low,
    "Unifying and Boosting Gradient-Based Training-Free Neural Architecture Search"
    (HNAS, NeurIPS 2022, the venue its README cites; shuyao95/HNAS foresight/pruners/measures/ntk_trace.py, also darts_space/search.py
    ``compute_metrics``). The NTK is positive semi-definite, so its trace norm is the sum of
    its eigenvalues, i.e. its trace: the reference sums ``symeig`` eigenvalues, here the
    diagonal is summed (the same value up to rounding). Higher is better.

    Reference choices kept (config defaults): network in train mode, BatchNorm kept; one
    batch of 64 augmented training images (nasbench2_pred.py); per-sample gradients of each
    sample's label logit (``output: label_logit``) over Conv2d and Linear weights and biases
    (``parameters: conv_linear``), formed layer by layer from one backward of the summed label
    logits as ``autograd_hacks.compute_grad1`` does (``method: layer_local``).
    """
    theta = _kernel(ctx, params)
    return math.sqrt(float(torch.diagonal(theta).sum()) / theta.shape[0])
