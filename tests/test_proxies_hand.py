"""The six first proxies against values derived by hand on tiny networks with fixed weights.

Expected values come from closed-form derivations written out with numpy (softmax, chain
rule, Pearson correlation, code counting), never from the proxy code or from autograd.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from proxies import ScoringContext, get_proxy
from benchdata.batches import BatchSpec

SPEC2 = BatchSpec(size=2, augment=False)
SPEC3 = BatchSpec(size=3, augment=False)


class TwoLayer(nn.Module):
    """x (N,1,1,P) -> conv1x1 (1->2, no bias) -> ReLU -> flatten -> Linear(2P -> 2, no bias)."""

    def __init__(self, w1: list[float], w2: np.ndarray, pixels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2 * pixels, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(w1, dtype=torch.float32).view(2, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor(w2, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


def context(model: nn.Module, batches: dict, input_shape=(1, 1, 1)) -> ScoringContext:
    return ScoringContext(model.train(), batches, input_shape, 2, torch.device("cpu"))


def run(name: str, ctx: ScoringContext, **params) -> float:
    return get_proxy(name).fn(ctx, params)


# --- a one-pixel network: x_n scalar, h_n = relu(w1 * x_n), z_n = W2 h_n ----------------
W1 = np.array([1.0, -1.0])
W2 = np.array([[1.0, 0.5], [-0.5, 2.0]])
X = np.array([1.0, 2.0])
Y = np.array([0, 1])


def hand_gradients() -> tuple[np.ndarray, np.ndarray]:
    """dL/dW1 (2,) and dL/dW2 (2,2) of the mean cross-entropy, by the chain rule."""
    g1, g2 = np.zeros(2), np.zeros((2, 2))
    for x, y in zip(X, Y):
        pre = W1 * x
        h = np.maximum(pre, 0.0)
        z = W2 @ h
        p = np.exp(z) / np.exp(z).sum()
        dz = (p - np.eye(2)[y]) / len(X)
        g2 += np.outer(dz, h)
        g1 += (W2.T @ dz) * (pre > 0) * x
    return g1, g2


def one_pixel_ctx() -> ScoringContext:
    x = torch.tensor(X, dtype=torch.float32).view(2, 1, 1, 1)
    y = torch.tensor(Y)
    return context(TwoLayer(list(W1), W2, 1), {SPEC2: (x, y)})


def test_grad_norm_is_sum_of_layer_gradient_norms() -> None:
    g1, g2 = hand_gradients()
    expected = np.linalg.norm(g1) + np.linalg.norm(g2)
    got = run("grad_norm", one_pixel_ctx(), batch_size=2, augment=False, mode="train")
    assert got == pytest.approx(expected, rel=1e-6)


def test_snip_is_sum_of_abs_weight_times_gradient() -> None:
    g1, g2 = hand_gradients()
    expected = np.abs(W1 * g1).sum() + np.abs(W2 * g2).sum()
    got = run("snip", one_pixel_ctx(), batch_size=2, augment=False, mode="train")
    assert got == pytest.approx(expected, rel=1e-6)


def test_grad_norm_and_snip_share_one_loss_pass() -> None:
    ctx = one_pixel_ctx()
    run("grad_norm", ctx, batch_size=2, augment=False, mode="train")
    run("snip", ctx, batch_size=2, augment=False, mode="train")
    assert set(ctx.pass_seconds) == {("forward", SPEC2, "train"), ("loss_gradients", SPEC2, "train")}


class WithBatchNorm(TwoLayer):
    """Same as TwoLayer with a BatchNorm between conv and ReLU (synflow removes it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))


def test_synflow_on_absolute_weights_with_ones_input() -> None:
    # R = sum_i sum_j |W2_ij| |W1_j| (ones input, all weights made positive, no BN).
    # dR/dW2_ij = |W1_j| and dR/dW1_j = sum_i |W2_ij|, so synflow = R + R = 2R.
    r = sum(abs(W2[i, j]) * abs(W1[j]) for i in range(2) for j in range(2))
    ctx = context(WithBatchNorm(list(W1), W2, 1), {})
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    got = run("synflow", ctx, bn=False, mode="train")
    assert got == pytest.approx(2 * r, rel=1e-12)
    for k, v in ctx.model.state_dict().items():  # the scored network is untouched
        assert torch.equal(v, before[k])
        assert v.dtype == before[k].dtype


def test_synflow_ignores_the_images() -> None:
    x = torch.randn(2, 1, 1, 1)
    a = run("synflow", context(TwoLayer(list(W1), W2, 1), {SPEC2: (x, torch.tensor([0, 1]))}), bn=False, mode="train")
    b = run("synflow", context(TwoLayer(list(W1), W2, 1), {SPEC2: (-x, torch.tensor([1, 1]))}), bn=False, mode="train")
    assert a == b


# --- jacob_cov on a three-pixel network -----------------------------------------------
W2_3 = np.array([[1.0, -2.0, 0.5, 1.5, 0.0, -1.0], [0.5, 1.0, -1.0, 2.0, 1.0, 0.5]])
X3 = np.array([[1.0, -2.0, 3.0], [-1.0, 2.0, 0.5]])


def hand_jacobian(x: np.ndarray) -> np.ndarray:
    """d(sum of logits)/dx_p = sum_i sum_j W2[i, j*P + p] * [W1_j x_p > 0] * W1_j."""
    pixels = len(x)
    col = W2_3.sum(axis=0)  # sum over the two logits
    return np.array([
        sum(col[j * pixels + p] * (W1[j] * x[p] > 0) * W1[j] for j in range(2)) for p in range(pixels)
    ])


def test_jacob_cov_from_hand_correlation() -> None:
    j1, j2 = hand_jacobian(X3[0]), hand_jacobian(X3[1])
    d1, d2 = j1 - j1.mean(), j2 - j2.mean()
    r = (d1 @ d2) / math.sqrt((d1 @ d1) * (d2 @ d2))
    k = 1e-5
    expected = -sum(math.log(v + k) + 1 / (v + k) for v in (1 + r, 1 - r))
    x = torch.tensor(X3, dtype=torch.float32).view(2, 1, 1, 3)
    ctx = context(TwoLayer(list(W1), W2_3, 3), {SPEC2: (x, torch.tensor([0, 1]))}, (1, 1, 3))
    got = run("jacob_cov", ctx, batch_size=2, augment=False, mode="train", k=k)
    assert got == pytest.approx(expected, rel=1e-6)


# --- naswot: codes of every ReLU on a path to the output ------------------------------
class Branchy(nn.Module):
    """conv1x1(1->2) -> relu_a -> fc; plus relu_zero reaching the output only through x*0,
    and relu_dead whose output is never used (the reference's backward never visits it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.relu_a = nn.ReLU()
        self.relu_zero = nn.ReLU()
        self.relu_dead = nn.ReLU()
        self.fc = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.fc.weight.fill_(0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        self.relu_dead(x - 10.0)
        out = self.relu_a(h) + self.relu_zero(x + 0.5).mul(0.0)
        return self.fc(out.flatten(1))


def test_naswot_counts_agreeing_codes_of_reachable_relus() -> None:
    x = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, -0.25]])  # 3 inputs, 2 pixels each
    codes = []
    for xi in x:
        a = np.concatenate([(w * xi > 0) for w in (1.0, -1.0)])  # relu_a: channel-major
        z = (xi + 0.5 > 0)  # relu_zero
        codes.append((a.astype(int), z.astype(int)))
    kernel = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            for part in range(2):  # relu_dead is excluded
                ci, cj = codes[i][part], codes[j][part]
                kernel[i, j] += len(ci) - np.sum(ci != cj)  # units minus Hamming distance
    expected = np.log(abs(np.linalg.det(kernel)))
    t = torch.tensor(x, dtype=torch.float32).view(3, 1, 1, 2)
    ctx = context(Branchy(), {SPEC3: (t, torch.zeros(3, dtype=torch.long))}, (1, 1, 2))
    got = run("naswot", ctx, batch_size=3, augment=False, mode="train")
    assert got == pytest.approx(expected, rel=1e-9)


def test_params_counts_trainable_parameters() -> None:
    model = TwoLayer(list(W1), W2, 1)
    model.fc.weight.requires_grad_(False)
    assert run("params", context(model, {})) == 2.0  # the conv's two weights only
