"""linear_regions and meco against values derived by hand on tiny networks with fixed
weights: activation patterns enumerated explicitly, Pearson matrices written out in numpy.
Never compared with the proxy code's own output.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from proxies import ScoringContext, get_proxy
from benchdata.batches import BatchSpec


def context(model: nn.Module, batches: dict, input_shape=(1, 1, 4)) -> ScoringContext:
    return ScoringContext(model.train(), batches, input_shape, 2, torch.device("cpu"))


def run(name: str, ctx: ScoringContext, **params) -> float:
    return get_proxy(name).fn(ctx, params)


def images(values: list[list[float]]) -> torch.Tensor:
    """N images of 1 channel, 1 row, P pixels."""
    return torch.tensor(values, dtype=torch.float32).view(len(values), 1, 1, -1)


class SignNet(nn.Module):
    """conv1x1 (1 -> 2 channels, weights +1 and -1, no bias) -> ReLU -> flatten -> fc.
    Unit (c, p) is active iff c = 0 and x_p > 0, or c = 1 and x_p < 0."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2 * pixels, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.fc.weight.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


# --- linear_regions -----------------------------------------------------------------------
X4 = [[1.0, -2.0, 3.0, 0.5], [2.0, -1.0, 0.1, 9.0], [-1.0, 1.0, 1.0, 1.0],
      [0.0, -3.0, 2.0, 2.0], [-5.0, 4.0, 6.0, 0.2], [0.0, -0.5, 0.5, 0.5]]
SPEC6 = BatchSpec(size=6, augment=False)
WHOLE = dict(batch_size=6, augment=False, crop=None, forward_batch=None, mode="train")


def hand_pattern(x: list[float]) -> tuple[int, ...]:
    """Channel-major codes of SignNet's ReLU: x_p > 0 for channel 0, x_p < 0 for channel 1."""
    return tuple(int(v > 0) for v in x) + tuple(int(v < 0) for v in x)


def test_linear_regions_counts_distinct_patterns() -> None:
    # Patterns by hand: rows 0, 1, 3 and 5 are (+,-,+,+) / (+,-,+,+) / (0,-,+,+) / (0,-,+,+)
    # -> 2 patterns; rows 2 and 4 are (-,+,+,+) -> 1 pattern: 3 distinct regions.
    expected = len({hand_pattern(x) for x in X4})
    assert expected == 3
    ctx = context(SignNet(4), {SPEC6: (images(X4), torch.zeros(6, dtype=torch.long))})
    assert run("linear_regions", ctx, **WHOLE) == expected


def test_linear_regions_shares_naswots_pass_and_keeps_naswot() -> None:
    x3 = [X4[0], X4[2], X4[3]]  # three different patterns
    spec = BatchSpec(size=3, augment=False)
    ctx = context(SignNet(4), {spec: (images(x3), torch.zeros(3, dtype=torch.long))})
    regions = run("linear_regions", ctx, **{**WHOLE, "batch_size": 3})
    logdet = run("naswot", ctx, batch_size=3, augment=False, mode="train")
    assert list(ctx.pass_seconds) == [("relu_pass", spec, "train")]  # one forward for both
    # naswot's kernel by hand: units minus Hamming distance of the hand patterns
    codes = [np.array(hand_pattern(x)) for x in x3]
    kernel = np.array([[len(a) - np.sum(a != b) for b in codes] for a in codes], dtype=float)
    assert regions == 3
    assert logdet == pytest.approx(math.log(abs(np.linalg.det(kernel))), rel=1e-9)


class BatchNormSign(nn.Module):
    """x (N,1,1,1) -> conv1x1 (1 -> 2, weights +1, -1) -> BatchNorm (train: batch mean m)
    -> ReLU -> flatten -> fc. Codes: (x > m, x < m), m the mean of the forward batch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))


def test_linear_regions_normalises_each_forward_batch_on_its_own() -> None:
    x = images([[1.0], [2.0], [3.0], [10.0], [20.0], [30.0]])
    batches = {SPEC6: (x, torch.zeros(6, dtype=torch.long))}
    # One forward: m = 11, codes (0,1) for 1, 2, 3, 10 and (1,0) for 20, 30 -> 2 regions.
    # Forwards of 3: m = 2 then m = 20; each gives (0,1), (0,0), (1,0) -> 3 regions.
    whole = run("linear_regions", context(BatchNormSign(), batches, (1, 1, 1)), **WHOLE)
    chunked = run("linear_regions", context(BatchNormSign(), batches, (1, 1, 1)), **{**WHOLE, "forward_batch": 3})
    assert (whole, chunked) == (2, 3)


def test_linear_regions_on_crops() -> None:
    # Every image is constant, so any 2x2 crop of it holds its one value: the patterns
    # are those of the values, wherever the crops fall (2 regions: positive, negative).
    values = [2.0, -1.0, 3.0, -4.0, 0.5, -0.5]
    x = torch.tensor(values).view(6, 1, 1, 1).expand(6, 1, 4, 4).contiguous()
    ctx = context(SignNet(4), {SPEC6: (x, torch.zeros(6, dtype=torch.long))}, (1, 4, 4))
    got = run("linear_regions", ctx, **{**WHOLE, "crop": 2, "forward_batch": 4})
    assert got == 2
    assert ("relu_pass", SPEC6, "train") not in ctx.pass_seconds  # crops: a pass of their own


def test_linear_regions_is_seeded_by_the_torch_rng() -> None:
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(6, 1, 4, 4)), dtype=torch.float32)

    def score(seed: int) -> float:
        torch.manual_seed(seed)
        ctx = context(SignNet(4), {SPEC6: (x, torch.zeros(6, dtype=torch.long))}, (1, 4, 4))
        return run("linear_regions", ctx, **{**WHOLE, "crop": 2})

    assert score(3) == score(3)


# --- meco ---------------------------------------------------------------------------------
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation written out: covariance over the product of the deviations."""
    da, db = a - a.mean(), b - b.mean()
    return float(np.sum(da * db) / math.sqrt(np.sum(da * da) * np.sum(db * db)))


def test_meco_sums_smallest_eigenvalues_over_modules() -> None:
    x = [1.0, -2.0, 3.0, 0.5]  # the first (and only) image
    conv_out = np.array([x, [-v for v in x]])  # channels x positions
    relu_out = np.maximum(conv_out, 0.0)
    # A 2x2 correlation matrix [[1, r], [r, 1]] has eigenvalues 1 - r and 1 + r.
    # conv: r = -1 -> 0. relu: r by hand. fc and the network itself: (2,) outputs seen as
    # 2 rows of 1 value, correlations undefined -> zero matrix -> 0.
    r_relu = pearson(relu_out[0], relu_out[1])
    expected = (1 - abs(pearson(conv_out[0], conv_out[1]))) + (1 - abs(r_relu)) + 0.0 + 0.0
    ctx = context(SignNet(4), {BatchSpec(1, True): (images([x]), torch.zeros(1, dtype=torch.long))})
    got = run("meco", ctx, input="data", batch_size=1, augment=True, channel_sample=None, mode="train")
    assert got == pytest.approx(expected, abs=1e-6)


class ThreeChannels(nn.Module):
    """conv1x1 (1 -> 3 channels with biases) -> global average pooling -> fc."""

    W = (1.0, -2.0, 0.5)
    B = (0.0, 1.0, -3.0)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, kernel_size=1)
        self.square = Square()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(self.W).view(3, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor(self.B))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.square(self.conv(x))).flatten(1))


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def explicit_min_eig(rows: np.ndarray) -> float:
    k = len(rows)
    corr = np.array([[pearson(rows[i], rows[j]) for j in range(k)] for i in range(k)])
    return float(np.linalg.eigvalsh(corr).min())


def test_meco_three_channels_and_channel_sampling() -> None:
    x = np.array([0.3, -1.2, 2.0, 0.7, -0.4, 1.5])  # 1 x 6 pixels
    conv = np.array([w * x + b for w, b in zip(ThreeChannels.W, ThreeChannels.B)])
    sq = conv * conv
    # pooled (3 rows of 1 value), fc, network: undefined correlations -> 0 each
    full = explicit_min_eig(conv) + explicit_min_eig(sq)
    batch = {BatchSpec(1, True): (torch.tensor(x, dtype=torch.float32).view(1, 1, 1, 6), torch.zeros(1, dtype=torch.long))}
    params = dict(input="data", batch_size=1, augment=True, mode="train")
    got = run("meco", context(ThreeChannels(), batch, (1, 1, 6)), **params, channel_sample=None)
    assert got == pytest.approx(full, abs=1e-6)
    # a sample as large as the channels changes nothing
    got = run("meco", context(ThreeChannels(), batch, (1, 1, 6)), **params, channel_sample=3)
    assert got == pytest.approx(full, abs=1e-6)
    # MeCo_opt with 2 of 3 channels: some pair of channels per module, eigenvalue x 3/2
    # (the pooled output has 3 rows of one value too: its term is 0 whichever pair)
    torch.manual_seed(0)
    got = run("meco", context(ThreeChannels(), batch, (1, 1, 6)), **params, channel_sample=2)
    options = [
        1.5 * (explicit_min_eig(conv[list(a)]) + explicit_min_eig(sq[list(b)]))
        for a in itertools.combinations(range(3), 2) for b in itertools.combinations(range(3), 2)
    ]
    assert min(abs(got - o) for o in options) < 1e-6


def test_meco_gaussian_input_reads_no_images() -> None:
    model = ThreeChannels()

    def score() -> float:
        torch.manual_seed(1)
        ctx = context(model, {}, (1, 5, 5))  # no batch at all: the input is N(0, 1)
        return run("meco", ctx, input="gaussian", gaussian_side=5, batch_size=1, augment=False, mode="train")

    first = score()
    assert np.isfinite(first) and first == score()
