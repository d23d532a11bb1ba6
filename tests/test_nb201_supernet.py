"""The NB201 supernet (spaces/nb201/supernet.py): with one-hot mixing weights and the
cell's own network's weights copied in, it computes that network's outputs, in train and
eval mode, on real CIFAR-10 images; hand-derivable cases of the weighted sum."""
from __future__ import annotations

import functools

import pytest
import torch
from conftest import data_file
from torch import nn

from benchdata.batches import BatchSpec, draw_batch
from benchdata.images import read_images
from spaces.nb201.network import EDGES, OPS, NB201Network
from spaces.nb201.supernet import MixedCell, NB201Supernet

pytestmark = pytest.mark.shared_data

CELLS = [
    ("nor_conv_3x3",) * 6,
    # the NB201 optimum on CIFAR-10
    ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"),
    # every operation, 'none' included
    ("avg_pool_3x3", "none", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "none"),
]


def one_hot(ops: tuple[str, ...]) -> torch.Tensor:
    weights = torch.zeros(len(EDGES), len(OPS))
    for e, op in enumerate(ops):
        weights[e, OPS.index(op)] = 1.0
    return weights


def copy_into_supernet(network: NB201Network, supernet: NB201Supernet, ops: tuple[str, ...]) -> None:
    """Every parameter and buffer of the cell's network into the supernet: a cell edge's
    ``cells.i.edges.e.rest`` is the supernet's ``cells.i.edges.e.k.rest`` with k the index
    of the edge's operation; the rest keeps its name. The supernet's BatchNorms without
    affine parameters take no weight or bias (the test sets them to identity)."""
    target = supernet.state_dict()
    loaded = 0
    for name, value in network.state_dict().items():
        parts = name.split(".")
        if parts[0] == "cells" and parts[2] == "edges":
            parts.insert(4, str(OPS.index(ops[int(parts[3])])))
        key = ".".join(parts)
        if key in target:
            target[key] = value.clone()
            loaded += 1
        else:  # only affine BatchNorm parameters may lack a place
            assert isinstance(network.get_submodule(name.rsplit(".", 1)[0]), nn.BatchNorm2d), name
    supernet.load_state_dict(target)
    assert loaded > 0


@functools.lru_cache(maxsize=None)
def real_batch(size: int = 16) -> torch.Tensor:
    torch.set_num_threads(1)
    images, labels = read_images(data_file("cifar10_sample.npz"), "cifar10")
    return draw_batch(images, labels, "cifar10", 0, BatchSpec(size, False))[0]


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("ops", CELLS)
def test_one_hot_supernet_is_the_cell_network(ops: tuple[str, ...], affine: bool) -> None:
    """Same weights, same outputs: train mode (batch statistics, running statistics then
    updated alike), then eval mode (those running statistics). With ``affine=False`` (the
    reference's supernet) the cell network's BatchNorm affine parameters are identity; with
    ``affine=True`` every BatchNorm gets random scale, shift and running statistics first."""
    torch.manual_seed(0)
    network = NB201Network(ops, 10)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                if affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
                    module.running_mean.uniform_(-0.2, 0.2)
                    module.running_var.uniform_(0.5, 2.0)
                else:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
    supernet = NB201Supernet(10, affine=affine)
    copy_into_supernet(network, supernet, ops)
    supernet.set_mixing(one_hot(ops))
    x = real_batch()
    with torch.no_grad():
        network.train()
        supernet.train()
        torch.testing.assert_close(supernet(x), network(x), rtol=1e-6, atol=1e-6)
        mine = dict(supernet.state_dict())
        for name, value in network.state_dict().items():  # the running statistics moved alike
            if name.endswith(("running_mean", "running_var")) and ".edges." not in name:
                torch.testing.assert_close(mine[name], value, rtol=1e-6, atol=1e-7)
        network.eval()
        supernet.eval()
        torch.testing.assert_close(supernet(x), network(x), rtol=1e-6, atol=1e-6)


def test_an_edge_with_zero_weights_contributes_nothing() -> None:
    """A zeroed edge is a 'none' edge: the supernet with edge (3, 1) all zero and the
    others one-hot equals the one-hot supernet of the cell with 'none' there."""
    torch.manual_seed(0)
    supernet = NB201Supernet(10, channels=4, cells_per_stage=2).eval()
    ops = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3", "skip_connect")
    zeroed = one_hot(ops)
    zeroed[EDGES.index((3, 1))] = 0.0
    x = real_batch(8)
    with torch.no_grad():
        supernet.set_mixing(zeroed)
        out_zeroed = supernet(x)
        supernet.set_mixing(one_hot(ops[:4] + ("none",) + ops[5:]))
        out_none = supernet(x)
    torch.testing.assert_close(out_zeroed, out_none, rtol=0, atol=0)


def test_all_edges_zero_gives_the_classifier_bias() -> None:
    """Every edge zero: every cell outputs 0, so does every reduction block (no bias; the
    BatchNorm of a zero input is 0, its shift 0 at init) and the head's BatchNorm + ReLU:
    the logits are the classifier's bias, for every image, in both modes."""
    torch.manual_seed(0)
    supernet = NB201Supernet(10, channels=4, cells_per_stage=1)
    supernet.set_mixing(torch.zeros(len(EDGES), len(OPS)))
    x = real_batch(4)
    for train in (True, False):
        supernet.train(train)
        with torch.no_grad():
            out = supernet(x)
        torch.testing.assert_close(out, supernet.classifier.bias.expand(4, 10), rtol=0, atol=0)


def test_mixed_cell_is_the_weighted_sum() -> None:
    """Node 1 = 0.5 x (half a skip on edge 1<-0); node 3 reads node 1 by a skip on edge 3<-1
    and 0.25 of an average pool of x on 3<-0 (3x3 window, padding not counted); every other
    weight 0: the cell outputs 0.5 x + 0.25 avgpool(x)."""
    cell = MixedCell(3)
    weights = torch.zeros(len(EDGES), len(OPS))
    weights[EDGES.index((1, 0)), OPS.index("skip_connect")] = 0.5
    weights[EDGES.index((3, 1)), OPS.index("skip_connect")] = 1.0
    weights[EDGES.index((3, 0)), OPS.index("avg_pool_3x3")] = 0.25
    x = torch.randn(2, 3, 5, 5)
    pooled = nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    out = cell(x, weights, (weights == 0).tolist())
    torch.testing.assert_close(out, 0.5 * x + 0.25 * pooled, rtol=1e-6, atol=1e-7)


def test_a_zeroed_operation_sees_a_zero_input() -> None:
    """As the reference's ``block_input``: the ReLU of an operation whose weight is 0 reads
    zeros, that of a weighted one the node's input."""
    cell = MixedCell(3)
    weights = torch.full((len(EDGES), len(OPS)), 0.2)
    weights[0, OPS.index("nor_conv_3x3")] = 0.0
    seen: dict[str, torch.Tensor] = {}
    for op in ("nor_conv_1x1", "nor_conv_3x3"):
        relu = cell.edges[0][OPS.index(op)][0]
        relu.register_forward_hook(lambda _m, inp, _o, op=op: seen.__setitem__(op, inp[0]))
    x = torch.randn(2, 3, 4, 4)
    cell(x, weights, (weights == 0).tolist())
    assert torch.equal(seen["nor_conv_3x3"], torch.zeros_like(x))
    assert torch.equal(seen["nor_conv_1x1"], x)


def test_mixing_weights_follow_the_module_but_not_its_state() -> None:
    supernet = NB201Supernet(10, channels=4, cells_per_stage=1)
    assert "mixing" not in supernet.state_dict()
    assert torch.equal(supernet.mixing, torch.full((6, 5), 0.2))
    with pytest.raises(ValueError, match="6 x 5"):
        supernet.set_mixing(torch.zeros(5, 6))
    # the standalone network is built as before: the benchmark's parameter count
    assert sum(p.numel() for p in NB201Network(("nor_conv_3x3",) * 6, 10).parameters()) == 1_531_546
