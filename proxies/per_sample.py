"""Per-sample gradients of a batch and the empirical NTK they span.

The NTK proxies disagree on what "the gradient of sample i" is, and the choices are
settings (each proxy's config holds its reference's choice):

``output``, the scalar per sample whose gradient is taken:
  - ``logit_sum``: the sum of the sample's logits (TE-NAS ``get_ntk_n``, which back-propagates
    a row of ones from each sample's logits);
  - ``label_logit``: the logit of the sample's label (HNAS ``ntk_trace``/``condnum``, which
    back-propagate ``sum(outputs[arange(N), targets])``).

``parameters``, which parameters the gradient covers:
  - ``weights``: every parameter whose name contains ``weight`` (TE-NAS): Conv2d and Linear
    weights and the BatchNorm scales;
  - ``conv_linear``: the weights and biases of every Conv2d and Linear layer (HNAS, whose
    ``autograd_hacks`` knows only those two layer types).

``method``, how the per-sample gradients are formed:
  - ``jacobian``: one forward of the whole batch, then the exact gradient of each sample's
    scalar through that batched graph (TE-NAS, one backward per sample). With BatchNorm on
    batch statistics the samples are coupled, and row i also carries what sample i's output
    owes to the other samples through the batch mean and variance. Rows are computed in
    chunks with ``is_grads_batched`` (vmap over the backward pass): the same values as one
    backward per sample, about 20% faster on one CPU thread (chunks of 8; larger chunks
    were slower there).
  - ``layer_local``: one backward of the sum of the scalars; at each layer, sample i's
    gradient is its back-propagated signal at the layer's output times its own input to
    the layer (HNAS ``autograd_hacks.compute_grad1``): one backward in all. It equals
    ``jacobian`` exactly when the samples do not interact (BatchNorm on running statistics,
    eval mode); in train mode it drops the cross-sample BatchNorm terms, as HNAS does.

Gradients stay in the model's dtype (float32, as both references); each parameter tensor's
Gram block is formed in that dtype and the blocks are summed in float64 (the references
multiply one concatenated float32 matrix). Memory: the ``jacobian`` method holds every
sample's full gradient (N x P values) before the product; ``layer_local`` one layer at a time.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

OUTPUTS = ("logit_sum", "label_logit")
PARAMETER_SETS = ("weights", "conv_linear")
METHODS = ("jacobian", "layer_local")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def per_sample_scalars(logits: torch.Tensor, labels: torch.Tensor, output: str) -> torch.Tensor:
    """The N scalars whose gradients are taken, one per sample."""
    if check_choice("output", output, OUTPUTS) == "logit_sum":
        return logits.reshape(logits.shape[0], -1).sum(dim=1)
    return logits.gather(1, labels.reshape(-1, 1)).squeeze(1)


def selected_parameters(model: nn.Module, parameters: str) -> list[tuple[nn.Module, str, nn.Parameter]]:
    """(owning module, attribute name, parameter) for each parameter the gradient covers,
    in module order, each parameter once."""
    check_choice("parameters", parameters, PARAMETER_SETS)
    chosen: list[tuple[nn.Module, str, nn.Parameter]] = []
    seen: set[int] = set()
    for prefix, module in model.named_modules():
        for attr, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            if parameters == "weights":  # TE-NAS tests the full dotted name
                keep = "weight" in f"{prefix}.{attr}"
            else:
                keep = isinstance(module, (nn.Conv2d, nn.Linear)) and attr in ("weight", "bias")
            if keep:
                seen.add(id(param))
                chosen.append((module, attr, param))
    return chosen


def sample_kernel(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, output: str, parameters: str, method: str
) -> torch.Tensor:
    """Theta[i, j] = g_i . g_j (float64, N x N) for the per-sample gradients g_i chosen by
    ``output``, ``parameters`` and ``method`` (see the module docstring)."""
    chosen = selected_parameters(model, parameters)
    if check_choice("method", method, METHODS) == "jacobian":
        blocks = _jacobian_blocks(model, x, y, output, [p for _, _, p in chosen])
    else:
        blocks = _layer_local_blocks(model, x, y, output, chosen)
    theta = torch.zeros((x.shape[0], x.shape[0]), dtype=torch.float64, device=x.device)
    for block in blocks:
        flat = block.reshape(block.shape[0], -1)
        theta += (flat @ flat.T).double()
    return theta


def _chunk_size(device: torch.device) -> int:
    """Samples per vmapped backward: measured fastest on one CPU thread around 8 for
    NB201; a GPU keeps busy with more."""
    return 32 if device.type == "cuda" else 8


def _jacobian_blocks(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, output: str, params: list[nn.Parameter]
) -> Iterator[torch.Tensor]:
    """Per parameter, the N x shape gradients of each sample's scalar through the batched
    graph; parameters the scalars do not reach are left out (their rows are zero)."""
    scalars = per_sample_scalars(model(x), y, output)
    n = scalars.shape[0]
    eye = torch.eye(n, dtype=scalars.dtype, device=scalars.device)
    step = _chunk_size(x.device)
    chunks: list[tuple[torch.Tensor | None, ...]] = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        chunks.append(torch.autograd.grad(
            scalars, params, grad_outputs=eye[start:stop], is_grads_batched=True,
            retain_graph=stop < n, allow_unused=True,
        ))
    for k in range(len(params)):
        # whether a parameter is reached depends on the graph, not on the chunk
        if chunks[0][k] is not None:
            yield torch.cat([chunk[k] for chunk in chunks])


def _layer_local_blocks(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, output: str,
    chosen: list[tuple[nn.Module, str, nn.Parameter]],
) -> Iterator[torch.Tensor]:
    """Per parameter, sample i's back-propagated signal at the layer output times its
    input to the layer, from one backward of the sum of the scalars."""
    wanted: dict[nn.Module, list[str]] = {}
    for module, attr, _ in chosen:
        if not isinstance(module, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            raise ValueError(
                f"method layer_local knows Conv2d, Linear and BatchNorm layers, not "
                f"{type(module).__name__} (parameter {attr!r}); use method jacobian"
            )
        wanted.setdefault(module, []).append(attr)
    calls: dict[nn.Module, list[dict]] = {m: [] for m in wanted}

    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if not out.requires_grad:
            return
        call = {"input": _layer_input(module, inputs[0].detach())}
        calls[module].append(call)
        out.register_hook(lambda grad: call.__setitem__("grad", grad.detach()))

    handles = [m.register_forward_hook(hook) for m in wanted]
    try:
        per_sample_scalars(model(x), y, output).sum().backward()
    finally:
        for h in handles:
            h.remove()
    for module, attrs in wanted.items():
        reached = [c for c in calls[module] if "grad" in c]
        if not reached:
            continue
        for attr in attrs:
            yield sum(_layer_sample_grads(module, attr, c["input"], c["grad"]) for c in reached)


def _layer_input(module: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """What a layer's per-sample gradient needs from the forward pass: the input itself,
    or for BatchNorm the normalised input (by batch or running statistics, as it ran)."""
    if not isinstance(module, nn.modules.batchnorm._BatchNorm):
        return a
    batch_stats = module.training or module.running_mean is None
    return F.batch_norm(
        a, None if batch_stats else module.running_mean, None if batch_stats else module.running_var,
        training=batch_stats, eps=module.eps,
    )


def _layer_sample_grads(module: nn.Module, attr: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """N x shape per-sample gradients of one call of a layer from its input ``a`` (the
    normalised input for BatchNorm) and the gradient ``b`` of its output."""
    n = a.shape[0]
    if isinstance(module, nn.Linear):
        a2, b2 = a.reshape(n, -1, a.shape[-1]), b.reshape(n, -1, b.shape[-1])
        return torch.einsum("nto,nti->noi", b2, a2) if attr == "weight" else b2.sum(dim=1)
    if isinstance(module, nn.Conv2d):
        if attr == "bias":
            return b.sum(dim=(2, 3))
        return _conv_weight_sample_grads(module, a, b)
    # BatchNorm: out = scale * normalised + shift, per channel
    per_position = b * a if attr == "weight" else b
    return per_position.sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else per_position


def _conv_weight_sample_grads(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample Conv2d weight gradients by unfolding the input into patches: for sample
    i and group g, grad = b_i,g @ patches_i,g^T. (A vmap of the weight vjp gives the same
    and is 18x slower on CPU.)"""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("method layer_local needs Conv2d with numeric zero padding")
    n, groups = a.shape[0], conv.groups
    patches = F.unfold(a, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
    patches = patches.reshape(n, groups, -1, patches.shape[-1])
    signal = b.reshape(n, groups, b.shape[1] // groups, -1)
    return torch.einsum("ngol,ngil->ngoi", signal, patches).reshape(n, *conv.weight.shape)
