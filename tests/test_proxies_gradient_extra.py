"""The issue-3 gradient proxies against values derived independently on tiny networks.

Expected values come from a numpy re-derivation of each definition (forward pass, chain
rule and per-sample gradients written out by hand), from central finite differences
(Hessian-gradient products for grasp, dR/dw through BatchNorm for synflow_bn), or from
per-sample gradients taken one sample at a time in a Python loop: never from the proxy code.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from proxies import ScoringContext, get_proxy
from benchdata.batches import BatchSpec

SPEC = BatchSpec(size=4, augment=False)
PIXELS = 3

# --- a tiny network written twice: numpy by hand, and torch -----------------------------
# x_n: P pixels; pre[c, p] = w1[c] * x[p] (1x1 conv, 1 -> 2 channels, no bias);
# h = relu(pre); z = W2 @ h.flatten() + b2 (channel-major flatten), 2 classes.
W1 = np.array([0.8, -1.3])
W2 = np.array([[0.5, -1.0, 0.25, 1.5, -0.5, 0.75], [-0.25, 0.5, 1.0, -1.0, 2.0, 0.3]])
B2 = np.array([0.1, -0.2])
X = np.array([[1.0, -2.0, 0.5], [-1.5, 0.7, 2.0], [0.3, 1.2, -0.8], [-0.6, -1.1, 1.4]])
Y = np.array([0, 1, 1, 0])


class Tiny(nn.Module):
    def __init__(self, w1=W1, w2=W2, b2=B2, dtype=torch.float32) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2 * PIXELS, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(w1).view(2, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor(w2))
            self.fc.bias.copy_(torch.tensor(b2))
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


def as_batch(x: np.ndarray, y: np.ndarray, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(x, dtype=dtype).view(len(x), 1, 1, PIXELS), torch.tensor(y)


def context(model: nn.Module, batches: dict, input_shape=(1, 1, PIXELS)) -> ScoringContext:
    return ScoringContext(model.train(), batches, input_shape, 2, torch.device("cpu"))


def tiny_ctx(dtype=torch.float32) -> ScoringContext:
    return context(Tiny(dtype=dtype), {SPEC: as_batch(X, Y, dtype)})


def run(name: str, ctx: ScoringContext, **params) -> float:
    return get_proxy(name).fn(ctx, params)


BATCH = dict(batch_size=4, augment=False, mode="train")


def hand_forward(x, w1=W1, w2=W2, b2=B2):
    pre = w1[None, :, None] * x[:, None, :]  # N x 2 x P
    h = np.maximum(pre, 0.0)
    z = h.reshape(len(x), -1) @ w2.T + b2
    return pre, h, z


def back_to_conv(dz, pre, x, w2):
    """From d/dz (N x 2) to d/dpre (N x 2 x P) and the per-sample dw1 (N x 2)."""
    dpre = (dz @ w2).reshape(pre.shape) * (pre > 0)
    return dpre, (dpre * x[:, None, :]).sum(axis=2)


def hand_loss_gradients(x, y, w1=W1, w2=W2, b2=B2, T=1.0):
    """Gradients of mean cross-entropy of z / T, and the conv/fc activations and their
    gradients (for fisher)."""
    pre, h, z = hand_forward(x, w1, w2, b2)
    p = np.exp(z / T) / np.exp(z / T).sum(axis=1, keepdims=True)
    dz = (p - np.eye(2)[y]) / (T * len(x))
    dpre, dw1 = back_to_conv(dz, pre, x, w2)
    return {"w1": dw1.sum(0), "W2": dz.T @ h.reshape(len(x), -1), "b2": dz.sum(0),
            "pre": pre, "dpre": dpre, "z": z, "dz": dz}


# --- plain, fisher, l2_norm ---------------------------------------------------------------
def test_plain_is_signed_sum_of_weight_times_gradient() -> None:
    g = hand_loss_gradients(X, Y)
    expected = (W1 * g["w1"]).sum() + (W2 * g["W2"]).sum()  # weights only, no bias
    assert run("plain", tiny_ctx(), **BATCH) == pytest.approx(expected, rel=1e-5)


def test_fisher_sums_channel_values_times_weights_per_channel() -> None:
    g = hand_loss_gradients(X, Y)
    # conv: activation = conv output (pre-ReLU), summed over the P positions per channel
    conv_nk = (g["pre"] * g["dpre"]).sum(axis=2)
    conv = 0.5 * (conv_nk ** 2).mean(axis=0)  # per output channel
    fc = 0.5 * ((g["z"] * g["dz"]) ** 2).mean(axis=0)
    # each channel's value is copied onto its weights: 1 per conv channel, 2P per fc row
    expected = conv.sum() * 1 + fc.sum() * (2 * PIXELS)
    assert run("fisher", tiny_ctx(), **BATCH) == pytest.approx(expected, rel=1e-5)


def test_l2_norm_sums_layer_weight_norms() -> None:
    expected = math.sqrt(0.8**2 + 1.3**2) + math.sqrt((W2**2).sum())
    assert run("l2_norm", context(Tiny(), {})) == pytest.approx(expected, rel=1e-6)


class CountForwards(Tiny):
    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CountForwards.calls += 1
        return super().forward(x)


def test_grad_norm_snip_plain_fisher_cost_one_forward_and_backward() -> None:
    CountForwards.calls = 0
    ctx = context(CountForwards(), {SPEC: as_batch(X, Y)})
    both = {("forward", SPEC, "train"), ("loss_gradients", SPEC, "train")}
    for name in ("grad_norm", "snip", "plain", "fisher"):
        ctx.used.clear()
        run(name, ctx, **BATCH)
        assert ctx.used == both  # the forward and the backward, accounted to each of them
    assert CountForwards.calls == 1
    assert set(ctx.pass_seconds) == both


def test_grasp_and_jacob_cov_reuse_the_kept_forward() -> None:
    CountForwards.calls = 0
    ctx = context(CountForwards(), {SPEC: as_batch(X, Y)})
    run("grad_norm", ctx, **BATCH)
    run("grasp", ctx, **BATCH, T=1.0, num_iters=1)
    ctx.used.clear()
    run("jacob_cov", ctx, **BATCH, k=1e-5)
    assert CountForwards.calls == 1
    assert ctx.used == {("forward", SPEC, "train"), ("input_jacobian", SPEC, "train")}


# --- grasp: Hessian-gradient product by central finite differences ---------------------
@pytest.mark.parametrize("T,num_iters", [(1.0, 1), (2.0, 3)])
def test_grasp_against_finite_difference_hessian_product(T: float, num_iters: int) -> None:
    g = hand_loss_gradients(X, Y, T=T)
    gw1, gW2 = num_iters * g["w1"], num_iters * g["W2"]  # the reference sums num_iters passes
    eps = 1e-6
    plus = hand_loss_gradients(X, Y, W1 + eps * gw1, W2 + eps * gW2, T=T)
    minus = hand_loss_gradients(X, Y, W1 - eps * gw1, W2 - eps * gW2, T=T)
    hg_w1 = (plus["w1"] - minus["w1"]) / (2 * eps)
    hg_W2 = (plus["W2"] - minus["W2"]) / (2 * eps)
    expected = -((W1 * hg_w1).sum() + (W2 * hg_W2).sum())
    got = run("grasp", tiny_ctx(torch.float64), **BATCH, T=T, num_iters=num_iters)
    assert got == pytest.approx(expected, rel=1e-6)


class ConvBNNet(nn.Module):
    """conv3x3 (1 -> 2) -> BatchNorm -> ReLU -> flatten -> Linear: samples interact
    through the BatchNorm batch statistics in train mode."""

    def __init__(self, dtype=torch.float32, side: int = 3) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2 * side * side, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.7)
            self.bn.running_mean.copy_(torch.tensor([0.2, -0.1]))
            self.bn.running_var.copy_(torch.tensor([1.5, 0.6]))
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))


def bn_batch(n: int = 5, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(n, 1, 3, 3, generator=gen).to(dtype), torch.tensor([0, 2, 1, 1, 0][:n])


def test_grasp_through_batchnorm_against_finite_differences() -> None:
    net = ConvBNNet(torch.float64)
    x, y = bn_batch(dtype=torch.float64)
    weights = [net.conv.weight, net.fc.weight]

    def grads_at(shift: list[torch.Tensor]) -> list[torch.Tensor]:
        probe = ConvBNNet(torch.float64).train()
        with torch.no_grad():
            probe.conv.weight += shift[0]
            probe.fc.weight += shift[1]
        loss = F.cross_entropy(probe(x), y)
        return torch.autograd.grad(loss, [probe.conv.weight, probe.fc.weight])

    g = grads_at([torch.zeros_like(w) for w in weights])
    eps = 1e-6
    plus, minus = grads_at([eps * v for v in g]), grads_at([-eps * v for v in g])
    expected = -sum(float((w.detach() * (p - m) / (2 * eps)).sum()) for w, p, m in zip(weights, plus, minus))
    spec = BatchSpec(5, False)
    got = run("grasp", context(net, {spec: (x, y)}, (1, 3, 3)), batch_size=5, augment=False, mode="train", T=1.0, num_iters=1)
    assert got == pytest.approx(expected, rel=1e-6)


def test_grasp_leaves_the_network_as_it_was_after_restore() -> None:
    ctx = context(ConvBNNet(), {BatchSpec(5, False): bn_batch()}, (1, 3, 3))
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    run("grasp", ctx, batch_size=5, augment=False, mode="train", T=1.0, num_iters=1)
    ctx.restore()
    for k, v in ctx.model.state_dict().items():
        assert torch.equal(v, before[k]), k


# --- synflow_bn: dR/dw through train-mode BatchNorm by finite differences ---------------
class SynNet(nn.Module):
    """conv (1x3 kernel, padding 1 along the width) -> BatchNorm -> ReLU -> Linear(3 -> 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, (1, 3), padding=(0, 1), bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.5, -1.0, 2.0]).view(1, 1, 1, 3))
            self.bn.weight.fill_(-1.5)
            self.bn.bias.fill_(0.2)
            self.fc.weight.copy_(torch.tensor([[1.0, -0.5, 0.25], [-2.0, 0.75, 1.5]]))
            self.fc.bias.copy_(torch.tensor([0.3, -0.4]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))


def syn_output_sum(k: np.ndarray, with_bn: bool) -> float:
    """R = sum of the outputs for an all-ones 1x3 input, every parameter made positive."""
    k = np.abs(k)
    c = np.array([k[1] + k[2], k[0] + k[1] + k[2], k[0] + k[1]])  # zero padding at the ends
    if with_bn:  # train mode on a batch of one image: statistics over its 3 positions
        c = 1.5 * (c - c.mean()) / math.sqrt(c.var() + 1e-5) + 0.2
    h = np.maximum(c, 0.0)
    return float((np.abs([[1.0, -0.5, 0.25], [-2.0, 0.75, 1.5]]) @ h + np.abs([0.3, -0.4])).sum())


@pytest.mark.parametrize("name,with_bn", [("synflow_bn", True), ("synflow", False)])
def test_synflow_bn_keeps_batchnorm(name: str, with_bn: bool) -> None:
    k = np.array([0.5, -1.0, 2.0])
    eps = 1e-6
    dk = np.array([(syn_output_sum(k + eps * e, with_bn) - syn_output_sum(k - eps * e, with_bn)) / (2 * eps)
                   for e in np.eye(3)])
    # positive weights stay positive under the small shifts, so |k| moves with k
    conv = np.abs(np.abs(k) * dk * np.sign(k)).sum()
    # dR/dW[j, p] = h[p], so sum |W * dR/dW| = sum_j sum_p |W[j, p]| h[p] = R - sum|b|
    fc = syn_output_sum(k, with_bn) - 0.7
    got = run(name, context(SynNet(), {}, (1, 1, 3)), bn=with_bn, mode="train")
    assert got == pytest.approx(conv + fc, rel=1e-7)


# --- per-sample gradients and the NTK ------------------------------------------------------
def hand_sample_gradients(x, y, output: str, with_bias: bool) -> np.ndarray:
    """N x P per-sample gradients of the Tiny network by hand: d z / d params with dz the
    all-ones row (logit_sum) or the label's one-hot row (label_logit)."""
    pre, h, _ = hand_forward(x)
    dz = np.ones((len(x), 2)) if output == "logit_sum" else np.eye(2)[y]
    _, dw1 = back_to_conv(dz, pre, x, W2)
    dW2 = dz[:, :, None] * h.reshape(len(x), 1, -1)
    parts = [dw1, dW2.reshape(len(x), -1)] + ([dz] if with_bias else [])
    return np.concatenate(parts, axis=1)


@pytest.mark.parametrize("method", ["jacobian", "layer_local"])
def test_ntk_cond_from_hand_per_sample_gradients(method: str) -> None:
    g = hand_sample_gradients(X, Y, "logit_sum", with_bias=False)  # 'weights': no fc bias
    eig = np.linalg.eigvalsh(g @ g.T)
    got = run("ntk_cond", tiny_ctx(), **BATCH, output="logit_sum", parameters="weights", method=method)
    assert got == pytest.approx(eig[-1] / eig[0], rel=1e-4)


@pytest.mark.parametrize("method", ["jacobian", "layer_local"])
def test_ntk_trace_norm_from_hand_per_sample_gradients(method: str) -> None:
    g = hand_sample_gradients(X, Y, "label_logit", with_bias=True)  # conv_linear: fc bias too
    expected = math.sqrt(np.trace(g @ g.T) / len(X))
    got = run("ntk_trace_norm", tiny_ctx(), **BATCH, output="label_logit", parameters="conv_linear", method=method)
    assert got == pytest.approx(expected, rel=1e-5)


def test_ntk_cond_hnas_is_the_condition_number_of_ntk_trace_norms_kernel() -> None:
    """HNAS's kappa (condnum.py): the same per-sample gradients as its trace norm (label
    logit, Conv2d and Linear weights and biases), largest over smallest eigenvalue."""
    g = hand_sample_gradients(X, Y, "label_logit", with_bias=True)
    eig = np.linalg.eigvalsh(g @ g.T)
    defaults = dict(get_proxy("ntk_cond_hnas").defaults)
    assert {k: defaults[k] for k in ("output", "parameters", "method", "batch_size", "repeat")} == \
        {"output": "label_logit", "parameters": "conv_linear", "method": "layer_local", "batch_size": 64, "repeat": 1}
    params = {**defaults, **BATCH, "network": "full"}  # the tiny network itself, as built
    assert run("ntk_cond_hnas", tiny_ctx(), **params) == pytest.approx(eig[-1] / eig[0], rel=1e-4)
    assert not get_proxy("ntk_cond_hnas").higher_is_better


def loop_gradients(net: nn.Module, x, y, output: str, names: list[str]) -> np.ndarray:
    """Per-sample gradients by one backward per sample through the batched forward."""
    params = dict(net.named_parameters())
    logits = net(x)
    scalars = logits.sum(1) if output == "logit_sum" else logits[torch.arange(len(y)), y]
    rows = []
    for i in range(len(x)):
        grads = torch.autograd.grad(scalars[i], [params[n] for n in names], retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).double().numpy())
    return np.stack(rows)


def test_ntk_cond_keeps_the_batchnorm_coupling_of_train_mode() -> None:
    net = ConvBNNet().train()
    x, y = bn_batch()
    g = loop_gradients(net, x, y, "logit_sum", ["conv.weight", "bn.weight", "fc.weight"])
    eig = np.linalg.eigvalsh(g @ g.T)
    ctx = context(ConvBNNet(), {BatchSpec(5, False): (x, y)}, (1, 3, 3))
    params = dict(batch_size=5, augment=False, mode="train", output="logit_sum", parameters="weights")
    got = run("ntk_cond", ctx, **params, method="jacobian")
    assert got == pytest.approx(eig[-1] / eig[0], rel=1e-3)
    # layer_local drops the coupling through the batch statistics: a different number
    assert run("ntk_cond", ctx, **params, method="layer_local") != pytest.approx(got, rel=1e-3)


def test_ntk_trace_norm_layer_local_in_train_mode_is_signal_times_input() -> None:
    """HNAS's per-sample gradient of a layer: sample i's part of the back-propagated signal
    at the layer output times its own input, written out position by position."""
    net = ConvBNNet().train()
    x, y = bn_batch()
    conv_out = net.conv(x)
    conv_out.retain_grad()
    hidden = net.relu(net.bn(conv_out)).flatten(1)
    hidden.retain_grad()
    net.fc(hidden)[torch.arange(5), y].sum().backward()
    padded = F.pad(x, (1, 1, 1, 1))
    total = 0.0
    for i in range(5):
        conv_g = np.zeros((2, 3, 3))
        for o in range(2):
            for r in range(3):
                for c in range(3):
                    conv_g[o] += conv_out.grad[i, o, r, c].item() * padded[i, 0, r:r + 3, c:c + 3].numpy()
        fc_w = np.outer(np.eye(3)[y[i]], hidden[i].detach().numpy())  # d label logit / d W
        fc_b = np.eye(3)[y[i]]
        total += (conv_g ** 2).sum() + (fc_w ** 2).sum() + (fc_b ** 2).sum()
    expected = math.sqrt(total / 5)
    ctx = context(ConvBNNet(), {BatchSpec(5, False): (x, y)}, (1, 3, 3))
    got = run("ntk_trace_norm", ctx, batch_size=5, augment=False, mode="train",
              output="label_logit", parameters="conv_linear", method="layer_local")
    assert got == pytest.approx(expected, rel=1e-5)


def test_without_coupling_both_methods_equal_single_sample_gradients() -> None:
    """In eval mode (running statistics) sample i's gradient is that of a forward of sample
    i alone, so jacobian and layer_local agree with it, BatchNorm scales included."""
    x, y = bn_batch()
    net = ConvBNNet().eval()
    rows = []
    for i in range(5):
        logit = net(x[i:i + 1])[0, y[i]]
        grads = torch.autograd.grad(logit, list(net.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]).double().numpy())
    g = np.stack(rows)  # conv.weight, bn.weight, bn.bias, fc.weight, fc.bias: all named
    names = [n for n, _ in net.named_parameters()]
    sizes = [p.numel() for p in net.parameters()]
    keep = np.concatenate([np.full(s, "weight" in n) for n, s in zip(names, sizes)])
    expected = np.trace(g[:, keep] @ g[:, keep].T)
    for method in ("jacobian", "layer_local"):
        ctx = context(ConvBNNet(), {BatchSpec(5, False): (x, y)}, (1, 3, 3))
        theta = ctx.sample_kernel(BatchSpec(5, False), "eval", "label_logit", "weights", method)
        assert float(torch.trace(theta)) == pytest.approx(expected, rel=1e-5), method
        assert np.allclose(theta.numpy(), g[:, keep] @ g[:, keep].T, rtol=1e-4, atol=1e-6), method


def test_ntk_cond_of_a_constant_network_is_the_reference_nan_value() -> None:
    # all weights zero: every per-sample gradient is zero, 0/0 = nan -> 1e5 as TE-NAS
    ctx = context(Tiny(np.zeros(2), np.zeros((2, 2 * PIXELS)), np.zeros(2)), {SPEC: as_batch(X, Y)})
    got = run("ntk_cond", ctx, **BATCH, output="logit_sum", parameters="weights", method="jacobian")
    assert got == 100000.0


def test_ntk_proxies_share_one_pass_when_settings_match() -> None:
    ctx = tiny_ctx()
    settings = dict(**BATCH, output="label_logit", parameters="conv_linear", method="layer_local")
    run("ntk_cond", ctx, **settings)
    run("ntk_trace_norm", ctx, **settings)
    assert [k[0] for k in ctx.pass_seconds] == ["sample_kernel"]


# --- zico and xi_gsnr over several batches ---------------------------------------------
# Batch 1 has negative pixels, batch 2 only positive ones: the conv channel with a negative
# weight gets no gradient from batch 2, so with running sums its recorded gradients are
# equal (zero deviation) and it drops out; with zeroed gradients it stays in.
XB = [X, np.abs(X[[1, 2, 3, 0]]) + 0.1, np.abs(X) * 0.5]
YB = [Y, np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0])]


def multi_ctx(count: int) -> ScoringContext:
    batches = {SPEC.with_index(k): as_batch(XB[k], YB[k]) for k in range(count)}
    return context(Tiny(), batches)


def recorded(count: int, zeroed: bool) -> list[np.ndarray]:
    per_batch = [hand_loss_gradients(XB[k], YB[k]) for k in range(count)]
    layers = []
    for key in ("w1", "W2"):  # Conv2d and Linear weights, no bias
        grads = [g[key].reshape(-1) for g in per_batch]
        if not zeroed:
            grads = list(np.cumsum(grads, axis=0))
        layers.append(np.stack(grads))
    return layers


@pytest.mark.parametrize("zeroed", [False, True])
def test_zico_from_hand_gradient_statistics(zeroed: bool) -> None:
    expected = 0.0
    for g in recorded(2, zeroed):
        std = g.std(axis=0)
        keep = std != 0
        expected += math.log((np.abs(g).mean(axis=0)[keep] / std[keep]).sum())
    if not zeroed:  # the dead channel's weight really dropped out
        assert (recorded(2, False)[0].std(axis=0) == 0).sum() == 1
    got = run("zico", multi_ctx(2), **BATCH, num_batches=2, zero_grad_between_batches=zeroed)
    assert got == pytest.approx(expected, rel=1e-5)


class OneWeightPair(nn.Module):
    """z = (w0 x, w1 x) + b with w = (0, 0), b = (0, 0), 2 classes; a Conv2d no input reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 2)
        self.unused = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.view(len(x), 1))


@pytest.mark.parametrize("zeroed,expected", [(True, math.log(2.0)), (False, math.log(6.0))])
def test_zico_on_two_one_image_batches_by_hand(zeroed: bool, expected: float) -> None:
    """With w = 0 the logits are 0, p = (1/2, 1/2) and dL/dw = (p - onehot(y)) x.
    Batch 1: x = 2, y = 0 -> g1 = (-1/2, 1/2) * 2 = (-1, 1). Batch 2: x = 1, y = 1 ->
    g2 = (1/2, -1/2). Zeroed before every batch (the reference): each weight's gradients
    are +-1 and -+1/2: mean |g| = 3/4, population std = 3/4, ratio 1, so ZiCo = log(1 + 1)
    = log 2. Running sums instead record g1 and g1 + g2 = (-1/2, 1/2): mean |g| = 3/4, std
    = 1/4, ratio 3 per weight: log 6. The bias does not count; the unused Conv2d has no
    gradient (zeros, deviation 0) and adds nothing."""
    spec = BatchSpec(1, False)
    batches = {spec: (torch.tensor([[[[2.0]]]]), torch.tensor([0])),
               spec.with_index(1): (torch.tensor([[[[1.0]]]]), torch.tensor([1]))}
    ctx = context(OneWeightPair(), batches, (1, 1, 1))
    got = run("zico", ctx, batch_size=1, augment=False, mode="train", num_batches=2, zero_grad_between_batches=zeroed)
    assert got == pytest.approx(expected, rel=1e-12)


def test_zico_defaults_are_the_reference_search_settings() -> None:
    # compute_zico.py zeroes before every batch; evolution_search.py --maxbatch 2; --batch_size 128
    assert dict(get_proxy("zico").defaults) == {"batch_size": 128, "augment": True, "num_batches": 2,
                                                 "mode": "train", "zero_grad_between_batches": True}


def test_zico_skips_layers_without_deviation() -> None:
    # one batch: every deviation is zero, every layer is skipped
    assert run("zico", multi_ctx(1), **BATCH, num_batches=1, zero_grad_between_batches=False) == 0.0


@pytest.mark.parametrize("zeroed,xi", [(False, 1e-8), (True, 0.5)])
def test_xi_gsnr_from_hand_gradient_statistics(zeroed: bool, xi: float) -> None:
    expected = 0.0
    for g in recorded(3, zeroed):
        var = g.var(axis=0)
        if var.any():
            expected += (g.mean(axis=0) ** 2 / (var + xi)).sum()
    got = run("xi_gsnr", multi_ctx(3), **BATCH, num_batches=3, xi=xi, zero_grad_between_batches=zeroed)
    assert got == pytest.approx(expected, rel=1e-4)


def test_first_batch_of_zico_is_the_pass_grad_norm_reads() -> None:
    CountForwards.calls = 0
    batches = {SPEC.with_index(k): as_batch(XB[k], YB[k]) for k in range(2)}
    ctx = context(CountForwards(), batches)
    run("grad_norm", ctx, **BATCH)
    ctx.used.clear()
    run("zico", ctx, **BATCH, num_batches=2, zero_grad_between_batches=False)
    assert ctx.used == {("forward", SPEC, "train"), ("loss_gradients", SPEC, "train"),
                        ("loss_gradients", SPEC.with_index(1), "train")}
    assert CountForwards.calls == 2
