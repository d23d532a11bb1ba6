"""The proxies that score their reference's own network of a cell (TE-NAS's thin networks
for ntk_cond and linear_regions, zero-cost-nas's copy for ntk_trace_norm), their repeats
and re-initialisation, against values derived by hand on tiny networks a toy space builds.
Never compared with the proxy code's own output."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_config
from test_proxies_activation_extra import X4, SignNet, hand_pattern
from test_proxies_gradient_extra import W1, W2, X, Y, ConvBNNet, Tiny, as_batch, back_to_conv, bn_batch, hand_forward
from torch import nn

from benchdata.batches import BatchSpec
from orchestrator.errors import SweepError
from orchestrator.settings import load_settings
from proxies import ScoringContext, get_proxy
from proxies.context import require_batches
from proxies.networks import network_input, reinitialise
from proxysweep import score
from spaces.base import NetworkVariant

SPEC = BatchSpec(size=4, augment=False)
X_SECOND = np.array([[0.4, 1.5, -0.7], [2.2, -0.3, 0.9], [-1.2, -0.5, 1.1], [0.8, 0.6, -1.9]])
Y_SECOND = np.array([1, 0, 0, 1])
THIN = dict(network="thin", channels=3, cells_per_stage=1, depth=0, stem=True)


def context(model: nn.Module, batches: dict, built: list, make: type, input_shape=(1, 1, 3)) -> ScoringContext:
    """A context whose space builds ``make()`` for every variant, recording the variants."""

    def variants(variant: NetworkVariant) -> nn.Module:
        built.append(variant)
        return make()

    return ScoringContext(model.train(), batches, input_shape, 2, torch.device("cpu"), variants)


def run(name: str, ctx: ScoringContext, **params) -> float:
    return get_proxy(name).fn(ctx, params)


def hand_condition(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> float:
    """Tiny's NTK condition number by hand: per-sample gradients of the summed logits over
    the conv and fc weights (TE-NAS: parameters named weight, so no fc bias)."""
    pre, h, _ = hand_forward(x, w1, w2, np.zeros(2))
    dz = np.ones((len(x), 2))
    _, dw1 = back_to_conv(dz, pre, x, w2)
    dW2 = dz[:, :, None] * h.reshape(len(x), 1, -1)
    g = np.concatenate([dw1, dW2.reshape(len(x), -1)], axis=1)
    eig = np.linalg.eigvalsh(g @ g.T)
    return eig[-1] / eig[0]


def two_batches() -> dict:
    return {SPEC: as_batch(X, Y), SPEC.with_index(1): as_batch(X_SECOND, Y_SECOND)}


# --- ntk_cond ------------------------------------------------------------------------------
def test_ntk_cond_scores_the_thin_network_averaged_over_repeats_each_on_its_batch() -> None:
    built: list = []
    other = Tiny(np.array([2.0, 0.3]))  # the cell's own network: not the one scored
    ctx = context(other, two_batches(), built, Tiny)
    got = run("ntk_cond", ctx, batch_size=4, augment=False, mode="train", output="logit_sum", parameters="weights",
              method="jacobian", **THIN, repeat=2, init="none")
    expected = (hand_condition(X, W1, W2) + hand_condition(X_SECOND, W1, W2)) / 2
    assert got == pytest.approx(expected, rel=1e-4)
    assert built == [NetworkVariant(channels=3, cells_per_stage=1, depth=0, stem=True)]  # built once


def test_ntk_cond_re_initialises_kaiming_normal_fan_out_before_every_repeat() -> None:
    built: list = []
    ctx = context(Tiny(), two_batches(), built, Tiny)
    torch.manual_seed(11)
    got = run("ntk_cond", ctx, batch_size=4, augment=False, mode="train", output="logit_sum", parameters="weights",
              method="jacobian", **THIN, repeat=2, init="kaiming_normal_fan_out")
    # By hand: the toy space's Tiny() draws its default init first; then per repeat He-normal
    # for ReLU over fan-out, std sqrt(2 / fan_out): conv 2 out x 1x1 -> sqrt(2/2) = 1, fc 2
    # outputs -> sqrt(2/2) = 1, drawn conv first (module order); the fc bias becomes 0.
    torch.manual_seed(11)
    Tiny()
    expected = []
    for x in (X, X_SECOND):
        w1 = torch.randn(2, 1, 1, 1).numpy().astype(np.float64).reshape(2)
        w2 = torch.randn(2, 6).numpy().astype(np.float64)
        expected.append(hand_condition(x, w1, w2))
    assert got == pytest.approx(np.mean(expected), rel=1e-3)


def test_reinitialise_is_tenas_init_model() -> None:
    net = nn.Sequential(nn.Conv2d(2, 3, 3, bias=True), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(4, 5))
    with torch.no_grad():
        net[1].weight.fill_(0.3)
        net[1].bias.fill_(0.2)
    for init, conv_fan, fc_fan in (("kaiming_normal_fan_in", 2 * 9, 4), ("kaiming_normal_fan_out", 3 * 9, 5)):
        torch.manual_seed(4)
        reinitialise(net, init)
        torch.manual_seed(4)  # by hand: N(0, 2 / fan) in module order, fans from the shapes
        assert torch.equal(net[0].weight, torch.randn(3, 2, 3, 3) * math.sqrt(2 / conv_fan))
        assert torch.equal(net[3].weight, torch.randn(5, 4) * math.sqrt(2 / fc_fan))
        assert not net[0].bias.any() and not net[3].bias.any()
        assert torch.equal(net[1].weight, torch.ones(3)) and not net[1].bias.any()
    before = [p.clone() for p in net.parameters()]
    reinitialise(net, "none")
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


# --- linear_regions ------------------------------------------------------------------------
def rgb(rows: list[list[float]]) -> torch.Tensor:
    """N images of 1 x P pixels whose three channels are equal."""
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), 1, 1, -1).expand(-1, 3, -1, -1).contiguous()


def test_linear_regions_on_the_thin_network_without_stem_reads_one_channel_per_repeat() -> None:
    second = [[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [-1.0, -1.0, -1.0, -1.0],
              [1.0, -1.0, 1.0, -1.0], [0.5, 0.5, 0.5, -0.5], [-1.0, -1.0, -1.0, -1.0]]
    # By hand (SignNet's codes: x_p > 0 on channel 0, x_p < 0 on channel 1): batch 0 has 3
    # patterns (test_proxies_activation_extra); batch 1: rows 0, 1 (+,+,+,+); rows 2, 5
    # (-,-,-,-); row 3 (+,-,+,-); row 4 (+,+,+,-): 4 patterns. Every channel of an image is
    # the same, so whichever channel is chosen gives these.
    counts = [len({hand_pattern(x) for x in X4}), len({hand_pattern(x) for x in second})]
    assert counts == [3, 4]
    spec = BatchSpec(size=6, augment=False)
    zeros = torch.zeros(6, dtype=torch.long)
    batches = {spec: (rgb(X4), zeros), spec.with_index(1): (rgb(second), zeros)}
    built: list = []
    ctx = context(SignNet(4), batches, built, lambda: SignNet(4), (3, 1, 4))
    got = run("linear_regions", ctx, batch_size=6, augment=False, crop=None, forward_batch=None, mode="train",
              network="thin", channels=1, cells_per_stage=1, depth=1, stem=False, repeat=2, init="none")
    assert got == np.mean(counts) == 3.5
    assert built == [NetworkVariant(channels=1, cells_per_stage=1, depth=1, stem=False)]


def test_network_input_chooses_distinct_channels_in_order() -> None:
    x = torch.arange(5.0).view(1, 5, 1, 1).expand(200, 5, 2, 2).contiguous()  # channel c holds c
    torch.manual_seed(0)
    picked = network_input(x, dict(network="thin", stem=False, channels=3))
    values = picked[:, :, 0, 0]
    assert picked.shape == (200, 3, 2, 2)
    assert bool((values[:, 1:] > values[:, :-1]).all())  # distinct and in order
    assert set(values.flatten().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}  # every channel gets chosen
    assert network_input(x, dict(network="thin", stem=True, channels=3)) is x
    assert network_input(x, dict(network="full")) is x


# --- ntk_trace_norm on zero-cost-nas's copy ------------------------------------------------
class BiasedConvBNNet(ConvBNNet):
    """ConvBNNet as zero-cost-nas would build it: a bias on the convolution before BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=True)


def test_ntk_trace_norm_adds_the_cell_conv_biases_of_zero_cost_nas() -> None:
    """HNAS's layer-local per-sample gradients on zero-cost-nas's network, written out: the
    cell's weights (loaded from the cell's network), plus the convolution bias, whose
    per-sample gradient is the sum over positions of the back-propagated signal."""
    net = ConvBNNet().train()
    x, y = bn_batch()
    conv_out = net.conv(x)
    conv_out.retain_grad()
    hidden = net.relu(net.bn(conv_out)).flatten(1)
    net.fc(hidden)[torch.arange(5), y].sum().backward()
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    without, bias_terms = 0.0, 0.0
    for i in range(5):
        conv_g = np.zeros((2, 3, 3))
        for o in range(2):
            for r in range(3):
                for c in range(3):
                    conv_g[o] += conv_out.grad[i, o, r, c].item() * padded[i, 0, r:r + 3, c:c + 3].numpy()
        fc_w = np.outer(np.eye(3)[y[i]], hidden[i].detach().numpy())
        without += (conv_g ** 2).sum() + (fc_w ** 2).sum() + 1.0  # fc bias: the one-hot row
        bias_terms += (conv_out.grad[i].sum(dim=(1, 2)).numpy().astype(np.float64) ** 2).sum()
    settings = dict(batch_size=5, augment=False, mode="train", output="label_logit", parameters="conv_linear",
                    method="layer_local")
    batches = {BatchSpec(5, False): (x, y)}
    built: list = []
    ctx = context(ConvBNNet(), batches, built, BiasedConvBNNet, (1, 3, 3))
    got = run("ntk_trace_norm", ctx, **settings, network="zero_cost_nas")
    assert got == pytest.approx(math.sqrt((without + bias_terms) / 5), rel=1e-5)
    assert built == [NetworkVariant(ops="zero_cost_nas")]
    full = run("ntk_trace_norm", ctx, **settings, network="full")
    assert full == pytest.approx(math.sqrt(without / 5), rel=1e-5)


# --- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize("override,message", [
    ("proxy.ntk_cond.depth=-1", "proxy.ntk_cond.depth must be 0 (all layers) or a number of layers; got -1"),
    ("proxy.linear_regions.channels=4", "proxy.linear_regions: without a stem the thin network reads 4 image "
                                        "channels, but images have 3"),
    ("proxy.ntk_cond.network=zero_cost_nas", "proxy.ntk_cond.network must be one of thin, full"),
    ("proxy.linear_regions.init=kaiming", "proxy.linear_regions.init must be one of none, kaiming_normal_fan_in"),
])
def test_bad_network_settings_stop_before_any_work(override: str, message: str) -> None:
    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(make_config(["sweep.proxies=[ntk_cond,linear_regions]", override]), check_files=False)


def test_the_repeats_must_fit_in_the_images() -> None:
    params = get_proxy("linear_regions").settings()
    require_batches("linear_regions", params, 9000, "cifar10")
    with pytest.raises(ValueError, match="proxy.linear_regions: 3 disjoint batches of 3000 asked for, but cifar10 "
                                         "has 5085 images: lower proxy.linear_regions.batch_size or repeat"):
        require_batches("linear_regions", params, 5085, "cifar10")


def test_score_of_a_module_refuses_a_reference_network_and_takes_network_full() -> None:
    x, y = as_batch(X, Y)
    with pytest.raises(ValueError, match=r"ntk_cond scores its reference's thin network of a cell, which score\(\) "
                                         r"cannot build from a module: pass settings=\{'ntk_cond': \{'network': 'full'\}\}"):
        score(Tiny(), ["ntk_cond"], x, y)
    got = score(Tiny(), ["ntk_cond"], x, y, settings={"ntk_cond": {"network": "full", "init": "none", "repeat": 1}})
    assert got["ntk_cond"] == pytest.approx(hand_condition(X, W1, W2), rel=1e-4)
