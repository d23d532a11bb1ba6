"""Proxies from per-weight statistics of loss gradients over several batches.

Both references run the mean cross-entropy forward/backward once per batch on the network
in train mode and read the gradient of every Conv2d and Linear weight after each backward.
ZiCo zeroes the gradients before every batch, so it records each batch's own gradient
(``zero_grad_between_batches: true``); xi-GSNR never zeroes them, so its k-th recorded
gradient is the sum of the first k batch gradients (``false``). Each batch's gradient
comes from the context's shared loss-gradient pass, so batch 0 is the very pass grad_norm,
snip, plain and fisher read when their batch settings match. Gradients are float32 as in
the references; the statistics are taken in float64 (the references use numpy on float32
arrays: rounding-level differences).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

import torch

from proxies.context import ScoringContext, batch_specs
from proxies.registry import register


def recorded_gradients(ctx: ScoringContext, params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Per Conv2d/Linear layer, the gradients recorded after each batch, float64, shape
    (batches, weights of the layer): running sums unless ``zero_grad_between_batches``."""
    per_batch = [ctx.loss_gradients(spec, params["mode"]) for spec in batch_specs(params)]
    layers = []
    for position in range(len(per_batch[0])):
        grads = [batch[position].grad.reshape(-1) for batch in per_batch]
        if not params["zero_grad_between_batches"]:
            grads = list(itertools.accumulate(grads))  # float32 sums, as .grad accumulates
        layers.append(torch.stack(grads).double())
    return layers


@register(
    "zico", uses_labels=True,
    # evolution_search.py --maxbatch 2; --batch_size 128 in every ZiCo search script, as the paper
    defaults={"batch_size": 128, "augment": True, "num_batches": 2, "mode": "train",
              "zero_grad_between_batches": True},
)
def zico(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """ZiCo (Li, Yang, Bhardwaj and Marculescu, ICLR 2023), ``getzico``/``caculate_zico`` in
    SLDGroup/ZiCo ZeroShotProxy/compute_zico.py (commit d7076d5, February 2023, unchanged
    since; the paper's Eq. 15): per Conv2d and Linear layer (weights only, biases and
    BatchNorm not), with the mean of |g| and the standard deviation (population, ddof 0)
    of each weight's per-batch gradients g over the batches, log(sum over weights with
    nonzero deviation of mean|g| / deviation); summed over layers. A layer whose sum is 0
    (no weight with nonzero deviation, e.g. a layer no gradient reaches) adds nothing.

    Reference choices kept (config defaults): gradients zeroed before every batch
    (``network.zero_grad()`` in ``getzico``; ``zero_grad_between_batches: true``); 2
    batches (``--maxbatch 2``) of 128 augmented training images (``--batch_size 128`` in
    its search scripts; xautodl's training transform: pad-4 random crop and flip); train
    mode, BatchNorm on batch statistics; mean cross-entropy. Changed: a layer no gradient
    reaches reads zeros (the reference would fail on its missing gradient). Not applied:
    ZiCo's own search scores its networks with the residual links removed
    (``no_reslink=True``); a space's network is scored as the benchmark built it. With
    ``zero_grad_between_batches: false`` the recorded gradients are running sums, as in the
    first release of compute_zico.py (commit bbabe28).
    """
    total = 0.0
    for grads in recorded_gradients(ctx, params):
        deviation = grads.std(dim=0, unbiased=False)
        varying = deviation != 0
        ratio_sum = float((grads.abs().mean(dim=0)[varying] / deviation[varying]).sum())
        if ratio_sum != 0:
            total += math.log(ratio_sum)
    return total


@register(
    "xi_gsnr", uses_labels=True,
    # run.txt, NAS-Bench-201: --batch_size 64 --batch_numbers 8 --random_xi 1e-08 --augtype none
    defaults={"batch_size": 64, "augment": False, "num_batches": 8, "mode": "train", "xi": 1e-8,
              "zero_grad_between_batches": False},
)
def xi_gsnr(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """xi-GSNR (Sun et al., ICCV 2023, "Zero-Shot Neural Architecture Search via Gradient
    Signal-to-Noise Ratio"), ``caculate_gradsq_gradvar`` in Sunzh1996/Xi-GSNR
    Xi_GSNR_Consistency/run_gsnr.py: per weight, the squared mean of its recorded gradients
    over ``num_batches`` batches over their variance (population, ddof 0) plus ``xi``,
    summed over weights and over Conv2d/Linear layers; a layer whose variances are all zero
    is skipped, as the reference does.

    Reference choices kept (run.txt, NAS-Bench-201): 8 batches (``--batch_numbers 8``) of 64
    training images without augmentation (``--augtype none``), xi = 1e-8
    (``--random_xi``), train mode, BatchNorm kept, gradients not zeroed between batches.
    The reference draws each batch from a fresh shuffled loader, so its batches may share
    images; here they are disjoint (benchdata/batches.py). Its NAS-Bench-101 variant
    (per-sample gradients of one batch of 8) is not implemented.
    """
    xi = float(params["xi"])
    total = 0.0
    for grads in recorded_gradients(ctx, params):
        variance = grads.var(dim=0, unbiased=False)
        if not bool(variance.any()):
            continue
        total += float((grads.mean(dim=0).pow(2) / (variance + xi)).sum())
    return total
