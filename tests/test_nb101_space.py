"""The NAS-Bench-101 space: networks with the official parameter counts, ground truth."""
from __future__ import annotations

import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import data_file
import torch

from spaces import make_space
from spaces.nb101.cell import NB101Cell, official_order, prune
from spaces.nb101.hashing import cell_hash
from spaces.nb101.network import build_network, trainable_parameters

#: a sample cell stored in a numbering the benchmark did not train (same hash)
MOVED_HASH = "0001a2f6c8977346ccd12fa0c435bf42"


@pytest.fixture(scope="module")
def sample(data_root) -> list[dict]:
    return pq.read_table(data_file("nb101_sample_accuracy.parquet"),
                         columns=["hash", "adjacency", "operations", "trainable_parameters"]).to_pylist()


@pytest.fixture(scope="module")
def space(data_root, nb101_cache):
    settings = {"truth_file": "nb101_sample_accuracy.parquet", "truth": {"cifar10": "val_acc_108"},
                "cache_dir": str(nb101_cache)}
    return make_space("nb101", settings, data_root)


def test_numbering_decides_the_parameter_count(sample) -> None:
    """The finding behind NOTES.md's two mismatching cells: nasbench-pytorch's channel split
    is the benchmark's, but it depends on the vertex numbering and the hash does not."""
    row = next(r for r in sample if r["hash"] == MOVED_HASH)
    stored = prune(row["adjacency"], row["operations"])
    official = official_order(stored)
    assert stored != official and cell_hash(stored) == cell_hash(official) == MOVED_HASH
    torch.manual_seed(0)
    assert trainable_parameters(build_network(stored)) == 3_079_371  # the stored numbering: +1,165
    assert trainable_parameters(build_network(official)) == row["trainable_parameters"] == 3_078_206


def test_parameter_count_is_exact_on_120_sample_cells(space, sample) -> None:
    """Built from the cell table (official numbering), trainable and used parameters equal
    the benchmark's ``trainable_parameters``: 60 cells the sample stores in another
    numbering and 60 others, spread over the sizes."""
    table = space.cells()
    arch = dict(zip(table.ids, table.archs))
    moved, other = [], []
    for row in sample:
        stored = prune(row["adjacency"], row["operations"])
        (moved if space.parse(arch[row["hash"]]) != stored else other).append(row)
        if len(moved) >= 60 and len(other) >= 600:
            break
    other = sorted(other, key=lambda r: r["trainable_parameters"])[::10][:60]
    torch.manual_seed(0)
    for row in moved[:60] + other:
        model = space.build(space.parse(arch[row["hash"]]), 10)
        assert trainable_parameters(model) == row["trainable_parameters"], row["hash"]
        assert not [n for n, _ in model.named_parameters() if n.endswith(".a")]  # no dummy slots


def test_the_params_proxy_counts_the_benchmarks_parameters(space, sample) -> None:
    from proxies import get_proxy
    from proxies.context import ScoringContext

    row = next(r for r in sample if r["hash"] == MOVED_HASH)
    model = space.build(official_order(prune(row["adjacency"], row["operations"])), 10)
    ctx = ScoringContext(model, {}, (3, 32, 32), 10, torch.device("cpu"))
    assert get_proxy("params").fn(ctx, {}) == row["trainable_parameters"]


def test_network_runs_and_learns_the_head_size(space) -> None:
    torch.manual_seed(0)
    model = space.build(space.parse("111:3"), 10).train()  # input -> conv3x3 -> output, + skip
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10)
    assert "torchvision" not in sys.modules and "nasbench_pytorch.datasets" not in sys.modules
    with pytest.raises(TypeError, match="NB101Cell"):
        space.build("111:3", 10)


def test_ground_truth(space) -> None:
    truth = space.ground_truth("cifar10", "val_acc_108")
    assert truth.num_rows == 30_001 and truth.column_names == ["arch_id", "accuracy"]
    acc = truth.column("accuracy").to_numpy()
    assert np.all((acc > 0) & (acc < 1))
    assert set(space.truth_columns()) >= {"val_acc_108", "val_acc_4", "trainable_parameters"}
    assert "hash" not in space.truth_columns()
    with pytest.raises(ValueError, match="no truth column 'test_acc_108'"):
        space.ground_truth("cifar10", "test_acc_108")
    with pytest.raises(ValueError, match="CIFAR|cifar10"):
        space.ground_truth("cifar100", "val_acc_108")


def test_a_converted_table_is_a_truth_source(space, data_root, tmp_path) -> None:
    """The truth source is a setting: any table with a hash column, e.g. the converter's."""
    import pyarrow as pa

    table = pa.table({"hash": ["a", "b"], "val_acc_108": [0.9, 0.8], "test_acc_108": [0.89, 0.79],
                      "repeats_108": [3, 3]})
    pq.write_table(table, tmp_path / "nb101_only108.parquet")
    other = make_space("nb101", {"truth_file": "nb101_only108.parquet"}, tmp_path)
    assert other.ground_truth("cifar10", "test_acc_108").to_pylist() == [
        {"arch_id": "a", "accuracy": 0.89}, {"arch_id": "b", "accuracy": 0.79}]
    assert NB101Cell.of([[0, 1], [0, 0]], ["input", "output"]).arch == "1:"


def test_the_feature_map_before_pooling_is_the_last_stacks_output(space, sample) -> None:
    """``forward`` is the classifier of the mean over height and width of
    ``forward_pre_GAP``, which is what zen reads (proxies.statistics.feature_map)."""
    from proxies.statistics import feature_map

    torch.manual_seed(0)
    row = next(r for r in sample if r["hash"] == MOVED_HASH)
    cell = official_order(prune(row["adjacency"], row["operations"]))
    net = build_network(cell, 10, stem_channels=16, num_stacks=2, modules_per_stack=1).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pre = net.forward_pre_GAP(x)
        assert pre.shape == (2, 32, 16, 16)  # 16 channels, doubled once; one 2x2 max-pool
        assert torch.equal(feature_map(net, x), pre)
        assert torch.allclose(net(x), net.classifier(pre.mean((2, 3))))


def test_every_proxy_runs_on_an_nb101_network(space) -> None:
    """Every registered proxy, through the scorer's per-cell path, on a sample cell of a
    small NB101 network (16 stem channels, 2 stacks of 1 module) with small batches: a
    finite score each. ntk_cond and linear_regions read TE-NAS's thin networks by
    default, which NB101 does not have (a sweep stops before Ray, tests/test_cli_errors.py);
    here they score the benchmark's network (``network=full``)."""
    from conftest import library_on_one_cell

    from orchestrator.scoring import Worker, score_cell

    torch.set_num_threads(1)
    small_space = make_space("nb101", {"stem_channels": 16, "num_stacks": 2, "modules_per_stack": 1},
                             space.data_root)
    small = {"zen": {"batch_size": 4, "repeat": 2}, "xi_gsnr": {"num_batches": 2}, "zico": {"num_batches": 2},
             "ntk_cond": {"batch_size": 8, "network": "full"},
             "linear_regions": {"batch_size": 100, "forward_batch": 100, "network": "full"}}
    runs, job = library_on_one_cell("nb101", small, {"epsinas": {"weights": [1.0e-4, 10.0]}})
    assert len(runs) >= 20
    table = space.cells()
    arch = dict(zip(table.ids, table.archs))[MOVED_HASH]
    rows = score_cell(small_space, job, MOVED_HASH, arch, runs, Worker("test", torch.device("cpu"), "localhost"))
    assert {r["proxy"]: r["status"] for r in rows} == {r.name: "ok" for r in runs}, [r["error"] for r in rows]
