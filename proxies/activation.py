"""Activation proxies: what the units of an untrained network do on a batch.

naswot and linear_regions read ReLU activation patterns (one shared hooked forward when
their batch settings match); meco reads the correlation of every module's feature maps.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from proxies.context import ScoringContext, batch_spec, join_patterns, pack_codes, set_mode
from proxies.registry import register
from benchdata.batches import BatchSpec


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
    # 3000 images in forward batches of 1000 (prune_tenas.py: sample_batch 3); crop: see below
    defaults={"batch_size": 3000, "augment": False, "crop": 4, "forward_batch": 1000, "mode": "train"},
)
def linear_regions(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Number of linear regions of TE-NAS (Chen et al., ICLR 2021, "Neural Architecture
    Search on ImageNet in Four GPU Hours"), VITA-Group/TENAS
    lib/procedures/linear_region_counter.py: the number of distinct activation patterns
    (which units of every ReLU with a 4-D input are active) over a set of input samples,
    i.e. how many of the piecewise-linear pieces of the network the samples fall into.

    Reference choices kept: train mode (BatchNorm on batch statistics, each forward batch
    normalised on its own), every nn.ReLU with a 4-D input counted whether or not it reaches
    the output, 3000 training images without augmentation seen as 3 forward batches of
    1000, each image reduced to one random crop (``crop``, RandomCrop without padding).
    Changed: the reference crops 3x3 pixels with one random channel because it counts on a
    1-channel one-cell network; a whole NB201 network needs 3 channels and a side divisible
    by 4 (its two residual reductions), so the default crop is 4x4 of all channels.

    With ``crop: null`` and the whole batch in one forward, the count reads the same hooked
    forward as naswot (``ScoringContext.relu_pass``) when batch size, augmentation and mode
    match, and costs no extra pass. The count is exact (rows compared bit for bit); the
    reference sums 1/multiplicity per sample in float, so it gives the same integer up to
    rounding (e.g. 2963.9998 for 2964 on an NB201 cell, checked against its code).
    """
    spec = batch_spec(params)
    crop = params.get("crop")
    forward_batch = params.get("forward_batch") or spec.size
    if crop is None and forward_batch >= spec.size:
        patterns = ctx.relu_pass(spec, params["mode"]).patterns
    else:
        key = ("relu_patterns", spec, params["mode"], crop, forward_batch)
        patterns = ctx.shared(key, lambda: _cropped_patterns(ctx, spec, params["mode"], crop, forward_batch))
    return float(count_distinct_rows(patterns))


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


def _cropped_patterns(
    ctx: ScoringContext, spec: BatchSpec, mode: str, crop: int | None, forward_batch: int
) -> np.ndarray:
    """Packed ReLU codes of the (cropped) batch, run in chunks of ``forward_batch``."""
    x, _ = ctx.batch(spec)
    if crop is not None:
        x = random_crops(x, int(crop))
    set_mode(ctx.model, mode)
    parts: list[np.ndarray] = []
    codes: list[np.ndarray] = []

    def hook(_module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
        if inputs[0].dim() == 4:
            codes.append(pack_codes(inputs[0].reshape(inputs[0].shape[0], -1) > 0))

    handles = [m.register_forward_hook(hook) for m in ctx.model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], forward_batch):
                codes.clear()
                chunk = x[start : start + forward_batch]
                ctx.model(chunk)
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
