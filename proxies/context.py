"""The per-cell scoring context: one model, its fixed batches, and shared passes run once.

Proxies that need the same pass (the loss gradients of the weights, the ReLU activation
patterns, the input Jacobian) ask the context for it; the first asker pays for it and the
others reuse it. The gradient passes of one batch share a single forward pass whose
autograd graph is kept for the cell (``forward_graph``): the loss gradients, GraSP's
Hessian-gradient product and the input Jacobian are each one more backward through it.

After every pass and after every proxy, the model's parameters and buffers are put back to
their initial values, so no proxy sees another's side effects (BatchNorm running statistics
included). Buffers are restored by rebinding fresh copies rather than writing into the old
tensors, which a kept graph may have saved. Proxies that must transform the network
(synflow's absolute weights in float64) work on ``fresh_copy()``.

Timing: the context records how long each shared pass took (excluding the passes it used
in turn) and which passes a proxy used, directly or through another pass, so the scorer
can report both a proxy's own work and the shared cost it relied on.
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

from benchdata.batches import BatchSpec, require_images

Batch = tuple[torch.Tensor, torch.Tensor]


def batch_spec(params: Mapping[str, Any]) -> BatchSpec:
    """The batch a proxy's settings ask for (keys ``batch_size`` and ``augment``)."""
    return BatchSpec(size=int(params["batch_size"]), augment=bool(params["augment"]))


def batch_specs(params: Mapping[str, Any]) -> tuple[BatchSpec, ...]:
    """Every batch a proxy's settings ask for: ``num_batches`` successive batches (default
    1) of the size and augmentation of ``batch_spec``; the first is ``batch_spec`` itself."""
    first = batch_spec(params)
    return tuple(first.with_index(k) for k in range(int(params.get("num_batches", 1))))


def require_batches(proxy: str, params: Mapping[str, Any], available: int, dataset: str) -> None:
    """ValueError unless the batches proxy ``proxy``'s ``params`` ask for fit in
    ``available`` images: checked before ``batch_specs`` lists them, so that
    ``num_batches=10**9`` fails at once instead of filling memory."""
    try:
        require_images(available, dataset, batch_spec(params).size, int(params.get("num_batches", 1)))
    except ValueError as exc:
        knobs = "batch_size or num_batches" if "num_batches" in params else "batch_size"
        raise ValueError(f"proxy.{proxy}: {exc}: lower proxy.{proxy}.{knobs}, or give {dataset} more images") from None


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


@dataclass
class ForwardGraph:
    """One forward pass of a batch, kept with its autograd graph for later backward passes.

    ``x`` is the input (it requires grad, so the Jacobian is one backward away), ``logits``
    the output, ``layer_outputs`` every call of a measured layer (Conv2d/Linear) with the
    output it produced, in call order.
    """

    x: torch.Tensor
    logits: torch.Tensor
    layer_outputs: list[tuple[nn.Module, torch.Tensor]]


class ScoringContext:
    """Everything a proxy may read about one cell."""

    def __init__(
        self,
        model: nn.Module,
        batches: Mapping[BatchSpec, Batch],
        input_shape: tuple[int, ...],
        num_classes: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.batches = batches
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.device = device
        self._initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._cache: dict[tuple, Any] = {}
        self._deps: dict[tuple, set[tuple]] = {}
        self._computing: list[tuple[set[tuple], list[float]]] = []
        self.pass_seconds: dict[tuple, float] = {}
        self.used: set[tuple] = set()

    # -- bookkeeping --------------------------------------------------------------------
    def restore(self) -> None:
        """Put parameters and buffers back to their initial values; clear gradients.

        Changed buffers (BatchNorm running statistics) get fresh tensors; a parameter that
        a proxy changed in place is written back, and kept graphs, now stale, are dropped."""
        with torch.no_grad():
            for prefix, module in self.model.named_modules():
                for name, buf in module._buffers.items():
                    initial = self._initial.get(f"{prefix}.{name}" if prefix else name)
                    if buf is not None and initial is not None and not torch.equal(buf, initial):
                        module._buffers[name] = initial.clone()
            changed = False
            for name, param in self.model.named_parameters():
                if not torch.equal(param, self._initial[name]):
                    param.copy_(self._initial[name])
                    changed = True
        if changed:
            for key in [k for k in self._cache if k[0] == "forward"]:
                del self._cache[key]
        self.model.zero_grad(set_to_none=True)

    def fresh_copy(self) -> nn.Module:
        """An independent copy of the model with its initial weights, for proxies that
        transform the network."""
        clone = copy.deepcopy(self.model)
        clone.load_state_dict(self._initial)
        clone.zero_grad(set_to_none=True)
        return clone

    def shared(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The result of a shared pass, computed on first use; marks it, and the passes it
        was built on, used by the caller."""
        if key not in self._cache:
            deps: set[tuple] = set()
            inner = [0.0]
            self._computing.append((deps, inner))
            start = time.perf_counter()
            try:
                self._cache[key] = compute()
            finally:
                self.restore()
                self._computing.pop()
                elapsed = time.perf_counter() - start
                self.pass_seconds[key] = elapsed - inner[0]
                self._deps[key] = deps
                if self._computing:
                    self._computing[-1][1][0] += elapsed
        self._mark_used(key)
        return self._cache[key]

    def _mark_used(self, key: tuple) -> None:
        for target in [self.used, *(deps for deps, _ in self._computing)]:
            target.add(key)
            target.update(self._all_deps(key))

    def _all_deps(self, key: tuple) -> set[tuple]:
        out: set[tuple] = set()
        for dep in self._deps.get(key, ()):
            out.add(dep)
            out |= self._all_deps(dep)
        return out

    def batch(self, spec: BatchSpec) -> Batch:
        """The fixed batch for ``spec`` (already on the device)."""
        try:
            return self.batches[spec]
        except KeyError:
            raise KeyError(f"no fixed batch {spec} was prepared for this job") from None

    # -- shared passes ------------------------------------------------------------------
    def forward_graph(self, spec: BatchSpec, mode: str = "train") -> ForwardGraph:
        """One forward of the batch, input requiring grad, graph kept for the cell."""

        def compute() -> ForwardGraph:
            x, _ = self.batch(spec)
            return self._hooked_forward(x.detach().clone().requires_grad_(True), mode)

        return self.shared(("forward", spec, mode), compute)

    def loss_gradients(self, spec: BatchSpec, mode: str = "train") -> list[LayerGrad]:
        """Cross-entropy loss on the batch, one backward: weight, gradient and per-channel
        Fisher estimate per measured layer. Serves grad_norm, snip, plain, fisher and the
        per-weight gradient statistics (zico, xi_gsnr).

        The first batch of a setting backs up through the kept ``forward_graph``; the later
        batches of multi-batch proxies run a forward of their own that is not kept."""

        def compute() -> list[LayerGrad]:
            _, y = self.batch(spec)
            graph = self.forward_graph(spec, mode) if spec.index == 0 else self._forward_once(spec, mode)
            layers = weight_layers(self.model)
            tracked = [(layer, out) for layer, out in graph.layer_outputs if out.requires_grad]
            loss = F.cross_entropy(graph.logits, y)
            grads = torch.autograd.grad(
                loss, [layer.weight for layer in layers] + [out for _, out in tracked],
                retain_graph=spec.index == 0, allow_unused=True,
            )
            fisher: dict[nn.Module, torch.Tensor] = {}
            for (layer, out), grad in zip(tracked, grads[len(layers):]):
                if grad is not None:
                    value = _channel_fisher(out.detach(), grad)
                    fisher[layer] = fisher[layer] + value if layer in fisher else value
            return [
                LayerGrad(
                    layer.weight.detach().clone(),
                    grad.detach() if grad is not None else torch.zeros_like(layer.weight),
                    fisher.get(layer, layer.weight.new_zeros(layer.weight.shape[0])),
                )
                for layer, grad in zip(layers, grads[: len(layers)])
            ]

        return self.shared(("loss_gradients", spec, mode), compute)

    def _forward_once(self, spec: BatchSpec, mode: str) -> ForwardGraph:
        """Like ``forward_graph`` but neither cached nor counted as a pass of its own, and
        without a gradient for the input."""
        return self._hooked_forward(self.batch(spec)[0], mode)

    def _hooked_forward(self, x: torch.Tensor, mode: str) -> ForwardGraph:
        """A forward of ``x`` in ``mode`` that records each measured layer's output."""
        set_mode(self.model, mode)
        outputs: list[tuple[nn.Module, torch.Tensor]] = []
        handles = [
            layer.register_forward_hook(lambda layer, _i, out: outputs.append((layer, out)))
            for layer in weight_layers(self.model)
        ]
        try:
            logits = self.model(x)
        finally:
            for h in handles:
                h.remove()
        return ForwardGraph(x, logits, outputs)

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
        """Gradient of the sum of the logits with respect to each input image, N x D: one
        backward through the kept ``forward_graph``."""

        def compute() -> torch.Tensor:
            graph = self.forward_graph(spec, mode)
            (grad,) = torch.autograd.grad(
                graph.logits, graph.x, torch.ones_like(graph.logits), retain_graph=True
            )
            return grad.detach().reshape(graph.x.shape[0], -1)

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
            calls: list[tuple[Any, torch.Tensor]] = []
            patterns: list[np.ndarray] = []

            def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                codes = (inputs[0].detach().reshape(inputs[0].shape[0], -1) > 0).to(torch.float32)
                # c c^T + (1-c)(1-c)^T = 2 c c^T - s_i - s_j + D with s = row sums: one
                # product instead of two; float32 counts are exact below 2^24 units.
                active = codes.sum(dim=1)
                agree = 2.0 * (codes @ codes.T) - active[:, None] - active[None, :] + codes.shape[1]
                calls.append((output.grad_fn, agree))  # the node, not the activation
                if inputs[0].dim() == 4:  # TENAS counts the ReLUs of feature maps only
                    patterns.append(pack_codes(codes))

            handles = [
                m.register_forward_hook(hook) for m in self.model.modules() if isinstance(m, nn.ReLU)
            ]
            try:
                # Only the graph's shape is read, never a backward: the tensors autograd
                # would save for one are dropped, so this pass needs no more memory than
                # an inference forward.
                with torch.autograd.graph.saved_tensors_hooks(_drop_saved, _no_backward):
                    out = self.model(x)
            finally:
                for h in handles:
                    h.remove()
            # A ReLU counts only if its output reaches the logits, as in the reference,
            # which counts the ReLUs its backward pass visits: walk the autograd graph.
            reached = _graph_nodes(out)
            kernel = np.zeros((x.shape[0], x.shape[0]), dtype=np.float64)
            for node, agree in calls:
                if node is not None and node in reached:
                    kernel += agree.cpu().numpy().astype(np.float64)
            return ReluPass(kernel, join_patterns(patterns, x.shape[0]))

        return self.shared(("relu_pass", spec, mode), compute)


def _drop_saved(_tensor: torch.Tensor) -> None:
    return None


def _no_backward(_packed: None) -> torch.Tensor:
    raise RuntimeError("the ReLU pass keeps the graph's shape only; it cannot be backpropagated")


def join_patterns(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Concatenate packed code blocks along the units; N x 0 when no ReLU ran."""
    return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), dtype=np.uint8)


def _channel_fisher(act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per output channel: 0.5 * mean over the batch of (sum over positions of activation *
    d loss / d activation)^2 (zero-cost-nas fisher.py)."""
    if act.dim() > 2:  # sum over positions; vecdot avoids the N x C x H x W product
        per_sample = torch.linalg.vecdot(act.flatten(2), grad.flatten(2))
    else:
        per_sample = act * grad
    return per_sample.pow(2).mean(0).mul(0.5)


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
