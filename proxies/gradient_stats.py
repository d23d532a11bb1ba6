"""Proxies from per-weight statistics of loss gradients over several batches.

Both references run the mean cross-entropy forward/backward once per batch on the network
in train mode, read the gradient of every Conv2d and Linear weight after each backward, and
never zero the gradients in between: the k-th recorded gradient is the sum of the first k
batch gradients. ``zero_grad_between_batches: true`` records each batch's own gradient
instead (the papers' formulas). Each batch's gradient comes from the context's shared
loss-gradient pass, so batch 0 is the very pass grad_norm, snip, plain and fisher read when
their batch settings match. Gradients are float32 as in the references; the statistics are
taken in float64 (the references use numpy on float32 arrays: rounding-level differences).
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
    # --maxbatch 2; no NB201 batch size in the reference (128 in its ImageNet scripts): 64 as
    # the other NB201 proxies
    defaults={"batch_size": 64, "augment": True, "num_batches": 2, "mode": "train",
              "zero_grad_between_batches": False},
)
def zico(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """ZiCo (Li, Yang, Bhardwaj and Marculescu, ICLR 2023), ``getzico``/``caculate_zico`` in
    SLDGroup/ZiCo ZeroShotProxy/compute_zico.py: per layer, with mean |g| and standard
    deviation (population, ddof 0) of each weight's recorded gradients over the batches,
    log(sum over weights with nonzero deviation of mean|g| / deviation); summed over layers,
    a layer whose sum is 0 (e.g. no weight with nonzero deviation) adds nothing.

    Reference choices kept: train mode, BatchNorm kept, 2 batches (``--maxbatch 2``) of
    augmented training images (xautodl's training transform), gradients not zeroed between
    batches. The reference takes the batch size from the command line (128 in its ImageNet
    scripts) and ships no NAS-Bench-201 script; the default here is 64, the batch of the
    other NB201 gradient proxies.
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
