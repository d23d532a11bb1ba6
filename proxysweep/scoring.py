"""Score one network from Python, as a sweep scores a cell: ``score(model, proxies, inputs,
targets)``, the counterpart of zero-cost-nas's ``find_measures``.

Each proxy runs with its registered defaults (its reference's settings) overridden by
``settings``, after seeding from (``seed``, its name), on the network's initial weights
(the shared passes of the scoring context run once and every proxy sees the weights as
they were given). Every proxy reads the batch you pass: its ``batch_size`` becomes that
batch's size and no augmentation is applied (augment it yourself if you want to); a proxy
that reads several batches (ZiCo, xi-GSNR) takes them from a list.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from orchestrator.scoring import run_proxies
from orchestrator.settings import ProxyRun
from proxies import ScoringContext, get_proxy
from benchdata.batches import BatchSpec
from spaces import get_space

Tensors = torch.Tensor | Sequence[torch.Tensor]


def _batches(inputs: Tensors, targets: Tensors | None) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    xs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    if targets is None:
        ys: list[torch.Tensor | None] = [None] * len(xs)
    else:
        ys = [targets] if isinstance(targets, torch.Tensor) else list(targets)
    if not xs or len(xs) != len(ys):
        raise ValueError("pass one batch of inputs (and targets), or lists of the same length")
    sizes = {x.shape[0] for x in xs}
    if len(sizes) != 1 or any(x.dim() != 4 for x in xs):
        raise ValueError("inputs must be N x C x H x W batches of one size")
    return list(zip(xs, ys))


def score(
    model: nn.Module,
    proxies: str | Sequence[str],
    inputs: Tensors,
    targets: Tensors | None = None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    space: str = "",
) -> dict[str, float]:
    """Each proxy's score of ``model`` on ``inputs`` (N x C x H x W; a list of such batches
    for proxies that read several) with ``targets`` (class indices, needed by proxies that
    read labels). ``settings`` overrides proxy settings by name, e.g.
    ``{"grasp": {"T": 2.0}}``; ``space`` names the registered search space whose
    ``proxy_constants`` fill the settings a proxy leaves to the space (epsinas's weights). The model's weights and mode are as they were afterwards.
    A proxy that raises raises here (RuntimeError naming it, the original as its cause)."""
    names = [proxies] if isinstance(proxies, str) else list(proxies)
    batches = _batches(inputs, targets)
    size = batches[0][0].shape[0]
    device = torch.device(device) if device is not None else next(model.parameters()).device
    constants = get_space(space).settings().get("proxy_constants", {}) if space else {}
    runs = []
    for name in names:
        proxy = get_proxy(name)
        wanted = dict((settings or {}).get(name, {}))
        if proxy.uses_images:
            wanted.update(batch_size=size, augment=False)
        run = ProxyRun(name, proxy.settings(wanted, space, constants))
        if proxy.uses_labels and targets is None:
            raise ValueError(f"{name} reads the labels: pass targets")
        if len(run.batches) > len(batches):
            raise ValueError(f"{name} reads {len(run.batches)} batches (num_batches); pass inputs as a list of as many")
        runs.append(run)
    fixed = {
        BatchSpec(size, False, k): (x.to(device), (y if y is not None else torch.zeros(size, dtype=torch.long)).to(device))
        for k, (x, y) in enumerate(batches)
    }
    was_training = model.training
    ctx = ScoringContext(model, fixed, tuple(batches[0][0].shape[1:]), 0, device)
    try:
        outcomes = run_proxies(ctx, runs, seed)
    finally:
        model.train(was_training)
    out = {}
    for o in outcomes:
        if o.status == "error":
            raise RuntimeError(f"{o.name} failed: {o.error}") from o.exception
        out[o.name] = float(o.score)  # type: ignore[arg-type]
    return out
