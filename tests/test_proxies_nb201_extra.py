"""The five proxies of issue 3b on a real NB201 cell and real CIFAR-10 images, through the
scorer's own per-cell path: every one gives a finite score, twice the same (seeded per
cell and proxy), and leaves the network as built. Settings are shrunk to keep this fast."""
from __future__ import annotations

import torch
from conftest import DATA_ROOT, data_file

from orchestrator.plan import Job
from orchestrator.scoring import JobInputs, Worker, score_cell
from orchestrator.settings import ProxyRun
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
