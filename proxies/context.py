"""The per-cell scoring context: one model, its fixed batches, and shared passes run once.

Proxies that need the same pass (the loss gradients of the weights, the ReLU activation
patterns, the input Jacobian) ask the context for it; the first asker pays for it and the
others reuse it. After every pass and after every proxy, the model's parameters and buffers
are put back to their initial values, so no proxy sees another's side effects (BatchNorm
running statistics included). Proxies that must transform the network (synflow's absolute
weights in float64) work on ``fresh_copy()``.

Timing: the context records how long each shared pass took and which passes a proxy used,
so the scorer can report both a proxy's own work and the shared cost it relied on.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spaces.batches import BatchSpec

Batch = tuple[torch.Tensor, torch.Tensor]


def batch_spec(params: Mapping[str, Any]) -> BatchSpec:
    """The batch a proxy's settings ask for (keys ``batch_size`` and ``augment``)."""
    return BatchSpec(size=int(params["batch_size"]), augment=bool(params["augment"]))


def batch_specs(params: Mapping[str, Any]) -> tuple[BatchSpec, ...]:
    """Every batch a proxy's settings ask for: ``num_batches`` successive batches (default
    1) of the size and augmentation of ``batch_spec``; the first is ``batch_spec`` itself."""
    first = batch_spec(params)
    return tuple(first.with_index(k) for k in range(int(params.get("num_batches", 1))))


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Conv2d and Linear layers in module order: the layers zero-cost-nas measures
    (``get_layer_metric_array`` in foresight/pruners/p_utils.py)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def set_mode(model: nn.Module, mode: str) -> None:
    """``train`` (BatchNorm uses batch statistics) or ``eval`` (running statistics)."""
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
    model.train(mode == "train")


@dataclass
class ReluPass:
    """What one hooked forward pass records at the ReLUs (see ``ScoringContext.relu_pass``).

    ``kernel``: NASWOT's K over the ReLUs on a path to the output. ``patterns``: one row per
    input, the binary codes (unit active or not) of every ReLU whose input is 4-D,
    concatenated in call order and packed 8 units per byte (``np.packbits``): two inputs
    share a linear region of the network exactly when their rows are equal.
    """

    kernel: np.ndarray
    patterns: np.ndarray


def pack_codes(codes: torch.Tensor) -> np.ndarray:
    """N x D boolean (or 0/1) codes as N x ceil(D/8) bytes, for exact row comparisons."""
    return np.packbits(codes.detach().to("cpu", torch.bool).numpy(), axis=1)


@dataclass
class LayerGrad:
    """A measured layer's weight and the gradient of the loss with respect to it.

    ``fisher`` holds, per output channel k, 0.5 * mean over the batch of (sum over output
    positions of activation * d loss / d activation)^2, the activation being the layer's
    output: zero-cost-nas fisher.py's per-channel Fisher estimate (zeros where no gradient
    reached the layer; summed over calls if the layer runs more than once).
    """

    weight: torch.Tensor
    grad: torch.Tensor
    fisher: torch.Tensor | None = None


class ScoringContext:
    """Everything a proxy may read about one cell."""

    def __init__(
        self,
        model: nn.Module,
        batches: Mapping[BatchSpec, Batch],
        input_shape: tuple[int, ...],
        num_classes: int,
        device: torch.device,
        space: str = "",
    ) -> None:
        self.model = model
        #: the search space's name, for proxies whose reference settings differ per space
        self.space = space
        self.batches = batches
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.device = device
        self._initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._cache: dict[tuple, Any] = {}
        self.pass_seconds: dict[tuple, float] = {}
        self.used: set[tuple] = set()

    # -- bookkeeping --------------------------------------------------------------------
    def restore(self) -> None:
        """Put parameters and buffers back to their initial values; clear gradients."""
        self.model.load_state_dict(self._initial)
        self.model.zero_grad(set_to_none=True)

    def fresh_copy(self) -> nn.Module:
        """An independent copy of the model with its initial weights, for proxies that
        transform the network."""
        clone = copy.deepcopy(self.model)
        clone.load_state_dict(self._initial)
        clone.zero_grad(set_to_none=True)
        return clone

    def shared(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The result of a shared pass, computed on first use; marks it used by the caller."""
        self.used.add(key)
        if key not in self._cache:
            start = time.perf_counter()
            try:
                self._cache[key] = compute()
            finally:
                self.restore()
                self.pass_seconds[key] = time.perf_counter() - start
        return self._cache[key]

    def batch(self, spec: BatchSpec) -> Batch:
        """The fixed batch for ``spec`` (already on the device)."""
        try:
            return self.batches[spec]
        except KeyError:
            raise KeyError(f"no fixed batch {spec} was prepared for this job") from None

    # -- shared passes ------------------------------------------------------------------
    def loss_gradients(self, spec: BatchSpec, mode: str = "train") -> list[LayerGrad]:
        """Cross-entropy loss on the batch, one forward and one backward: weight, gradient
        and per-channel Fisher estimate per measured layer. Serves grad_norm, snip, plain,
        fisher and the per-weight gradient statistics (zico, xi_gsnr)."""

        def compute() -> list[LayerGrad]:
            x, y = self.batch(spec)
            set_mode(self.model, mode)
            self.model.zero_grad(set_to_none=True)
            layers = weight_layers(self.model)
            fisher: dict[nn.Module, torch.Tensor] = {}
            handles = [layer.register_forward_hook(_fisher_hook(fisher)) for layer in layers]
            try:
                F.cross_entropy(self.model(x), y).backward()
            finally:
                for h in handles:
                    h.remove()
            return [
                LayerGrad(
                    layer.weight.detach().clone(),
                    layer.weight.grad.detach().clone()
                    if layer.weight.grad is not None
                    else torch.zeros_like(layer.weight),
                    fisher.get(layer, layer.weight.new_zeros(layer.weight.shape[0])),
                )
                for layer in layers
            ]

        return self.shared(("loss_gradients", spec, mode), compute)

    def sample_kernel(
        self, spec: BatchSpec, mode: str, output: str, parameters: str, method: str
    ) -> torch.Tensor:
        """The empirical NTK of the batch, float64 N x N: Theta[i, j] = g_i . g_j with g_i the
        gradient of sample i's scalar output (``output``) with respect to the chosen
        ``parameters``, formed by ``method``; see proxies/per_sample.py. ntk_cond and
        ntk_trace_norm share it when their settings match."""
        from proxies.per_sample import sample_kernel

        def compute() -> torch.Tensor:
            x, y = self.batch(spec)
            set_mode(self.model, mode)
            self.model.zero_grad(set_to_none=True)
            return sample_kernel(self.model, x, y, output, parameters, method)

        return self.shared(("sample_kernel", spec, mode, output, parameters, method), compute)

    def input_jacobian(self, spec: BatchSpec, mode: str = "train") -> torch.Tensor:
        """Gradient of the sum of the logits with respect to each input image, N x D."""

        def compute() -> torch.Tensor:
            x, _ = self.batch(spec)
            x = x.detach().clone().requires_grad_(True)
            set_mode(self.model, mode)
            out = self.model(x)
            out.backward(torch.ones_like(out))
            return x.grad.detach().reshape(x.shape[0], -1)

        return self.shared(("input_jacobian", spec, mode), compute)

    def relu_kernel(self, spec: BatchSpec, mode: str = "train") -> np.ndarray:
        """NASWOT's kernel K[i, j]: over all ReLU units on a path to the output, how many
        agree on being active for inputs i and j (units minus Hamming distance), float64."""
        return self.relu_pass(spec, mode).kernel

    def relu_pass(self, spec: BatchSpec, mode: str = "train") -> ReluPass:
        """One forward of the batch with hooks at every nn.ReLU, shared by the activation
        proxies that read the same batch in the same mode (naswot, linear_regions)."""

        def compute() -> ReluPass:
            x, _ = self.batch(spec)
            # The reference's backward pass starts from an input that requires grad.
            x = x.detach().clone().requires_grad_(True)
            set_mode(self.model, mode)
            calls: list[tuple[torch.Tensor, torch.Tensor]] = []
            patterns: list[np.ndarray] = []

            def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                codes = (inputs[0].detach().reshape(inputs[0].shape[0], -1) > 0).to(torch.float32)
                # c c^T + (1-c)(1-c)^T = 2 c c^T - s_i - s_j + D with s = row sums: one
                # product instead of two; float32 counts are exact below 2^24 units.
                active = codes.sum(dim=1)
                agree = 2.0 * (codes @ codes.T) - active[:, None] - active[None, :] + codes.shape[1]
                calls.append((output, agree))
                if inputs[0].dim() == 4:  # TENAS counts the ReLUs of feature maps only
                    patterns.append(pack_codes(codes))

            handles = [
                m.register_forward_hook(hook) for m in self.model.modules() if isinstance(m, nn.ReLU)
            ]
            try:
                out = self.model(x)
            finally:
                for h in handles:
                    h.remove()
            # A ReLU counts only if its output reaches the logits, as in the reference,
            # which counts the ReLUs its backward pass visits: walk the autograd graph.
            reached = _graph_nodes(out)
            kernel = np.zeros((x.shape[0], x.shape[0]), dtype=np.float64)
            for output, agree in calls:
                if output.grad_fn is not None and output.grad_fn in reached:
                    kernel += agree.cpu().numpy().astype(np.float64)
            return ReluPass(kernel, join_patterns(patterns, x.shape[0]))

        return self.shared(("relu_pass", spec, mode), compute)


def join_patterns(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Concatenate packed code blocks along the units; N x 0 when no ReLU ran."""
    return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), dtype=np.uint8)


def _fisher_hook(fisher: dict[nn.Module, torch.Tensor]) -> Callable:
    """A forward hook that, once the gradient of the layer's output is known, adds the
    layer's per-channel Fisher estimate (see ``LayerGrad``) to ``fisher[layer]``."""

    def hook(layer: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if not output.requires_grad:
            return
        act = output.detach()

        def on_grad(grad: torch.Tensor) -> None:
            if act.dim() > 2:  # sum over positions; vecdot avoids the N x C x H x W product
                per_sample = torch.linalg.vecdot(act.flatten(2), grad.flatten(2))
            else:
                per_sample = act * grad
            value = per_sample.pow(2).mean(0).mul(0.5)
            fisher[layer] = fisher[layer] + value if layer in fisher else value

        output.register_hook(on_grad)

    return hook


def _graph_nodes(output: torch.Tensor) -> set:
    """Every autograd node a backward pass from ``output`` would visit."""
    seen: set = set()
    stack = [output.grad_fn] if output.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return seen
