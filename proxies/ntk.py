"""Proxies read from the empirical neural tangent kernel (NTK) of a batch.

Theta[i, j] = g_i . g_j for per-sample gradients g_i whose definition (scalar output,
parameters, how BatchNorm couples samples) is set per proxy in its config, with its
reference's choice as default (see proxies/per_sample.py). Each reference scores a network
of its own making (proxies/networks.py): TE-NAS a thin one, HNAS zero-cost-nas's copy. On
the cell's benchmark network as built (``network: full``, ``init: none``) they read
``ScoringContext.sample_kernel`` and share the pass when their settings and batches match.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from benchdata.batches import BatchSpec
from proxies.context import ScoringContext, batch_spec, batch_specs, set_mode
from proxies.networks import INITS, check_network_settings, network_input, reinitialise, scored_network
from proxies.per_sample import METHODS, OUTPUTS, PARAMETER_SETS, sample_kernel
from proxies.registry import register

NTK_CHOICES = {"output": OUTPUTS, "parameters": PARAMETER_SETS, "method": METHODS}


def _kernel(ctx: ScoringContext, net: nn.Module | None, spec: BatchSpec, params: Mapping[str, Any]) -> torch.Tensor:
    """The NTK of batch ``spec`` on ``net``, or on the context's model (a shared pass) for None."""
    mode, output, parameters, method = params["mode"], params["output"], params["parameters"], params["method"]
    if net is None:
        return ctx.sample_kernel(spec, mode, output, parameters, method)
    x, y = ctx.batch(spec)
    set_mode(net, mode)
    net.zero_grad(set_to_none=True)
    return sample_kernel(net, network_input(x, params), y, output, parameters, method)


@register(
    "ntk_cond", higher_is_better=False,
    # prune_launch.py and prune_tenas.py, NAS-Bench-201: 72 augmented images, C=3, N=1 with the
    # stem, init kaiming_normal (fan-out for the NTK), --repeat 3
    defaults={"batch_size": 72, "augment": True, "mode": "train", "output": "logit_sum", "parameters": "weights",
              "method": "jacobian", "network": "thin", "channels": 3, "cells_per_stage": 1, "depth": 0,
              "stem": True, "repeat": 3, "init": "kaiming_normal_fan_out"},
    choices={**NTK_CHOICES, "network": ("thin", "full"), "init": INITS},
    check=lambda params: check_network_settings("ntk_cond", params),
)
def ntk_cond(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Condition number of the NTK, largest over smallest eigenvalue: TE-NAS (Chen, Gong
    and Wang, ICLR 2021), ``get_ntk_n`` in VITA-Group/TENAS lib/procedures/ntk.py, on the
    network prune_tenas.py scores for NAS-Bench-201 (commit 9df78ff, June 2021). Lower is
    better (TE-NAS prunes towards a smaller condition number).

    Per repeat: re-initialise the network, one batch of its own, the NTK's condition
    number; the score is the mean over ``repeat`` repeats (TE-NAS averages its per-repeat
    changes of the condition number). As the reference, a nan ratio becomes 1e5 and an
    infinite one the largest float (``np.nan_to_num``).

    Reference choices kept (config defaults): the thin network TE-NAS builds for the NTK
    (``network: thin``): the cell in NAS-Bench-201's macro structure with C = 3 channels,
    N = 1 cell per stage, all five layers and the stem (prune_tenas.py ``model_config``,
    ``TinyNetworkDarts``); train mode, BatchNorm on batch statistics (``train_mode=True``);
    one batch of 72 augmented training images per repeat and 3 repeats (prune_launch.py:
    ``batch_size 72``, ``--repeat 3``; each repeat reads a new batch from the shuffled
    loader); the gradient of each sample's summed logits through the batched forward
    (``method: jacobian``, ``output: logit_sum``) over every parameter named ``weight``
    (Conv2d, Linear, BatchNorm scales; ``parameters: weights``); Kaiming-normal
    re-initialisation before every repeat, fan-out as prune_tenas.py asks for the NTK
    (``init: kaiming_normal_fan_out``; Conv2d and Linear weights, biases 0, BatchNorm 1 and 0).

    Changed: eigenvalues in float64 (reference: float32 ``symeig``); the network holds the
    cell's operations only, where TE-NAS's supernet holds every candidate and masks all
    but one (the same function and gradients, other random draws); TE-NAS's stem takes
    min(3, C) input channels, here always the 3 image channels; none of its cells has a
    ``none`` edge (it prunes that operation first), here a ``none`` edge multiplies by 0.
    Seen in the reference: prune_launch.py's ``init = 'kaiming_normal'`` becomes
    ``kaiming_normal_fanout``, which ``init_model`` does not recognise (it knows
    ``kaiming_norm_fanout``), so its released runs kept PyTorch's default initialisation and
    the same weights in all repeats: ``init: none`` reproduces that. ``network: full``
    scores the cell's benchmark network instead (with ``init: none`` and ``repeat: 1``, the
    sweep's initialisation and one batch, sharing the kernel with ntk_trace_norm when
    their settings match).
    """
    net = scored_network(ctx, params)
    conditions = []
    for spec in batch_specs(params):
        if net is not None:
            reinitialise(net, params["init"])
        eigenvalues = torch.linalg.eigvalsh(_kernel(ctx, net, spec, params))  # ascending
        ratio = (eigenvalues[-1] / eigenvalues[0]).item()
        conditions.append(float(np.nan_to_num(ratio, nan=100000.0)))
    return float(np.mean(conditions))


# HNAS's kappa (shuyao95/HNAS foresight/pruners/measures/condnum.py, commit 970789c): the
# condition number of the very NTK its ntk_trace_norm reads (zero-cost-nas's network, 64
# augmented images, label logits, per-layer gradients of Conv2d and Linear weights and
# biases), once, on the sweep's initialisation; HNAS's search (searches/hnas.py) divides it
# by its gradient metric
register(
    "ntk_cond_hnas", higher_is_better=False, uses_labels=True,
    defaults={"batch_size": 64, "augment": True, "mode": "train", "output": "label_logit",
              "parameters": "conv_linear", "method": "layer_local", "network": "zero_cost_nas", "repeat": 1,
              "init": "none"},
    choices={**NTK_CHOICES, "network": ("zero_cost_nas", "full"), "init": INITS},
)(ntk_cond)


@register(
    "ntk_trace_norm", uses_labels=True,
    # 64 augmented images (nasbench2_pred.py); autograd_hacks: per-layer gradients of one backward
    defaults={"batch_size": 64, "augment": True, "mode": "train", "output": "label_logit",
              "parameters": "conv_linear", "method": "layer_local", "network": "zero_cost_nas"},
    choices={**NTK_CHOICES, "network": ("zero_cost_nas", "full")},
)
def ntk_trace_norm(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """sqrt(trace norm of the NTK / N): the training-free metric of Shu, Dai, Wu and Low,
    "Unifying and Boosting Gradient-Based Training-Free Neural Architecture Search"
    (HNAS, NeurIPS 2022, the venue its README cites), shuyao95/HNAS
    foresight/pruners/measures/ntk_trace.py ``compute_ntk_trace`` with
    tools/autograd_hacks.py (commit 970789c, November 2022; darts_space/search.py
    ``compute_metrics`` is the same). The NTK is positive semi-definite, so its trace norm
    is the sum of its eigenvalues, i.e. its trace: the reference sums ``symeig``
    eigenvalues, here the diagonal is summed (the same value up to rounding). Higher is
    better.

    Reference choices kept (config defaults): zero-cost-nas's network of the cell
    (``network: zero_cost_nas``; nasbench/nasbench2_pred.py builds the NB201 cell with
    foresight/models/nasbench2.py, whose cell convolutions carry a bias followed by
    BatchNorm without affine parameters or running statistics, and the measure scores a
    copy holding the same weights): it is the benchmark network with the cell's weights
    plus those biases, whose per-sample gradients enter the NTK (their values do not
    matter: BatchNorm on batch statistics cancels them); train mode; one batch of 64
    augmented training images (``--batch_size 64``, one random batch); per-sample
    gradients of each sample's label logit (``output: label_logit``) over the weights and
    biases of every Conv2d and Linear layer the backward reaches (``parameters:
    conv_linear``), formed layer by layer from one backward of the summed label logits as
    ``autograd_hacks.compute_grad1`` does (``method: layer_local``); normalised by the
    batch size N inside the square root. Spaces whose zero-cost-nas network is the
    benchmark's (NB101: convolutions without bias) score the same as ``network: full``,
    which scores the benchmark network itself.
    """
    net = scored_network(ctx, params)
    theta = _kernel(ctx, net, batch_spec(params), params)
    return math.sqrt(float(torch.diagonal(theta).sum()) / theta.shape[0])
