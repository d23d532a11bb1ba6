"""Output-statistics proxies: how the network's outputs move under a controlled change of
its input (zen) or of its weights (epsinas), without labels and without gradients.

Both re-initialise the weights, so both work on ``ScoringContext.fresh_copy()``: the scored
network keeps its initial weights and BatchNorm statistics for the other proxies.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from proxies.context import ScoringContext, batch_spec, set_mode
from proxies.registry import register
from spaces.registry import is_finite_number


# --- zen --------------------------------------------------------------------------------
@register(
    "zen", uses_images=False,
    # the file's command line (its evolution scripts pass batch 64 and one repeat)
    defaults={"mixup_gamma": 1e-2, "batch_size": 16, "repeat": 32, "mode": "train"},
)
def zen(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Zen-score (Lin et al., ICCV 2021, "Zen-NAS: A Zero-Shot NAS for High-Performance
    Deep Image Recognition"), idstcv/ZenNAS ZeroShotProxy/compute_zen_score.py.

    Per repeat: Gaussian re-initialisation (conv and linear weights N(0, 1), biases 0,
    BatchNorm2d/GroupNorm weight 1 and bias 0); inputs x, e ~ N(0, 1) of the image shape;
    F = the feature map before the final global pooling; score = log(mean over the batch
    of sum |F(x) - F(x + gamma e)|) + sum over BatchNorm2d layers of log sqrt(mean
    running_var). The result is the mean over repeats.

    Reference choices kept: train mode (BatchNorm on batch statistics; the running
    variances it reads are those the two forwards leave, and they are not reset between
    repeats), float32 (the reference's ``fp16=False``), no gradients, the defaults of the
    file's command line: gamma 1e-2, batch 16, 32 repeats (its evolution search scripts
    use batch 64 and one repeat). F is the network's ``forward_pre_GAP`` if it has one
    (the reference's models do), else the input of the last adaptive average pooling that
    runs. Not applied: Zen-NAS's search scores its own ResNet-like blocks with residual
    links removed; a search space's network is scored as the benchmark built it.
    """
    net = ctx.fresh_copy()
    set_mode(net, params["mode"])
    gamma = float(params["mixup_gamma"])
    shape = (int(params["batch_size"]), *ctx.input_shape)
    scores = []
    with torch.no_grad():
        for _ in range(int(params["repeat"])):
            gaussian_init(net)
            x = torch.randn(shape).to(ctx.device)
            e = torch.randn(shape).to(ctx.device)
            delta = (feature_map(net, x) - feature_map(net, x + gamma * e)).abs()
            expressivity = delta.flatten(1).sum(dim=1).mean()
            log_bn = sum(
                (torch.log(torch.sqrt(m.running_var.mean())) for m in net.modules()
                 if isinstance(m, nn.BatchNorm2d) and m.running_var is not None),
                torch.tensor(0.0),
            )
            scores.append(float(torch.log(expressivity) + log_bn))
    return float(np.mean(scores))


def gaussian_init(net: nn.Module) -> None:
    """Zen-NAS's re-initialisation, drawing from the torch RNG in module order."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def feature_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The feature map before global pooling: ``forward_pre_GAP`` where the network has
    one, else the input of the last nn.AdaptiveAvgPool2d called during ``net(x)``."""
    if hasattr(net, "forward_pre_GAP"):
        return net.forward_pre_GAP(x)
    seen: list[torch.Tensor] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
        for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)
    ]
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise ValueError(
            "zen needs the feature map before global pooling: the network has neither a "
            "forward_pre_GAP method nor an nn.AdaptiveAvgPool2d module"
        )
    return seen[-1]


# --- epsinas ----------------------------------------------------------------------------
@register(
    "epsinas",
    # weights: the two constants, empty for the space's own pair (its proxy_constants,
    # from each space's notebook: NAS-Bench-201/Reproduce.ipynb, NAS-Bench-101/Reproduce.ipynb)
    defaults={"batch_size": 256, "augment": False, "mode": "train", "weights": []},
    from_space=("weights",),
    check=lambda params: _check_weight_pair(params["weights"]),
)
def epsinas(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """epsinas (Gracheva, 2023, arXiv:2302.04406, "Trainless model performance estimation
    based on random weights initialisations"), egracheva/epsinas
    NAS-Bench-201/epsinas_utils.py ``compute_epsinas`` (NAS-Bench-101 likewise).

    Two forwards of the same batch, each with every weight tensor set to one constant
    (``weights``; by default the space's pair, ``space.<name>.proxy_constants.epsinas``:
    1e-7 and 1 for NB201, 1e-4 and 10 for NB101, as the reference's notebooks) and every
    bias to 0;
    each output, flattened, is min-max normalised to [0, 1]; zeros become missing; score =
    mean |p1 - p2| / mean(p1, p2), both means over the non-missing values. Uses neither the
    labels nor gradients.

    Reference choices kept: 256 training images without augmentation, float32, no
    gradients, the logits as output, BatchNorm on batch statistics (``mode: train``; the
    reference's BatchNorm layers do not track running statistics, so its NB101 call to
    ``eval()`` normalises with batch statistics too), BatchNorm weights set to the constant
    as well (the reference fills every module's ``weight`` unless ``affine`` is off). The
    reference builds the network with one output; with constant weights every logit of a
    wider head is the same number, so the score is unchanged by the head size.
    """
    pair = [float(w) for w in params["weights"]]
    x, _ = ctx.batch(batch_spec(params))
    net = ctx.fresh_copy()
    set_mode(net, params["mode"])
    outputs = []
    with torch.no_grad():
        for value in pair:
            constant_init(net, value)
            outputs.append(net(x).detach().to("cpu", torch.float64).numpy().ravel())
    return epsinas_statistic(outputs[0], outputs[1])


def _check_weight_pair(pair: Any) -> None:
    """ValueError unless ``pair`` is two finite numbers: checked with the other settings,
    before any work, instead of failing in every cell."""
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(map(is_finite_number, pair))):
        raise ValueError(f"proxy.epsinas.weights must be two finite numbers [low,high]; got {pair!r}")


def constant_init(net: nn.Module, value: float) -> None:
    """Every module's weight set to ``value`` (unless it is a norm layer without affine
    parameters) and every bias to 0, as the reference's ``initialize_weights``."""
    with torch.no_grad():
        for m in net.modules():
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
            weight = getattr(m, "weight", None)
            if isinstance(weight, torch.Tensor) and getattr(m, "affine", True):
                weight.fill_(value)


def epsinas_statistic(out_a: np.ndarray, out_b: np.ndarray) -> float:
    """Mean absolute difference of the min-max normalised outputs over their mean."""
    preds = np.stack([_min_max(out_a), _min_max(out_b)])
    preds[preds == 0.0] = np.nan
    with warnings.catch_warnings():  # all-nan slices: nanmean warns and gives nan, the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(np.abs(preds[0] - preds[1])) / np.nanmean(preds))


def _min_max(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (values - np.nanmin(values)) / (np.nanmax(values) - np.nanmin(values))
