"""Why fisher ranks NB201 better here than published: zero-cost-nas's own NB201 network.

zero-cost-nas (foresight/models/nasbench2_ops.py) builds the cells' ReLU-conv-BN ops with
``affine=False``, hence ``Conv2d(bias=not affine)``: every cell convolution has a bias
(PyTorch's default uniform init), and BatchNorm without affine parameters follows it. The
official network, which this project builds, has no such biases. BatchNorm subtracts the
channel mean, so with BatchNorm on the biases change no output and no weight gradient, but
fisher reads the convolution's own output and sees them (sum over positions of
(act + b) * grad differs per image by b * sum of grad). This script scores fisher on the
cells of a finished fidelity sweep twice, on the project's network and on the same network
with zero-cost-nas's cell biases added, and prints both rank correlations.

    python benchmarks/nb201_fisher_bias.py --scores /work/bench/fid500_c10_a [--dataset cifar10]
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from scipy.stats import kendalltau, spearmanr
from torch import nn

from orchestrator.scoring import cell_seed, seed_everything
from proxies import ScoringContext, get_proxy
from proxysweep import load_scores
from spaces import make_space
from benchdata.batches import BatchSpec, derive_seed, draw_batch
from benchdata.images import read_images
from spaces.nb201.network import Cell

PARAMS = {"batch_size": 64, "augment": True, "mode": "train"}
# dataset -> (classes, truth column, image file), as conf/space/nb201.yaml and conf/config.yaml set them
DATASETS = {"cifar10": (10, "cifar10_valid_test", "cifar10_sample.npz"),
            "cifar100": (100, "cifar100_test", "cifar100_sample.npz")}


def add_cell_conv_biases(model: nn.Module) -> None:
    """A bias with PyTorch's default init on every convolution inside a cell (not the stem
    or the residual reductions), as zero-cost-nas's NB201 network has."""
    for cell in (m for m in model.modules() if isinstance(m, Cell)):
        for conv in (m for m in cell.modules() if isinstance(m, nn.Conv2d)):
            bound = 1 / math.sqrt(conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
            conv.bias = nn.Parameter(torch.empty(conv.out_channels).uniform_(-bound, bound))


def fisher(space, batches, classes: int, arch_id: str, arch: str, biases: bool) -> float:
    """fisher as a sweep scores it (same seeds, same batch), optionally with the biases."""
    seed = cell_seed("nb201", 0, arch_id)
    seed_everything(seed)
    model = space.build(space.parse(arch), classes).train()
    if biases:
        add_cell_conv_biases(model)
    ctx = ScoringContext(model, batches, (3, 32, 32), classes, torch.device("cpu"))
    seed_everything(derive_seed(seed, "fisher"))
    return float(get_proxy("fisher").fn(ctx, PARAMS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", required=True, help="out_dir of a fidelity sweep that scored fisher")
    parser.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    parser.add_argument("--cells", type=int, default=None, help="only the first N cells of the sweep")
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", "../shared/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.data_root)
    classes, column, images = DATASETS[args.dataset]
    rows = [r for r in load_scores(args.scores, truth=False).to_pylist()
            if r["proxy"] == "fisher" and r["dataset"] == args.dataset and r["seed"] == 0]
    rows = sorted(rows, key=lambda r: r["arch_id"])[: args.cells]
    space = make_space("nb201", {"truth_file": "nb201_accuracy.parquet", "truth": {}}, root)
    truth = dict(zip(*[pq.read_table(root / "nb201_accuracy.parquet").column(c).to_pylist()
                       for c in ("arch_index", column)]))
    x, y = read_images(root / images, args.dataset)
    spec = BatchSpec(PARAMS["batch_size"], PARAMS["augment"])
    batches = {spec: draw_batch(x, y, args.dataset, 0, spec)}
    plain = [fisher(space, batches, classes, str(r["arch_id"]), r["arch"], False) for r in rows]
    drift = max(abs(a - r["score"]) / abs(r["score"]) for a, r in zip(plain, rows) if r["score"])
    biased = [fisher(space, batches, classes, str(r["arch_id"]), r["arch"], True) for r in rows]
    acc = np.array([truth[int(r["arch_id"])] for r in rows])
    print(f"{len(rows)} cells, {args.dataset}, truth {column}; largest relative difference from the sweep's scores: {drift:.1e}")
    for name, scores in (("fisher, the official network", plain), ("fisher, zero-cost-nas's cell conv biases", biased)):
        print(f"{name:<42} spearman {spearmanr(scores, acc)[0]:+.3f}  kendall {kendalltau(scores, acc)[0]:+.3f}")


if __name__ == "__main__":
    main()
