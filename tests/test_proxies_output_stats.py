"""zen and epsinas against values derived by hand (numpy, explicit BatchNorm arithmetic) on
tiny networks; epsinas's invariants (no labels, no gradients, weights left as they were).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from proxies import PROXIES, ScoringContext, get_proxy
from benchdata.batches import BatchSpec

EPS = 1e-5  # BatchNorm's epsilon


def context(model: nn.Module, batches: dict, input_shape) -> ScoringContext:
    return ScoringContext(model.train(), batches, input_shape, 2, torch.device("cpu"))


def state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def batchnorm_train(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BatchNorm on batch statistics over (N, H, W) per channel, weight 1, bias 0:
    normalised values, biased variance (used to normalise), unbiased variance (what the
    running estimate moves towards)."""
    n = c.shape[0] * c.shape[2] * c.shape[3]
    mean = c.mean(axis=(0, 2, 3), keepdims=True)
    var = ((c - mean) ** 2).sum(axis=(0, 2, 3)) / n
    return (c - mean) / np.sqrt(var[None, :, None, None] + EPS), var, var * n / (n - 1)


# --- zen ----------------------------------------------------------------------------------
class ZenToy(nn.Module):
    """conv1x1 (1 -> 2) -> BatchNorm -> ReLU -> global average pooling -> fc (2 -> 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))


def hand_zen(seed: int, batch: int, repeat: int, gamma: float) -> float:
    """The Zen-score by hand. Draws follow the reference's order: per repeat the Gaussian
    weights in module order (conv, then fc), then the input, then the perturbation."""
    torch.manual_seed(seed)
    running_var = np.ones(2)
    scores = []
    for _ in range(repeat):
        w = torch.empty(2, 1, 1, 1).normal_().numpy().astype(np.float64).reshape(2)
        torch.empty(2, 2).normal_()  # the fc weight: drawn, but after the pooling
        x = torch.randn(batch, 1, 2, 2).numpy().astype(np.float64)
        e = torch.randn(batch, 1, 2, 2).numpy().astype(np.float64)
        features = []
        for inputs in (x, x + gamma * e):
            conv = inputs * w[None, :, None, None]  # (N, 2, 2, 2)
            normalised, _biased, unbiased = batchnorm_train(conv)
            running_var = 0.9 * running_var + 0.1 * unbiased  # momentum 0.1, two forwards
            features.append(np.maximum(normalised, 0.0))
        per_image = np.abs(features[0] - features[1]).sum(axis=(1, 2, 3))
        scores.append(math.log(per_image.mean()) + math.log(math.sqrt(running_var.mean())))
    return float(np.mean(scores))


def test_zen_by_hand_with_running_variance_kept_over_repeats() -> None:
    expected = hand_zen(seed=4, batch=5, repeat=3, gamma=0.01)
    model = ZenToy()
    before = state(model)
    ctx = context(model, {}, (1, 2, 2))  # no images: Gaussian inputs only
    torch.manual_seed(4)
    got = get_proxy("zen").fn(ctx, dict(mixup_gamma=0.01, batch_size=5, repeat=3, mode="train"))
    assert got == pytest.approx(expected, rel=1e-5)
    assert same_state(before, state(model))  # the scored network kept its weights


def test_zen_prefers_forward_pre_gap() -> None:
    class WithPreGap(ZenToy):
        def forward_pre_GAP(self, x: torch.Tensor) -> torch.Tensor:  # the reference's hook
            return self.relu(self.bn(self.conv(x)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("zen must use forward_pre_GAP when the network has it")

    ctx = context(WithPreGap(), {}, (1, 2, 2))
    torch.manual_seed(4)
    got = get_proxy("zen").fn(ctx, dict(mixup_gamma=0.01, batch_size=5, repeat=3, mode="train"))
    assert got == pytest.approx(hand_zen(seed=4, batch=5, repeat=3, gamma=0.01), rel=1e-5)


# --- epsinas ------------------------------------------------------------------------------
class EpsToy(nn.Module):
    """x (N,1,1,3) -> conv1x1 (1 -> 2, bias) -> BatchNorm -> ReLU, plus x itself (a skip,
    so the two weights change the outputs' shape, not only their scale) -> flatten -> fc
    (6 -> k)."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1)
        self.bn = nn.BatchNorm2d(2)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((self.relu(self.bn(self.conv(x))) + x).flatten(1))


X = np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.7], [-2.0, 1.0, 0.3], [0.0, 0.4, 1.1], [3.0, -0.5, -1.5]])
SPEC = BatchSpec(size=5, augment=False)
PARAMS = dict(batch_size=5, augment=False, mode="train", weights=[0.5, 2.0])


def hand_outputs(w: float) -> np.ndarray:
    """EpsToy with every weight w, every bias 0: conv = w x on both channels; BatchNorm
    (weight w) on batch statistics; plus x; every logit = w * (sum of the 6 features)."""
    conv = np.stack([w * X, w * X], axis=1)[:, :, None, :]  # (N, 2, 1, 3)
    normalised, _, _ = batchnorm_train(conv)
    features = (np.maximum(w * normalised, 0.0) + X[:, None, None, :]).reshape(len(X), -1)
    return np.array([w * row.sum() for row in features])


def hand_epsinas(out_a: np.ndarray, out_b: np.ndarray, outputs: int) -> float:
    normalised = []
    for out in (out_a, out_b):
        flat = np.repeat(out, outputs)  # N x k logits, flattened; all k equal per image
        lo, hi = flat.min(), flat.max()
        normalised.append([(v - lo) / (hi - lo) for v in flat])
    diffs, values = [], []
    for a, b in zip(*normalised):
        a = None if a == 0 else a
        b = None if b == 0 else b
        if a is not None and b is not None:
            diffs.append(abs(a - b))
        values += [v for v in (a, b) if v is not None]
    return (sum(diffs) / len(diffs)) / (sum(values) / len(values))


def epsinas_ctx(outputs: int = 3, labels: torch.Tensor | None = None) -> ScoringContext:
    x = torch.tensor(X, dtype=torch.float32).view(5, 1, 1, 3)
    y = labels if labels is not None else torch.tensor([0, 1, 1, 0, 1])
    return context(EpsToy(outputs), {SPEC: (x, y)}, (1, 1, 3))


def test_epsinas_by_hand() -> None:
    expected = hand_epsinas(hand_outputs(0.5), hand_outputs(2.0), 3)
    got = get_proxy("epsinas").fn(epsinas_ctx(), PARAMS)
    assert got == pytest.approx(expected, rel=1e-5)


def test_epsinas_head_size_does_not_matter() -> None:
    # the reference builds a one-output network; constant weights make all logits equal
    one = get_proxy("epsinas").fn(epsinas_ctx(outputs=1), PARAMS)
    three = get_proxy("epsinas").fn(epsinas_ctx(outputs=3), PARAMS)
    assert one == pytest.approx(three, rel=1e-6)
    assert one == pytest.approx(hand_epsinas(hand_outputs(0.5), hand_outputs(2.0), 1), rel=1e-5)


def test_epsinas_uses_no_labels_no_gradients_and_keeps_weights() -> None:
    ctx = epsinas_ctx()
    before = state(ctx.model)
    reference = get_proxy("epsinas").fn(ctx, PARAMS)
    garbage = epsinas_ctx(labels=torch.tensor([-7, 10**9, 3, -1, 42]))
    with torch.no_grad():
        no_autograd = get_proxy("epsinas").fn(garbage, PARAMS)
    assert no_autograd == reference
    assert same_state(before, state(ctx.model))
    assert all(p.grad is None for p in ctx.model.parameters())
    assert PROXIES["epsinas"].uses_labels is False and PROXIES["epsinas"].uses_images is True


def test_epsinas_weight_pair_comes_from_the_space() -> None:
    """Left empty, the pair is the space's (its proxy_constants, the reference notebook's
    pair); a pair given in the proxy's settings wins; a space without one is one line."""
    epsinas = get_proxy("epsinas")
    assert epsinas.settings({}, "nb201", {"epsinas": {"weights": [1e-7, 1]}})["weights"] == [1e-7, 1]
    assert epsinas.settings({"weights": [1.0, 3.0]}, "nb201", {"epsinas": {"weights": [1e-7, 1]}})["weights"] == [1.0, 3.0]
    with pytest.raises(ValueError, match=r"proxy.epsinas.weights is not set and search space nb999 has no value"):
        epsinas.settings({}, "nb999", {})
    with pytest.raises(ValueError, match=r"two finite numbers"):
        epsinas.settings({}, "nb201", {"epsinas": {"weights": [1.0]}})
    other = dict(PARAMS, weights=[1.0, 3.0])
    expected = hand_epsinas(hand_outputs(1.0), hand_outputs(3.0), 3)
    assert epsinas.fn(epsinas_ctx(), other) == pytest.approx(expected, rel=1e-5)


def test_registered_directions_and_needs() -> None:
    for name in ("zen", "meco", "epsinas", "linear_regions", "flops"):
        assert PROXIES[name].higher_is_better is True
        assert PROXIES[name].uses_labels is False
    assert PROXIES["zen"].uses_images is False and PROXIES["flops"].uses_images is False
    assert PROXIES["meco"].uses_images is True and PROXIES["linear_regions"].uses_images is True
