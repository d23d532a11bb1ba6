"""NAS-Bench-201: the official index <-> cell mapping and the benchmark's network."""
from __future__ import annotations

import itertools

import pyarrow.parquet as pq
import pytest
from conftest import data_file
import torch

from spaces import make_space
from spaces.nb201.space import NUM_CELLS, format_cell, parse_cell
from spaces.nb201.network import EDGES, OPS

SETTINGS = {"truth_file": "nb201_accuracy.parquet", "truth": {"cifar10": "cifar10_valid_test"}}


@pytest.fixture(scope="module")
def space(data_root):
    return make_space("nb201", SETTINGS, data_root)


def test_mapping_covers_every_cell_once(space, data_root) -> None:
    table = space.cells()
    assert len(table) == NUM_CELLS == 15625
    assert list(table.ids) == [str(i) for i in range(NUM_CELLS)]
    raw = pq.read_table(data_file("nb201_accuracy.parquet"), columns=["arch_index", "arch_str"]).to_pylist()
    by_index = {r["arch_index"]: r["arch_str"] for r in raw}
    for cell_id, arch in zip(table.ids, table.archs):  # all 15,625 rows of the table
        assert by_index[int(cell_id)] == arch
        assert format_cell(parse_cell(arch)) == arch
    everything = {format_cell(ops) for ops in itertools.product(OPS, repeat=len(EDGES))}
    assert set(table.archs) == everything


def test_the_official_order_is_not_a_product_order(space) -> None:
    table = space.cells()
    assert table.archs[0] == "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert table.archs[1] != format_cell(("none",) * 5 + ("skip_connect",))


@pytest.mark.parametrize("bad", [
    "|nor_conv_3x3~0|+|none~0|none~1|",                                        # two nodes
    "|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|",                        # one edge short
    "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",                 # unknown op
    "|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|",                 # wrong source
    "nor_conv_3x3~0+|none~0|none~1|+|none~0|none~1|none~2|",                   # no bars
])
def test_malformed_cells_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="malformed NAS-Bench-201 cell"):
        parse_cell(bad)


def test_parameter_count_equals_the_benchmark(space, data_root) -> None:
    """Cells with the same number of 1x1 and 3x3 convolutions have the same parameter count,
    so the table's ``params_m`` is checked per such group: the network we build for one
    cell of each group must give the count that (nearly) all rows of the group agree on.

    204 of the 15,625 rows disagree with their own group by a third or a half of a
    convolution's parameters (averaged values in the source files); they are the minority
    in every group and are left out of the comparison."""
    rows = pq.read_table(data_file("nb201_accuracy.parquet"), columns=["arch_str", "params_m"]).to_pylist()
    groups: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for r in rows:
        ops = parse_cell(r["arch_str"])
        key = (ops.count("nor_conv_1x1"), ops.count("nor_conv_3x3"))
        groups.setdefault(key, []).append((r["arch_str"], r["params_m"] * 1e6))
    assert len(groups) == 28
    disagreeing = 0
    for key, members in sorted(groups.items()):
        values = [round(v, 3) for _, v in members]
        majority = max(set(values), key=values.count)
        disagreeing += len(values) - values.count(majority)
        arch = next(a for a, v in members if round(v, 3) == majority)
        net = space.build(space.parse(arch), num_classes=10)
        assert sum(p.numel() for p in net.parameters()) == majority, (key, arch)
    assert disagreeing == 204


def test_network_shapes_and_heads(space) -> None:
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    for dataset, classes, side in (("cifar10", 10, 32), ("cifar100", 100, 32), ("ImageNet16-120", 120, 16)):
        net = space.build(space.parse(arch), space.num_classes[dataset])
        assert net(torch.randn(2, 3, side, side)).shape == (2, classes)


def test_ground_truth_column(space) -> None:
    truth = space.ground_truth("cifar10", "cifar10_valid_test")
    assert truth.num_rows == NUM_CELLS
    assert truth.column("arch_id")[0].as_py() == "0"
    assert truth.column("accuracy")[0].as_py() == pytest.approx(81.52)
    with pytest.raises(ValueError, match="no truth column"):
        space.ground_truth("cifar10", "cifar10_nonsense")
