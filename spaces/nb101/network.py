"""The NAS-Bench-101 network of a cell, from nasbench-pytorch's ``Network``.

nasbench-pytorch (1.3.1) follows the benchmark's model builder (``nasbench/lib/
model_builder.py``): a 3x3 conv-BN-ReLU stem of 128 channels, 3 stacks of 3 modules with a
2x2 max-pool and doubled channels between stacks, global average pooling, a linear head;
in a module, vertex inputs are summed (the module input through a 1x1 projection), the
output concatenates the vertices that feed it, and ``compute_vertex_channels`` splits the
output channels among them. Its ``compute_vertex_channels`` is the benchmark's, line for
line. What this module adds:

* **Official vertex numbering.** The channel split depends on how the vertices are
  numbered (the remainder channels go to the lowest-numbered vertices that feed the output,
  and upstream vertices take the largest width they feed), while the module hash does not.
  The benchmark trained the numbering its generator met first (``nb101_cell.official_order``),
  which is how the cell table numbers every cell. Built from another numbering of the same
  hash, the network can be thousands of parameters off: the 30,001-cell sample table
  stores 847 cells in another numbering, 549 of which then build with -26,380 to +23,707
  parameters (median |difference| 4,623) against the benchmark's count. ``build_network``
  builds the numbering it is given; the space gives it the official one.
* **No dummy parameters.** nasbench-pytorch puts a ``Placeholder`` module holding a 0-dim
  parameter ``a`` in every unused op and projection slot (3 to 7 per module); they are
  replaced by parameter-free identities, so the trainable parameters are exactly those the
  benchmark counts (``trainable_parameters``: conv weights without bias, BatchNorm scale
  and shift, the dense head).
* **The feature map before pooling.** nasbench-pytorch pools with ``torch.mean`` in
  ``forward``, which no hook can see; ``NB101Network.forward_pre_GAP`` returns the last
  stack's output, the name Zen-NAS's models (idstcv/ZenNAS) give it, for zen.
* **BatchNorm momentum as the benchmark's.** The benchmark's BatchNorm decay is 0.997
  (TensorFlow convention); PyTorch's momentum is the weight of the new batch, 0.003.
  nasbench-pytorch passes 0.997 to some layers and 0.1 to others. This only changes
  running statistics, which scoring restores after every pass.

It never calls ``ModelSpec.hash_spec`` (it fails under numpy 2 because the spec's matrix is
a torch tensor; ``nb101_hash`` computes the hash) and never imports
``nasbench_pytorch.datasets`` (it imports torchvision).
"""
from __future__ import annotations

import torch
from nasbench_pytorch.model import Network
from nasbench_pytorch.model.model import Placeholder
from torch import nn

from spaces.nb101.cell import NB101Cell

#: the benchmark's BatchNorm decay (TensorFlow), as a PyTorch momentum
BN_MOMENTUM = 1.0 - 0.997
BN_EPSILON = 1e-5


class NB101Network(Network):
    """nasbench-pytorch's network, with the feature map before global pooling exposed."""

    def forward_pre_GAP(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (Zen-NAS's name)
        """The last stack's output, which ``forward`` averages over height and width."""
        for layer in self.layers:
            x = layer(x)
        return x


def build_network(
    cell: NB101Cell, num_classes: int = 10, stem_channels: int = 128, num_stacks: int = 3,
    modules_per_stack: int = 3,
) -> nn.Module:
    """The benchmark's network for ``cell`` in the numbering given, initialised from the
    torch RNG with nasbench-pytorch's initialisation (He normal convolutions, N(0, 0.01)
    head), which zero-cost-nas's NB101 model uses too."""
    net = NB101Network(
        (cell.array, list(cell.ops)), num_labels=num_classes, stem_out_channels=stem_channels,
        num_stacks=num_stacks, num_modules_per_stack=modules_per_stack,
    )
    _replace_modules(net, Placeholder, nn.Identity)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = BN_MOMENTUM
            module.eps = BN_EPSILON
    return net


def _replace_modules(root: nn.Module, kind: type, make: type) -> None:
    """Replace every submodule of type ``kind`` (under every name it is registered by)."""
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kind):
                setattr(parent, name, make())


def trainable_parameters(model: nn.Module) -> int:
    """Number of trainable parameters: the benchmark's ``trainable_parameters``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
