"""The NAS-Bench-201 supernet: every edge of every cell a weighted sum of the 5 operations.

Built as Zero-Cost-PT builds it for NAS-Bench-201 (Xiang et al. 2022, "Zero-Cost Operation
Scoring in Differentiable Architecture Search"; zerocostptnas/zerocost_operation_score at
commit 48f48c9, May 2022: ``nasbench201/search_model.py`` ``TinyNetwork``,
``search_model_darts_proj.py`` ``TinyNetworkDartsProj``, ``search_cells.py``
``NAS201SearchCell``, ``cell_operations.py``), which is DARTS-PT's NB201 supernet:

- the benchmark's macro structure (stem, 3 stages of ``cells_per_stage`` cells, residual
  reductions, head), built by ``NB201Network`` itself; only the cells differ;
- every edge holds all 5 operations of ``spaces.nb201.network`` (``make_op``), its
  convolutions' BatchNorm without affine parameters but with running statistics
  (``affine=False, track_running_stats=True``); stem, reductions and head keep affine
  BatchNorm, as in the reference;
- one 6 x 5 mixing-weight tensor (``mixing``; edge order of ``EDGES``, operation order of
  ``OPS``, both the reference's) shared by every cell, edge e's output being
  sum_k mixing[e, k] * op_k(x);
- an operation whose weight is exactly 0 gets a zero input (``block_input`` in the
  reference's ``_forward``): its output is 0 either way, but its ReLU then sees zeros,
  which is what activation proxies (NASWOT's kernel) read of it in the reference.

With one-hot weights the supernet computes what the cell's own network computes (same
weights, same outputs: tests/test_nb201_supernet.py); ``mixing`` is a non-persistent
buffer, so it follows ``.to(device)`` but stays out of ``state_dict``.
"""
from __future__ import annotations

import torch
from torch import nn

from spaces.nb201.network import EDGES, OPS, NB201Network, make_op


class MixedCell(nn.Module):
    """A cell whose six edges each hold every operation (``edges[e][k]`` = ``OPS[k]``)."""

    def __init__(self, channels: int, affine: bool = False) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, channels, affine=affine) for op in OPS) for _ in EDGES
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor, blocked: list[list[bool]]) -> torch.Tensor:
        """``weights``: 6 x 5 mixing weights; ``blocked[e][k]``: whether weights[e, k] == 0
        (read once per forward of the whole network, not per cell)."""
        nodes = [x]
        for target in (1, 2, 3):
            total: torch.Tensor | None = None
            for e, (tgt, source) in enumerate(EDGES):
                if tgt != target:
                    continue
                inp = nodes[source]
                for k, op in enumerate(self.edges[e]):
                    out = op(inp * 0 if blocked[e][k] else inp) * weights[e, k]
                    total = out if total is None else total + out
            nodes.append(total)  # type: ignore[arg-type]
        return nodes[3]


class NB201Supernet(NB201Network):
    """The supernet of Zero-Cost-PT / DARTS-PT on NAS-Bench-201 (module docstring).

    ``affine`` gives the cell operations' BatchNorms affine parameters (False in the
    reference); ``set_mixing`` sets the weights every cell mixes its operations with
    (uniform 1/5 until then)."""

    def __init__(self, num_classes: int, channels: int = 16, cells_per_stage: int = 5, affine: bool = False) -> None:
        super().__init__((), num_classes, channels, cells_per_stage, cell=lambda c_in: MixedCell(c_in, affine))
        self.register_buffer("mixing", torch.full((len(EDGES), len(OPS)), 1.0 / len(OPS)), persistent=False)

    def set_mixing(self, weights: torch.Tensor) -> None:
        """Use ``weights`` (6 x 5) from the next forward on."""
        if tuple(weights.shape) != (len(EDGES), len(OPS)):
            raise ValueError(f"mixing weights must be {len(EDGES)} x {len(OPS)}; got {tuple(weights.shape)}")
        with torch.no_grad():
            self.mixing.copy_(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.mixing
        blocked = (weights == 0).tolist()
        out = self.stem(x)
        for layer in self.cells:
            out = layer(out, weights, blocked) if isinstance(layer, MixedCell) else layer(out)
        out = self.lastact(out)
        return self.classifier(self.global_pooling(out).flatten(1))
