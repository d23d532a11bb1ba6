"""The optional space hook that builds other networks of a cell (spaces.base.NetworkVariant):
NB201's TE-NAS thin networks and zero-cost-nas's copy, counted by hand from the layer
definitions; NB101's refusal; the one-line stop at the settings check, before Ray."""
from __future__ import annotations

import pytest
import torch
from conftest import make_config
from torch import nn

from orchestrator.errors import SweepError
from orchestrator.settings import load_settings
from spaces import make_space
from spaces.base import NetworkVariant, require_variant

# nor_conv_3x3 on 0->1 and 2->3, nor_conv_1x1 on 0->2, skip, avg_pool and none elsewhere
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
TENAS_NTK = NetworkVariant(channels=3, cells_per_stage=1)
TENAS_REGIONS = NetworkVariant(channels=1, cells_per_stage=1, depth=1, stem=False)


def nb201():
    return make_space("nb201", {"truth": {}})


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def cell_params(c: int) -> int:
    """ARCH's cell at C channels: two 3x3 ReLU-conv-BN (9C^2 weights + 2C BatchNorm each)
    and one 1x1 (C^2 + 2C): 19C^2 + 6C."""
    return 2 * (9 * c * c + 2 * c) + (c * c + 2 * c)


def reduction_params(c: int) -> int:
    """Residual reduction C -> 2C: 3x3 conv C->2C + BN (18C^2 + 4C), 3x3 conv 2C->2C + BN
    (36C^2 + 4C), 1x1 shortcut conv C->2C (2C^2): 56C^2 + 8C."""
    return 56 * c * c + 8 * c


def test_the_tenas_ntk_network_of_nas_bench_201_by_hand() -> None:
    # TE-NAS prune_tenas.py model_config: C=3, N=1, all layers, stem. Layers: stem conv
    # 3->3 3x3 (81) + BN (6); cell(3); reduction 3->6; cell(6); reduction 6->12; cell(12);
    # final BN(12) (24); Linear 12 -> 10 (120 + 10).
    expected = 81 + 6 + cell_params(3) + reduction_params(3) + cell_params(6) + reduction_params(6) \
        + cell_params(12) + 24 + 130
    assert expected == 87 + 189 + 528 + 720 + 2064 + 2808 + 24 + 130 == 6550
    space = nb201()
    net = space.build_variant(space.parse(ARCH), 10, TENAS_NTK)
    assert count(net) == expected
    assert [type(m).__name__ for m in net.cells] == ["Cell", "ResidualReduction", "Cell", "ResidualReduction", "Cell"]
    assert net.training and net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_the_tenas_regions_network_of_nas_bench_201_by_hand() -> None:
    # model_config_thin: C=1, N=1, depth 1, no stem: cell(1) (19 + 6), final BN(1) (2),
    # Linear 1 -> 10 (10 + 10); it reads 1-channel inputs of any size (no reduction).
    space = nb201()
    net = space.build_variant(space.parse(ARCH), 10, TENAS_REGIONS)
    assert count(net) == 25 + 2 + 20 == 47
    assert isinstance(net.stem, nn.Identity) and len(net.cells) == 1
    assert net(torch.randn(4, 1, 3, 3)).shape == (4, 10)


def test_depth_counts_cells_and_reductions_and_the_head_takes_the_last_width() -> None:
    # depth 2 with N=1: stem conv 3 -> 4 3x3 (108) + BN(4) (8); cell(4); the reduction 4 -> 8;
    # head BN(8) (16) and Linear 8 -> 10 (90)
    space = nb201()
    net = space.build_variant(space.parse(ARCH), 10, NetworkVariant(channels=4, cells_per_stage=1, depth=2))
    assert count(net) == 108 + 8 + cell_params(4) + reduction_params(4) + 16 + 90 == 1478
    assert net.classifier.in_features == 8


def test_zero_cost_nas_cells_carry_conv_biases_and_plain_batchnorm() -> None:
    # per cell convolution: + C bias, - 2C BatchNorm affine parameters; ARCH has 3 convolutions
    # per cell, 5 cells per stage at C = 16, 32, 64: 15 * (16 + 32 + 64) = 1680 fewer parameters
    space = nb201()
    spec = space.parse(ARCH)
    torch.manual_seed(0)
    bench = space.build(spec, 10).train()
    zcn = space.build_variant(spec, 10, NetworkVariant(ops="zero_cost_nas")).train()
    assert count(zcn) == count(bench) - 15 * (16 + 32 + 64)
    cell_conv = zcn.cells[0].edges[0][1]
    cell_bn = zcn.cells[0].edges[0][2]
    assert cell_conv.bias is not None and cell_bn.weight is None and cell_bn.running_var is None
    assert zcn.stem[0].bias is None and zcn.cells[5].conv_a[1].bias is None  # stem and reductions as the benchmark's
    # with the cell's weights, BatchNorm on batch statistics cancels the biases: same outputs
    zcn.load_state_dict(bench.state_dict(), strict=False)
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(zcn(x), bench(x), atol=1e-5)


def test_the_benchmark_variant_is_the_benchmark_network() -> None:
    space = nb201()
    spec = space.parse(ARCH)
    torch.manual_seed(3)
    built = space.build(spec, 10).state_dict()
    torch.manual_seed(3)
    variant = space.build_variant(spec, 10, NetworkVariant()).state_dict()
    assert built.keys() == variant.keys() and all(torch.equal(built[k], variant[k]) for k in built)


@pytest.mark.parametrize("fields,message", [
    ({"channels": 0}, "channels must be a positive integer"),
    ({"cells_per_stage": True}, "cells_per_stage must be a positive integer"),
    ({"depth": -1}, "depth must be 0"),
    ({"ops": "darts"}, "ops must be one of benchmark, zero_cost_nas"),
])
def test_a_bad_variant_is_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkVariant(**fields)


def test_nb101_builds_its_own_network_only() -> None:
    space = make_space("nb101", {"truth": {}})
    require_variant(space, NetworkVariant(ops="zero_cost_nas"))  # zero-cost-nas's NB101 ops are the benchmark's
    with pytest.raises(ValueError, match="NAS-Bench-101 builds no thin network"):
        require_variant(space, TENAS_NTK)


def test_a_space_without_the_hook_builds_no_variant() -> None:
    class Plain:
        name = "plain"

    with pytest.raises(ValueError, match="search space plain builds no other network than its benchmark's"):
        require_variant(Plain(), NetworkVariant(ops="zero_cost_nas"))


@pytest.mark.parametrize("proxy", ["ntk_cond", "linear_regions"])
def test_a_thin_network_on_nb101_stops_at_the_settings_check(proxy: str) -> None:
    cfg = make_config(["sweep.space=nb101", f"sweep.proxies=[{proxy}]"])
    with pytest.raises(SweepError) as caught:
        load_settings(cfg, check_files=False)
    assert str(caught.value) == (
        f"proxy.{proxy}.network=thin: NAS-Bench-101 builds no thin network (TE-NAS defined none, and its modules "
        f"split their channels among up to five vertices); set proxy.{proxy}.network=full to score the benchmark's "
        "network"
    )
    # the benchmark's network, and HNAS's zero-cost-nas copy (the same for NB101), pass
    load_settings(make_config(["sweep.space=nb101", f"sweep.proxies=[{proxy},ntk_trace_norm]",
                               f"proxy.{proxy}.network=full"]), check_files=False)
