"""The five proxies of issue 3b, and those that score their reference's own network of the
cell (TE-NAS's thin networks, zero-cost-nas's copy), on a real NB201 cell and real CIFAR-10
images, through the scorer's own per-cell path: every one gives a finite score, twice the
same (seeded per cell and proxy). Settings are shrunk to keep this fast."""
from __future__ import annotations

import torch
from conftest import DATA_ROOT, data_file

from orchestrator.plan import Job
from orchestrator.scoring import JobInputs, Worker, score_cell
from orchestrator.settings import ProxyRun
from proxies import get_proxy
from spaces import make_space
from benchdata.batches import BatchSpec, draw_batch
from benchdata.images import read_images

SMALL = {
    "zen": {"mixup_gamma": 1e-2, "batch_size": 4, "repeat": 2, "mode": "train"},
    "meco": {"input": "data", "batch_size": 1, "augment": True, "gaussian_side": 64, "channel_sample": None, "mode": "train"},
    "epsinas": {"batch_size": 16, "augment": False, "mode": "train", "weights": [1e-7, 1.0]},
    "linear_regions": {"batch_size": 64, "augment": False, "crop": 4, "forward_batch": 32, "mode": "train"},
    "flops": {"batchnorm": False, "pooling": False},
}
# ResNet-like cell: skip connections keep epsinas's 1e-7 outputs from underflowing
ARCH = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def test_new_proxies_on_a_real_cell() -> None:
    torch.set_num_threads(1)
    space = make_space("nb201", {"truth_file": "nb201_accuracy.parquet", "truth": {}}, DATA_ROOT)
    x, y = read_images(data_file("cifar10_smoke.npz"), "cifar10")
    specs = {BatchSpec(1, True), BatchSpec(16, False), BatchSpec(64, False)}
    job = JobInputs(Job("nb201", "cifar10", 0), 10, (3, 32, 32), {s: draw_batch(x, y, "cifar10", 0, s) for s in specs})
    worker = Worker("test", torch.device("cpu"), "localhost")
    runs = [ProxyRun(n, p) for n, p in SMALL.items()]
    first = score_cell(space, job, "1", ARCH, runs, worker)
    again = score_cell(space, job, "1", ARCH, runs[::-1], worker)
    assert {r["proxy"]: r["status"] for r in first} == {p: "ok" for p in SMALL}, [r["error"] for r in first]
    assert {r["proxy"]: r["score"] for r in first} == {r["proxy"]: r["score"] for r in again}
    scores = {r["proxy"]: r["score"] for r in first}
    assert scores["flops"] == resnet_cell_macs()
    assert 1 <= scores["linear_regions"] <= 64


def test_reference_networks_of_a_real_cell() -> None:
    """ntk_cond and linear_regions on TE-NAS's thin networks (their defaults, fewer images),
    ntk_trace_norm on zero-cost-nas's copy: built by the space per cell, the same in every
    order, and another score than the benchmark network's."""
    torch.set_num_threads(1)
    space = make_space("nb201", {"truth_file": "nb201_accuracy.parquet", "truth": {}}, DATA_ROOT)
    x, y = read_images(data_file("cifar10_smoke.npz"), "cifar10")
    small = {"ntk_cond": {"batch_size": 8, "repeat": 2}, "linear_regions": {"batch_size": 200, "forward_batch": 100},
             "ntk_trace_norm": {"batch_size": 16}}
    runs = [ProxyRun(n, get_proxy(n).settings(o)) for n, o in small.items()]
    # the benchmark network's two reductions need a side divisible by 4: crops of 4 there
    on_benchmark = {n: {**o, "network": "full", **({"crop": 4} if n == "linear_regions" else {})}
                    for n, o in small.items()}
    full = [ProxyRun(n, get_proxy(n).settings(o)) for n, o in on_benchmark.items()]
    specs = {s for r in runs + full for s in r.batches}
    job = JobInputs(Job("nb201", "cifar10", 0), 10, (3, 32, 32), {s: draw_batch(x, y, "cifar10", 0, s) for s in specs})
    worker = Worker("test", torch.device("cpu"), "localhost")
    first = score_cell(space, job, "1", ARCH, runs, worker)
    again = score_cell(space, job, "1", ARCH, runs[::-1], worker)
    assert {r["proxy"]: r["status"] for r in first} == {p: "ok" for p in small}, [r["error"] for r in first]
    assert {r["proxy"]: r["score"] for r in first} == {r["proxy"]: r["score"] for r in again}
    benchmark_rows = score_cell(space, job, "1", ARCH, full, worker)
    assert {r["status"] for r in benchmark_rows} == {"ok"}, [r["error"] for r in benchmark_rows]
    on_full = {r["proxy"]: r["score"] for r in benchmark_rows}
    scores = {r["proxy"]: r["score"] for r in first}
    assert all(scores[p] != on_full[p] for p in small), (scores, on_full)
    assert 1 <= scores["linear_regions"] <= 200 and scores["ntk_cond"] >= 1


def resnet_cell_macs() -> int:
    """MACs of ARCH by hand: per cell two 3x3 convs C -> C (the edges 0->1 and 1->2)."""
    conv = lambda k, c_in, c_out, side: k * k * c_in * c_out * side * side  # noqa: E731
    stem = conv(3, 3, 16, 32)
    cells = sum(5 * 2 * conv(3, c, c, side) for c, side in ((16, 32), (32, 16), (64, 8)))
    reductions = sum(
        conv(3, c, 2 * c, side) + conv(3, 2 * c, 2 * c, side) + conv(1, c, 2 * c, side)  # a, b, shortcut
        for c, side in ((16, 16), (32, 8))
    )
    head = 64 * 10 + 10  # linear with bias
    return stem + cells + reductions + head
