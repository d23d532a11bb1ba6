"""Activation proxies: what the units of an untrained network do on a batch.

naswot and linear_regions read ReLU activation patterns (one shared hooked forward when
their batch settings match and linear_regions counts on the cell's benchmark network); meco
reads the correlation of every module's feature maps.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from proxies.context import ScoringContext, batch_spec, batch_specs, join_patterns, pack_codes, set_mode
from proxies.networks import INITS, check_network_settings, network_input, reinitialise, scored_network
from proxies.registry import register


@register("naswot", defaults={"batch_size": 128, "augment": False, "mode": "train"})  # augtype none
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


@register(
    "linear_regions",
    # prune_tenas.py, NAS-Bench-201: Linear_Region_Collector(input_size=(1000, 1, 3, 3),
    # sample_batch=3), C=1, N=1, depth 1, no stem, init kaiming_normal (fan-in for the
    # regions), --repeat 3
    defaults={"batch_size": 3000, "augment": False, "crop": 3, "forward_batch": 1000, "mode": "train",
              "network": "thin", "channels": 1, "cells_per_stage": 1, "depth": 1, "stem": False, "repeat": 3,
              "init": "kaiming_normal_fan_in"},
    choices={"network": ("thin", "full"), "init": INITS},
    check=lambda params: check_network_settings("linear_regions", params),
)
def linear_regions(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Number of linear regions of TE-NAS (Chen et al., ICLR 2021, "Neural Architecture
    Search on ImageNet in Four GPU Hours"), VITA-Group/TENAS
    lib/procedures/linear_region_counter.py on the network prune_tenas.py scores for
    NAS-Bench-201 (commit 9df78ff, June 2021): the number of distinct activation patterns
    (which units of every ReLU with a 4-D input are active) over a set of input samples,
    i.e. how many of the piecewise-linear pieces of the network the samples fall into.
    Per repeat: re-initialise the network, count on a batch of its own; the score is the
    mean over ``repeat`` repeats (TE-NAS averages its per-repeat changes of the count).

    Reference choices kept (config defaults): the thin network TE-NAS builds for the
    regions (``network: thin``): one cell with C = 1 channel and no stem, then the
    benchmark's head (prune_tenas.py ``model_config_thin``: C=1, N=1, depth 1,
    use_stem False); each sample one random 3x3 crop (RandomCrop without padding) of one
    random channel (``RandChannel``) of a training image without augmentation; 3000
    samples seen as 3 forward batches of 1000 (``input_size=(1000, 1, 3, 3)``,
    ``sample_batch=3``); train mode (BatchNorm on batch statistics, each forward batch
    normalised on its own); every nn.ReLU with a 4-D input counted, whether or not it
    reaches the output; Kaiming-normal re-initialisation before every repeat, fan-in as
    prune_tenas.py asks for the regions (``init: kaiming_normal_fan_in``); 3 repeats, each
    on new samples (``--repeat 3``; the collector's loader goes on to the next images).

    Changed: the count is exact (rows compared bit for bit); the reference finds equal
    patterns with a half-precision product and sums 1/multiplicity per sample in float32,
    so it gives the same integer up to rounding (e.g. 2963.9998 for 2964 on an NB201 cell,
    checked against its code). The network holds the cell's operations only, where
    TE-NAS's supernet masks all candidates but one. Seen in the reference: the Kaiming re-initialisation it asks for
    never runs (ntk_cond's docstring says why); ``init: none`` reproduces that.
    ``network: full`` counts on the cell's benchmark network instead; its two residual
    reductions need a side divisible by 4 (``crop: 4``, or ``crop: null`` for whole
    images). With ``network: full``, ``init: none``, ``crop: null`` and the whole batch in
    one forward, the count reads the same hooked forward as naswot
    (``ScoringContext.relu_pass``) when batch size, augmentation and mode match.
    """
    crop = params.get("crop")
    net = scored_network(ctx, params)
    counts = []
    for spec in batch_specs(params):
        forward_batch = params.get("forward_batch") or spec.size
        if net is None and crop is None and forward_batch >= spec.size:
            patterns = ctx.relu_pass(spec, params["mode"]).patterns
        elif net is None:
            key = ("relu_patterns", spec, params["mode"], crop, forward_batch)
            patterns = ctx.shared(key, lambda: relu_patterns(
                ctx.model, _cropped(ctx.batch(spec)[0], crop), params["mode"], forward_batch))
        else:
            reinitialise(net, params["init"])
            x = network_input(_cropped(ctx.batch(spec)[0], crop), params)
            patterns = relu_patterns(net, x, params["mode"], forward_batch)
        counts.append(count_distinct_rows(patterns))
    return float(np.mean(counts))


def _cropped(x: torch.Tensor, crop: int | None) -> torch.Tensor:
    return x if crop is None else random_crops(x, int(crop))


def count_distinct_rows(rows: np.ndarray) -> int:
    """How many different rows a 2-D array has (1 for N x 0: one empty pattern)."""
    if rows.shape[0] == 0:
        return 0
    if rows.shape[1] == 0:
        return 1
    return int(len(np.unique(np.ascontiguousarray(rows), axis=0)))


def random_crops(x: torch.Tensor, side: int) -> torch.Tensor:
    """One side x side crop of each image at a position drawn from the torch RNG."""
    n, c, h, w = x.shape
    if side > h or side > w:
        raise ValueError(f"crop of {side} pixels asked for, but the images are {h}x{w}")
    tops = torch.randint(0, h - side + 1, (n,))
    lefts = torch.randint(0, w - side + 1, (n,))
    steps = torch.arange(side)
    rows = (tops[:, None] + steps).to(x.device)
    cols = (lefts[:, None] + steps).to(x.device)
    index_n = torch.arange(n, device=x.device)[:, None, None, None]
    index_c = torch.arange(c, device=x.device)[None, :, None, None]
    return x[index_n, index_c, rows[:, None, :, None], cols[:, None, None, :]]


def relu_patterns(model: nn.Module, x: torch.Tensor, mode: str, forward_batch: int) -> np.ndarray:
    """Packed ReLU codes of the batch ``x`` on ``model``, run in chunks of ``forward_batch``."""
    set_mode(model, mode)
    parts: list[np.ndarray] = []
    codes: list[np.ndarray] = []

    def hook(_module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
        if inputs[0].dim() == 4:
            codes.append(pack_codes(inputs[0].reshape(inputs[0].shape[0], -1) > 0))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], forward_batch):
                codes.clear()
                chunk = x[start : start + forward_batch]
                model(chunk)
                parts.append(join_patterns(codes, chunk.shape[0]))
    finally:
        for h in handles:
            h.remove()
    return np.concatenate(parts, axis=0)


@register(
    "meco",
    # one augmented training image (NAS_Bench_201.py: input data, batch size 1), every channel
    defaults={"input": "data", "batch_size": 1, "augment": True, "gaussian_side": 64, "channel_sample": None,
              "mode": "train"},
    choices={"input": ("data", "gaussian")},
)
def meco(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """MeCo (Jiang et al., NeurIPS 2023, "MeCo: Zero-Shot NAS with One Data and Single
    Forward Pass via Minimum Eigenvalue of Correlation"), HamsterMimi/MeCo
    correlation/NAS_Bench_201.py ``get_score`` and foresight/pruners/measures/meco.py: for
    the output of every module that runs (containers and the network itself included, as
    the reference hooks ``named_modules()``), take the first sample's feature map, one row
    per channel, its Pearson correlation matrix over positions (nan and inf entries set to
    0), and its smallest eigenvalue; the score is the sum over modules (nan and inf
    eigenvalues left out).

    Reference choices kept: train mode, float32 forward, one augmented training image
    (``input: data``, NAS_Bench_201.py's batch size 1). Configurable: ``input: gaussian``
    with ``gaussian_side`` 64, the N(0, 1) input of meco.py; ``channel_sample`` 8, the
    ``meco_opt`` variant (8 random channels per module, eigenvalue scaled by channels / 8),
    drawn from the torch RNG instead of Python's ``random``; layers with no more channels
    than the sample use all of them. Eigenvalues come from float64 ``eigvalsh`` (the
    matrix is symmetric) instead of float32 ``eig``.
    """
    x = _meco_input(ctx, params)
    sample = params.get("channel_sample")
    set_mode(ctx.model, params["mode"])
    values: list[float] = []

    def hook(_module: nn.Module, _inputs: tuple, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.dim() >= 2:
            values.append(min_correlation_eigenvalue(output[0], sample))

    handles = [m.register_forward_hook(hook) for m in ctx.model.modules()]
    try:
        with torch.no_grad():
            ctx.model(x)
    finally:
        for h in handles:
            h.remove()
    finite = [v for v in values if np.isfinite(v)]
    return float(np.sum(finite))


def _meco_input(ctx: ScoringContext, params: Mapping[str, Any]) -> torch.Tensor:
    """The real batch (``input: data``) or a Gaussian one drawn from the torch RNG."""
    if params.get("input", "data") == "data":
        x, _ = ctx.batch(batch_spec(params))
        return x
    if params["input"] != "gaussian":
        raise ValueError(f"meco input must be 'data' or 'gaussian', not {params['input']!r}")
    side = int(params["gaussian_side"])
    x = torch.randn((int(params["batch_size"]), ctx.input_shape[0], side, side))
    return x.to(ctx.device)


def min_correlation_eigenvalue(feature: torch.Tensor, sample: int | None = None) -> float:
    """Smallest eigenvalue of the channel-by-channel Pearson correlation of one sample's
    feature map (rows: the first dimension), optionally of ``sample`` random channels
    scaled by channels / sample (MeCo_opt)."""
    rows = feature.detach().reshape(feature.shape[0], -1).to("cpu", torch.float64)
    scale = 1.0
    if sample is not None and rows.shape[0] > sample:
        pick = torch.randperm(rows.shape[0])[: int(sample)]
        scale = rows.shape[0] / sample
        rows = rows[pick]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # constant rows: nan, set to 0 below
        corr = np.atleast_2d(np.corrcoef(rows.numpy()))
    corr[~np.isfinite(corr)] = 0.0
    return float(np.linalg.eigvalsh(corr).min()) * scale
