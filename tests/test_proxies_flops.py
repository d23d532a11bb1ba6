"""flops against multiply-accumulates counted by hand for a small network."""
from __future__ import annotations

import torch
from torch import nn

from proxies import ScoringContext, get_proxy
from benchdata.batches import BatchSpec


class FlopNet(nn.Module):
    """(3, 5, 5) -> conv3x3 (3 -> 4, pad 1, bias) -> BatchNorm -> ReLU -> grouped conv1x1
    (4 -> 4, 2 groups, no bias) applied twice -> avg pool 2x2 -> flatten -> fc (16 -> 10, bias).
    ``unused`` is built but never called."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.group = nn.Conv2d(4, 4, kernel_size=1, groups=2, bias=False)
        self.unused = nn.Conv2d(4, 64, kernel_size=3)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.group(self.group(self.relu(self.bn(self.conv(x)))))
        return self.fc(self.pool(h).flatten(1))


# By hand, per image:
CONV = 3 * 3 * 3 * 4 * (5 * 5) + 4 * (5 * 5)  # k*k*C_in*C_out per position (25), + bias: 2800
GROUP = 2 * (1 * 1 * 2 * 4 * (5 * 5))  # twice; C_in / groups = 2 inputs per output: 400
FC = 16 * 10 + 10  # 170
BN = 4 * 5 * 5  # one per output value: 100
POOL = 2 * 2 * (4 * 2 * 2)  # window size per output value (floor(5/2) = 2): 64


def flops(model: nn.Module, batches: dict | None = None, **params) -> float:
    ctx = ScoringContext(model.train(), batches or {}, (3, 5, 5), 10, torch.device("cpu"))
    return get_proxy("flops").fn(ctx, {"batchnorm": False, "pooling": False, **params})


def test_flops_counts_convolutions_and_linear_layers_that_run() -> None:
    assert flops(FlopNet()) == CONV + GROUP + FC == 3370


def test_flops_with_batchnorm_and_pooling() -> None:
    assert flops(FlopNet(), batchnorm=True) == CONV + GROUP + FC + BN
    assert flops(FlopNet(), pooling=True) == CONV + GROUP + FC + POOL
    assert flops(FlopNet(), batchnorm=True, pooling=True) == CONV + GROUP + FC + BN + POOL


def test_flops_does_not_depend_on_the_images_and_leaves_the_model_alone() -> None:
    spec = BatchSpec(size=2, augment=False)
    model = FlopNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = flops(model, {spec: (torch.randn(2, 3, 5, 5), torch.tensor([0, 1]))})
    b = flops(model, {spec: (torch.full((2, 3, 5, 5), 1e6), torch.tensor([3, 3]))})
    assert a == b == flops(model) == 3370
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # BN stats too
    assert model.training  # its mode is given back
