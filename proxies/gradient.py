"""Gradient-based proxies of Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS"
(ICLR 2021), as defined in SamsungLabs/zero-cost-nas ``foresight/pruners/measures/``.

Common reference choices kept: the network is in train mode (BatchNorm on batch
statistics) with its BatchNorm layers kept (``bn=True``) unless a docstring says otherwise;
only Conv2d and Linear weights are measured, in module order; a per-weight measure is summed
over all of them (``find_measures`` / ``sum_arr`` in predictive.py); the loss is the mean
cross-entropy on one batch of 64 augmented training images (``nasbench2_pred.py``: batch size
64, ``dataload random``, one batch); float32 network, sums in float64.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from proxies.context import ScoringContext, batch_spec, set_mode, weight_layers
from proxies.registry import register


@register("grad_norm", uses_labels=True, defaults={"batch_size": 64, "augment": True, "mode": "train"})
def grad_norm(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Sum over layers of the Euclidean norm of the loss gradient of the layer's weight
    (grad_norm.py: ``l.weight.grad.norm()`` per layer, then summed)."""
    layers = ctx.loss_gradients(batch_spec(params), params["mode"])
    return float(sum(layer.grad.double().norm() for layer in layers))


@register("snip", uses_labels=True, defaults={"batch_size": 64, "augment": True, "mode": "train"})
def snip(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """SNIP saliency |dL/dm| of a multiplicative all-ones weight mask, summed.

    snip.py computes the gradient with respect to a mask m = 1 on w * m; that gradient is
    w * dL/dw exactly, so this reads the shared loss-gradient pass instead of re-running it.
    """
    layers = ctx.loss_gradients(batch_spec(params), params["mode"])
    return float(sum((layer.weight.double() * layer.grad.double()).abs().sum() for layer in layers))


@register("plain", uses_labels=True, defaults={"batch_size": 64, "augment": True, "mode": "train"})
def plain(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Sum of weight * dL/dw, signed (plain.py: ``layer.weight.grad * layer.weight``). Reads
    the shared loss-gradient pass."""
    layers = ctx.loss_gradients(batch_spec(params), params["mode"])
    return float(sum((layer.weight.double() * layer.grad.double()).sum() for layer in layers))


@register("fisher", uses_labels=True, defaults={"batch_size": 64, "augment": True, "mode": "train"})  # train mode, forced there
def fisher(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Fisher pruning saliency (Theis et al. 2018) as fisher.py computes it: per output
    channel k of each Conv2d/Linear, 0.5 * mean over the batch of (sum over positions of
    activation * dL/d activation)^2, the activation being the layer's output; ``mode='channel'``
    then copies channel k's value onto each of its weights, so a layer contributes
    (weights per output channel) * sum_k |value_k|.

    The values come from hooks on the shared loss-gradient pass (the reference runs its own
    forward/backward through identity ops it inserts after each layer: the same activations
    and gradients). Reference choices kept: train mode (the reference forces ``net.train()``;
    ``mode`` defaults to it), BatchNorm kept, mean cross-entropy (its 1/N is in the gradients).
    Not copied: zero-cost-nas scores NB201 on its own model, whose cell convolutions carry
    random biases that the official network lacks; BatchNorm cancels them everywhere but in
    the convolution outputs fisher reads (``benchmarks/nb201_fisher_bias.py``).
    """
    layers = ctx.loss_gradients(batch_spec(params), params["mode"])
    return float(
        sum(layer.fisher.double().abs().sum() * layer.weight[0].numel() for layer in layers)
    )


@register(
    "grasp", uses_labels=True,
    defaults={"batch_size": 64, "augment": True, "mode": "train", "T": 1.0, "num_iters": 1},
)
def grasp(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """GraSP (Wang et al. 2020) as grasp.py computes it: g = dL/dw of the Conv2d/Linear
    weights (summed over ``num_iters`` passes over the same batch, so scaled by it), Hg the
    Hessian-vector product from a second backward of g . dL/dw, score = sum of -w * Hg.

    The loss is cross-entropy of logits / T (``T``). Both gradients back up through the
    context's kept forward pass of the batch (shared with the other gradient proxies): the
    reference runs two forwards of the same batch, which in train mode give the same graph.
    """
    spec = batch_spec(params)
    _, y = ctx.batch(spec)
    graph = ctx.forward_graph(spec, params["mode"])
    weights = [layer.weight for layer in weight_layers(ctx.model)]
    loss = F.cross_entropy(graph.logits / float(params["T"]), y)
    grads = torch.autograd.grad(loss, weights, create_graph=True, retain_graph=True, allow_unused=True)
    reached = [(w, g) for w, g in zip(weights, grads) if g is not None]
    if not reached:
        return 0.0
    scale = int(params["num_iters"])
    inner = sum((scale * g.detach() * g).sum() for _, g in reached)
    hessian_g = torch.autograd.grad(inner, [w for w, _ in reached], retain_graph=True, allow_unused=True)
    return float(
        sum(-(w.detach().double() * hg.double()).sum() for (w, _), hg in zip(reached, hessian_g) if hg is not None)
    )


@register("synflow", uses_images=False, defaults={"bn": False, "mode": "train"})
def synflow(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """SynFlow (Tanaka et al. 2020) as synflow.py computes it: on a copy of the network
    with absolute values of all parameters and buffers, in float64, BatchNorm removed
    (``bn: false``, the reference's ``synflow``; ``bn: true`` keeps it, ``synflow_bn``),
    one all-ones input; score = sum of |w * dR/dw| with R the sum of the outputs.

    The reference's NB201 copy keeps BatchNorm in its two reduction blocks (an artefact of
    its model class, not of the method); here ``bn: false`` removes every BatchNorm.
    """
    net = ctx.fresh_copy()
    if not params["bn"]:
        _remove_batchnorm(net)
    net.double()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    set_mode(net, params["mode"])
    ones = torch.ones((1, *ctx.input_shape), dtype=torch.float64, device=ctx.device)
    net.zero_grad(set_to_none=True)
    net(ones).sum().backward()
    total = 0.0
    with torch.no_grad():
        for layer in weight_layers(net):
            if layer.weight.grad is not None:
                total += float((layer.weight * layer.weight.grad).abs().sum())
    return total


@register("synflow_bn", uses_images=False, defaults={"bn": True, "mode": "train"})
def synflow_bn(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """SynFlow with BatchNorm kept: synflow.py's ``synflow_bn`` (``bn=True``). The same
    computation as ``synflow`` (absolute parameters and buffers, float64, one all-ones
    input, train mode: BatchNorm normalises with the statistics of that single input)."""
    return synflow(ctx, params)


@register("l2_norm", uses_images=False)
def l2_norm(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Sum over Conv2d/Linear layers of the Euclidean norm of the layer's weight (l2_norm.py,
    ``copy_net=False``: the network's own initial weights, BatchNorm irrelevant)."""
    with torch.no_grad():
        return float(sum(layer.weight.double().norm() for layer in weight_layers(ctx.model)))


def _remove_batchnorm(net: nn.Module) -> None:
    """Replace every BatchNorm layer by the identity (the reference's ``copynet(bn=False)``)."""
    for name, child in list(net.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(net, name, nn.Identity())
        else:
            _remove_batchnorm(child)


@register("jacob_cov", defaults={"batch_size": 64, "augment": True, "mode": "train", "k": 1e-5})
def jacob_cov(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """Jacobian covariance (Mellor et al. 2020, v1 of NASWOT) as jacob_cov.py computes it:
    J = d(sum of logits)/d(input) per image, C = corrcoef of the rows of J, eigenvalues v of
    C, score = -sum(log(v + k) + 1/(v + k)) with k = 1e-5. C is symmetric, so its
    eigenvalues come from ``eigvalsh`` (the reference's ``eig`` gives the same values)."""
    jac = ctx.input_jacobian(batch_spec(params), params["mode"]).cpu().numpy().astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):  # an input's Jacobian is constant (e.g. the cell's
        return float("nan")             # output ignores its input): nan, as the reference
    v = np.linalg.eigvalsh(corr)
    k = float(params["k"])
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))
