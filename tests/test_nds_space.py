"""NDS spaces: records written in the NDS files' JSON format, the networks built from them
against the parameter counts the NDS files record, arch strings, ids and truth, every proxy
on a tiny network of each kind, bad input (one line, before Ray) and a real sweep on Ray.

The realistic records are real NDS records: the four records NNI prints from its database
of the NDS files (microsoft/nni ``docs/en_US/NAS/BenchmarksExample.ipynb``: a ResNeXt-A, a
ResNet, a Vanilla and an Amoeba model, with ``parameters`` = the file's ``params`` / 1e6,
and their final and best test accuracies). Their counts are also derived by hand below
(``residual_params``, ``cell_params``: the arithmetic of each layer's weights, no torch), and
the hand formulas are what give the counts of the records no published source lists (a
DARTS record with DARTS's own genotype, the ImageNet records).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
import torch
from conftest import REPO, make_config

from benchdata.root import MissingDataError
from orchestrator.errors import SweepError
from orchestrator.settings import load_settings
from orchestrator.sweep import prepare, run_sweep
from proxies import PROXIES
from proxysweep import score
from spaces import SPACES, make_space

# --- hand-derived parameter counts -------------------------------------------------------


def residual_params(net: dict, classes: int, imagenet: bool = False) -> int:
    """Weights of pycls's AnyNet as NDS reads a record: stem = entry 0, then the stages."""
    w0 = net["ws"][0]
    total = (49 if imagenet else 9) * 3 * w0 + 2 * w0  # stem conv (7x7 on ImageNet, 3x3 on CIFAR) + BN
    w_in = w0
    for i in range(1, len(net["ds"])):
        w = net["ws"][i]
        for b in range(net["ds"][i]):
            cin, stride = (w_in, net["ss"][i]) if b == 0 else (w, 1)
            if net["block_type"] == "res_bottleneck_block":
                wb, groups = round(w * net["bot_muls"][i]), net["num_gs"][i]
                total += cin * wb + 2 * wb + 9 * wb * wb // groups + 2 * wb + wb * w + 2 * w
            else:
                total += 9 * cin * w + 2 * w + 9 * w * w + 2 * w
            if net["block_type"] != "double_plain_block" and (cin != w or stride != 1):
                total += cin * w + 2 * w  # 1x1 projection + BN
        w_in = w
    return total + w_in * classes + classes


def op_params(op: str, c: int, stride: int) -> int:
    """Weights of one pycls NAS operation on C channels (BatchNorm: 2C)."""
    if op in ("none", "avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7"):
        return 0
    if op == "skip_connect":
        return 0 if stride == 1 else c * c + 2 * c  # FactorizedReduce: two 1x1 convs to C/2
    k = int(op[-1])
    if op.startswith("sep_conv") or op.startswith("dil_sep_conv"):
        return 2 * (c * k * k + c * c + 2 * c)  # twice (depthwise k x k, pointwise, BN)
    if op.startswith("dil_conv"):
        return c * k * k + c * c + 2 * c
    if op in ("conv_1x1", "conv_3x3"):
        return c * c * k * k + 2 * c
    if op in ("conv_3x1_1x3", "conv_7x1_1x7"):
        return 2 * k * c * c + 2 * c
    raise AssertionError(op)


def cell_params(net: dict, classes: int, imagenet: bool = False) -> int:
    """Weights of pycls's NetworkCIFAR / NetworkImageNet of a record (no auxiliary head)."""
    c, layers, g = net["width"], net["depth"], net["genotype"]
    if imagenet:
        total = 27 * (c // 2) + c + 9 * (c // 2) * c + 2 * c + 9 * c * c + 2 * c  # stem0, stem1
        c_pp = c_p = c
    else:
        total = 27 * 3 * c + 6 * c  # 3x3 conv to 3C + BN
        c_pp = c_p = 3 * c
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        total += c_pp * c + 2 * c + c_p * c + 2 * c  # the two 1x1 preprocessings (or FactorizedReduce)
        cell = "reduce" if reduction else "normal"
        total += sum(op_params(op, c, 2 if reduction and src < 2 else 1) for op, src in g[cell])
        c_pp, c_p = c_p, len(g[f"{cell}_concat"]) * c
    return total + c_p * classes + classes


# --- records in NDS's format ---------------------------------------------------------------


def nds_record(net: dict, params: int, final_acc: float, best_acc: float, flops: int = 0, epochs: int = 100) -> dict:
    """A record as the NDS files hold it: ``test_ep_top1`` is the test error per epoch,
    falling to ``min_test_top1`` = 100 - best_acc and ending at 100 - final_acc."""
    best, final = round(100 - best_acc, 3), round(100 - final_acc, 3)
    errors = [round(best + 40 - 39 * e / (epochs - 3), 3) for e in range(epochs - 2)] + [best, final]
    return {"job_id": 0, "rng_seed": 1, "params": params, "flops": flops, "net": net,
            "optim": {"base_lr": 0.1, "wd": 0.0005, "max_ep": epochs}, "min_test_top1": best,
            "test_ep_top1": errors, "train_ep_top1": [e / 2 for e in errors]}


AMOEBA_GENOTYPE = {  # NNI's NDS example, Amoeba.json (model id 1)
    "normal": [["avg_pool_3x3", 0], ["conv_7x1_1x7", 1], ["sep_conv_3x3", 2], ["sep_conv_5x5", 0],
               ["dil_sep_conv_3x3", 2], ["dil_sep_conv_3x3", 2], ["skip_connect", 4], ["dil_sep_conv_3x3", 4],
               ["conv_7x1_1x7", 2], ["sep_conv_3x3", 4]],
    "normal_concat": [3, 5, 6],
    "reduce": [["avg_pool_3x3", 0], ["dil_sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 0],
               ["skip_connect", 2], ["sep_conv_7x7", 0], ["conv_7x1_1x7", 4], ["skip_connect", 4],
               ["conv_7x1_1x7", 0], ["conv_7x1_1x7", 5]],
    "reduce_concat": [3, 6],
}
DARTS_V2 = {  # quark0/darts cnn/genotypes.py DARTS_V2
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}
TINY_DARTS = {
    "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3],
    "reduce": [["avg_pool_3x3", 0], ["sep_conv_5x5", 1], ["skip_connect", 2], ["none", 0]],
    "reduce_concat": [2, 3],
}

RESNEXT_A = {"block_type": "res_bottleneck_block", "ds": [1, 16, 1, 4], "ws": [16, 64, 128, 16],
             "ss": [1, 1, 2, 2], "bot_muls": [0.0, 0.25, 0.25, 0.25], "num_gs": [1, 2, 1, 2]}
RESNET = {"block_type": "res_basic_block", "ds": [1, 12, 12, 12], "ws": [16, 24, 24, 40], "ss": [1, 1, 2, 2],
          "bot_muls": None, "num_gs": None}
VANILLA = {"block_type": "double_plain_block", "ds": [1, 12, 12, 12], "ws": [16, 24, 32, 40], "ss": [1, 1, 2, 2],
           "bot_muls": [], "num_gs": []}
AMOEBA = {"genotype": AMOEBA_GENOTYPE, "width": 32, "depth": 12, "aux": False, "drop_prob": 0.0}

#: the real records (NNI's example output): net, params, final and best test accuracy, flops
REAL = {
    "ResNeXt-A.json": (RESNEXT_A, 83_002, 90.39, 90.48, 69_890_986),
    "ResNet.json": (RESNET, 594_138, 93.49, 93.58, 184_519_578),
    "Vanilla.json": (VANILLA, 689_770, 84.35, 84.5, 208_363_930),
    "Amoeba.json": (AMOEBA, 4_190_314, 93.27, 93.37, 664_400_586),
}


def tiny_cell(width: int, depth: int = 3, genotype: dict = TINY_DARTS) -> dict:
    return {"genotype": genotype, "width": width, "depth": depth, "aux": False, "drop_prob": 0.0}


def write(root: Path, name: str, content: Any) -> Path:
    path = root / name
    path.write_text(json.dumps(content))
    return path


@pytest.fixture(scope="module")
def nds_root(tmp_path_factory) -> Path:
    """A data root holding NDS files written by this test (the real ones are not here)."""
    root = tmp_path_factory.mktemp("nds")
    for name, (net, params, final, best, flops) in REAL.items():
        write(root, name, [nds_record(net, params, final, best, flops)])
    # DARTS: DARTS's own genotype at an NDS width and depth, then tiny ones; split into
    # top and mid as some NDS files are
    darts = [nds_record(tiny_cell(16, 8, DARTS_V2), cell_params(tiny_cell(16, 8, DARTS_V2), 10), 92.0, 92.5)]
    darts += [nds_record(tiny_cell(w, d), cell_params(tiny_cell(w, d), 10), 80.0 + w + d / 10, 81.0 + w)
              for w, d in ((4, 3), (6, 3), (8, 4), (4, 5), (10, 3))]
    write(root, "DARTS.json", {"top": darts[:2], "mid": darts[2:]})
    tiny_resnext = {"block_type": "res_bottleneck_block", "ds": [1, 1, 2], "ws": [8, 16, 24], "ss": [1, 1, 2],
                    "bot_muls": [0.0, 0.5, 0.25], "num_gs": [1, 2, 3]}
    write(root, "DARTS_in.json", [nds_record(tiny_cell(16, 5, DARTS_V2), cell_params(tiny_cell(16, 5, DARTS_V2), 1000, True),
                                             60.0, 61.0),
                                  nds_record(tiny_cell(4, 3), cell_params(tiny_cell(4, 3), 1000, True), 40.0, 41.0)])
    write(root, "ResNeXt-A_in.json", [nds_record(tiny_resnext, residual_params(tiny_resnext, 1000, True), 50.0, 52.0)])
    write(root, "ResNeXt-B.json", [nds_record(tiny_resnext, residual_params(tiny_resnext, 10), 70.0, 71.0)])
    return root


def records(root: Path, name: str) -> list[dict]:
    data = json.loads((root / name).read_text())
    return data["top"] + data["mid"] if isinstance(data, dict) else data


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


SPACE_FILES = [("nds_resnext_a", "ResNeXt-A.json"), ("nds_resnet", "ResNet.json"), ("nds_vanilla", "Vanilla.json"),
               ("nds_amoeba", "Amoeba.json"), ("nds_darts", "DARTS.json"), ("nds_darts_in", "DARTS_in.json"),
               ("nds_resnext_a_in", "ResNeXt-A_in.json"), ("nds_resnext_b", "ResNeXt-B.json")]


# --- counts ------------------------------------------------------------------------------


def test_the_hand_formulas_give_the_real_counts() -> None:
    """The formulas reproduce NDS's recorded counts, and DARTS's published 3,349,342
    (DARTS V2, C=36, 20 cells: quark0/darts's ``param size = 3.349342MB``)."""
    for name, (net, params, *_rest) in REAL.items():
        hand = cell_params(net, 10) if "genotype" in net else residual_params(net, 10)
        assert hand == params, name
    assert cell_params(tiny_cell(36, 20, DARTS_V2), 10) == 3_349_342


@pytest.mark.parametrize("space, file", SPACE_FILES)
def test_networks_have_the_recorded_parameter_counts(nds_root, space, file) -> None:
    nds = make_space(space, None, nds_root)
    classes = 1000 if space.endswith("_in") else 10
    table = nds.cells()
    expected = records(nds_root, file)
    assert list(table.ids) == [str(i) for i in range(len(expected))]
    for arch, record in zip(table.archs, expected):
        assert n_params(nds.build(nds.parse(arch), classes)) == record["params"], (space, arch)


# --- arch strings, ids, truth ------------------------------------------------------------


def test_arch_strings(nds_root) -> None:
    resnext = make_space("nds_resnext_a", None, nds_root)
    assert list(resnext.cells().archs) == [
        "res_bottleneck_block;ds=1,16,1,4;ws=16,64,128,16;ss=1,1,2,2;bot_muls=0.0,0.25,0.25,0.25;num_gs=1,2,1,2"]
    assert list(make_space("nds_resnet", None, nds_root).cells().archs) == [
        "res_basic_block;ds=1,12,12,12;ws=16,24,24,40;ss=1,1,2,2"]
    darts = make_space("nds_darts", None, nds_root)
    # the top record first: DARTS V2 at width 16, depth 8, each node's pairs ordered by input
    assert darts.cells().archs[0] == (
        "width=16;depth=8;normal=sep_conv_3x3~0+sep_conv_3x3~1|sep_conv_3x3~0+sep_conv_3x3~1|"
        "skip_connect~0+sep_conv_3x3~1|skip_connect~0+dil_conv_3x3~2;normal_concat=2,3,4,5;"
        "reduce=max_pool_3x3~0+max_pool_3x3~1|max_pool_3x3~1+skip_connect~2|max_pool_3x3~0+skip_connect~2|"
        "max_pool_3x3~1+skip_connect~2;reduce_concat=2,3,4,5")
    assert darts.cells().archs[2].startswith("width=6;depth=3;")  # mid's first record follows top's two
    for arch in darts.cells().archs:
        assert darts.parse(arch).genotype.to_id() in arch


@pytest.mark.parametrize("space, arch", [
    ("nds_resnet", "res_basic_block;ds=1,12;ws=16,24,24;ss=1,1"),             # lists of unequal length
    ("nds_resnet", "res_basic_block;ws=16,24;ds=1,12;ss=1,1"),                # not the canonical order
    ("nds_resnet", "res_pyramid_block;ds=1,2;ws=16,24;ss=1,1"),               # unknown block
    ("nds_resnext_a", "res_bottleneck_block;ds=1,2;ws=16,24;ss=1,1"),         # bottleneck without its lists
    ("nds_resnext_a", "res_bottleneck_block;ds=1,2;ws=16,24;ss=1,1;bot_muls=0.0,0.25;num_gs=1,4"),  # 6 % 4
    ("nds_darts", "width=16;depth=8;normal=sep_conv_9x9~0+sep_conv_3x3~1;normal_concat=2;"
                  "reduce=max_pool_3x3~0+max_pool_3x3~1;reduce_concat=2"),    # unknown operation
    ("nds_darts", "depth=8;width=16;normal=sep_conv_3x3~0+sep_conv_3x3~1;normal_concat=2;"
                  "reduce=max_pool_3x3~0+max_pool_3x3~1;reduce_concat=2"),    # fields out of order
    ("nds_darts_in", "width=5;depth=3;normal=sep_conv_3x3~0+sep_conv_3x3~1;normal_concat=2;"
                     "reduce=max_pool_3x3~0+max_pool_3x3~1;reduce_concat=2"),  # odd width on ImageNet
])
def test_malformed_archs_are_refused(space, arch) -> None:
    with pytest.raises(ValueError) as info:
        make_space(space).parse(arch)
    assert "\n" not in str(info.value)


def test_truth_is_100_minus_the_test_error(nds_root) -> None:
    darts = make_space("nds_darts", None, nds_root)
    assert list(darts.truth_columns()) == ["final_test_acc", "best_test_acc"]
    final = darts.ground_truth("cifar10", "final_test_acc").to_pylist()
    best = darts.ground_truth("cifar10", "best_test_acc").to_pylist()
    # written above: DARTS V2 92.0 / 92.5, then (w, d) = (4, 3): 84.3 / 85.0, (6, 3): 86.3 / 87.0, ...
    assert [r["arch_id"] for r in final] == ["0", "1", "2", "3", "4", "5"]
    assert [r["accuracy"] for r in final] == pytest.approx([92.0, 84.3, 86.3, 88.4, 84.5, 90.3])
    assert [r["accuracy"] for r in best] == pytest.approx([92.5, 85.0, 87.0, 89.0, 85.0, 91.0])
    resnext = make_space("nds_resnext_a", None, nds_root)
    assert resnext.ground_truth("cifar10", "final_test_acc")["accuracy"].to_pylist() == pytest.approx([90.39])
    assert resnext.ground_truth("cifar10", "best_test_acc")["accuracy"].to_pylist() == pytest.approx([90.48])
    with pytest.raises(ValueError, match="no truth column 'test_ep_top1'"):
        darts.ground_truth("cifar10", "test_ep_top1")


def test_spaces_datasets_and_outputs(nds_root) -> None:
    assert {n for n in SPACES if n.startswith("nds_")} == {
        "nds_darts", "nds_enas", "nds_pnas", "nds_nasnet", "nds_amoeba", "nds_resnet", "nds_resnext_a",
        "nds_resnext_b", "nds_vanilla", "nds_darts_in", "nds_enas_in", "nds_pnas_in", "nds_nasnet_in",
        "nds_amoeba_in", "nds_resnext_a_in", "nds_resnext_b_in"}
    assert SPACES["nds_pnas"].cls.num_classes == {"cifar10": 10}
    assert SPACES["nds_pnas_in"].cls.num_classes == {"imagenet": 1000}
    assert SPACES["nds_resnext_b_in"].defaults == {"truth_file": "ResNeXt-B_in.json",
                                                   "truth": {"imagenet": "final_test_acc"}, "proxy_constants": {}}
    for space, side, classes in (("nds_darts_in", 224, 1000), ("nds_resnext_a_in", 224, 1000),
                                 ("nds_resnext_b", 32, 10)):
        nds = make_space(space, None, nds_root)
        net = nds.build(nds.parse(nds.cells().archs[-1]), classes)
        assert net(torch.randn(1, 3, side, side)).shape == (1, classes)


# --- every proxy on a tiny network of each kind --------------------------------------------

TINY = {  # space -> a tiny network of its kind, as an arch string
    "nds_darts": "width=4;depth=3;normal=sep_conv_3x3~0+skip_connect~1|max_pool_3x3~0+dil_conv_3x3~2;normal_concat=2,3;"
                 "reduce=avg_pool_3x3~0+sep_conv_5x5~1|none~0+skip_connect~2;reduce_concat=2,3",
    "nds_nasnet": "width=4;depth=3;normal=conv_3x1_1x3~0+conv_7x1_1x7~1|max_pool_7x7~0+conv_1x1~2;normal_concat=2,3;"
                  "reduce=max_pool_5x5~0+conv_3x3~1|sep_conv_7x7~0+dil_sep_conv_3x3~2;reduce_concat=3",
    "nds_darts_in": "width=4;depth=3;normal=sep_conv_3x3~0+skip_connect~1|max_pool_3x3~0+dil_conv_3x3~2;"
                    "normal_concat=2,3;reduce=avg_pool_3x3~0+sep_conv_5x5~1|none~0+skip_connect~2;reduce_concat=2,3",
    "nds_resnext_a": "res_bottleneck_block;ds=1,1,1;ws=8,16,16;ss=1,1,2;bot_muls=0.0,0.5,0.25;num_gs=1,2,1",
    "nds_resnet": "res_basic_block;ds=1,1,1;ws=8,8,16;ss=1,1,2",
    "nds_vanilla": "double_plain_block;ds=1,1,1;ws=8,8,16;ss=1,1,2",
    "nds_resnext_a_in": "res_bottleneck_block;ds=1,1,1;ws=8,16,16;ss=1,1,2;bot_muls=0.0,0.5,0.25;num_gs=1,2,1",
}


@pytest.mark.parametrize("space", sorted(TINY))
def test_every_proxy_scores_a_tiny_network_of_each_kind(space) -> None:
    """Each registered proxy gives a finite score, or (epsinas, whose reference has weights
    for NB201 and NB101 only) is refused for the space when its settings are made, which a
    sweep does before Ray (``test_epsinas_is_refused_before_ray_unless_given_weights``)."""
    imagenet = space.endswith("_in")
    side, classes = (224, 1000) if imagenet else (32, 10)
    nds = make_space(space)
    torch.manual_seed(0)
    net = nds.build(nds.parse(TINY[space]), classes)
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(4, 3, side, side, generator=gen) for _ in range(2)]
    ys = [torch.randint(0, classes, (4,), generator=gen) for _ in range(2)]
    cheap = {"zen": {"repeat": 2}, "xi_gsnr": {"num_batches": 2}, "meco": {"gaussian_side": 8}}
    for name, proxy in sorted(PROXIES.items()):
        if not proxy.module.startswith("proxies."):  # a test plugin another test registered
            continue
        try:
            proxy.settings(None, space, SPACES[space].defaults["proxy_constants"])
        except ValueError as exc:  # a setting the space would give: epsinas's weights
            assert proxy.from_space and f"search space {space} has no value for it" in str(exc)
            continue
        settings = {k: v for k, v in cheap.get(name, {}).items() if k in proxy.defaults}
        if "network" in proxy.defaults:  # score() scores the module it is given (the thin TE-NAS
            settings["network"] = "full"  # networks are refused for NDS before Ray: see below)
            settings.update({"repeat": 1} if "repeat" in proxy.defaults else {})
        value = score(net, name, xs if proxy.defaults.get("num_batches", 1) > 1 else xs[0],
                      ys if proxy.defaults.get("num_batches", 1) > 1 else ys[0], settings={name: settings},
                      space=space)[name]
        assert math.isfinite(value), (space, name, value)


# --- bad input: one line, before Ray --------------------------------------------------------


def settings_for(root: Path, out: Path, *overrides: str):
    return load_settings(make_config(["+sweep=nds_sample", f"data.root={root}", "data.images.cifar10=cifar10_smoke.npz",
                                      "cells=all", f"out_dir={out}", *overrides]))


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


GOOD = nds_record(tiny_cell(4), 0, 80.0, 81.0)


def bad_net(**changes: Any) -> dict:
    record = json.loads(json.dumps(GOOD))
    record["net"].update(changes)
    return record


@pytest.mark.parametrize("content, fragments", [
    ({"records": [GOOD]}, ["is not an NDS sweep file", "JSON list of records", "['records']"]),
    ("[1, 2", ["is not a readable JSON file", "JSONDecodeError"]),
    ([], ["holds no records"]),
    ([GOOD, [1, 2]], ["record 1 is list, not an NDS record"]),
    ([{k: v for k, v in GOOD.items() if k != "net"}], ["record 0 has no field 'net'", "min_test_top1"]),
    ([{k: v for k, v in GOOD.items() if k != "test_ep_top1"}], ["record 0 has no field 'test_ep_top1'"]),
    ([{**GOOD, "test_ep_top1": []}], ["'test_ep_top1' must be a non-empty list of numbers"]),
    ([{**GOOD, "min_test_top1": "7.2"}], ["'min_test_top1' must be a number"]),
    ([GOOD, bad_net(width=None)], ["record 1: net.width must be a positive integer; got null"]),
    ([{**GOOD, "net": {"genotype": TINY_DARTS, "depth": 3}}], ["record 0: net has no 'width'"]),
    ([bad_net(genotype={**TINY_DARTS, "normal": [["sep_conv_9x9", 0], ["skip_connect", 1]]})],
     ["record 0: net.genotype: unknown operation 'sep_conv_9x9' in the normal cell"]),
    ([bad_net(genotype={**TINY_DARTS, "normal": [["sep_conv_3x3", 0], ["skip_connect", 3]]})],
     ["node 0 of the normal cell reads input 3, out of range"]),
    ([bad_net(genotype={"normal": [], "reduce": []})], ["net.genotype must be an object with normal, normal_concat"]),
])
def test_bad_darts_files_stop_with_one_line(tmp_path, content, fragments) -> None:
    root = tmp_path / "data"
    root.mkdir()
    path = root / "DARTS.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(SweepError) as info:
        prepare(settings_for(root, tmp_path / "out"))
    text = one_line(info.value)
    assert str(path) in text
    for fragment in fragments:
        assert fragment in text
    assert not (tmp_path / "out" / "sweep.json").exists()


@pytest.mark.parametrize("net, fragment", [
    ({**RESNEXT_A, "num_gs": None}, "net.num_gs must be a non-empty list of integers; got null"),
    ({k: v for k, v in RESNEXT_A.items() if k != "bot_muls"}, "net has no 'bot_muls'"),
    ({**RESNEXT_A, "block_type": "res_pyramid_block"}, "net.block_type must be res_bottleneck_block or"),
    ({**RESNEXT_A, "ds": [2, 16, 1, 4]}, "ds[0] describes the stem and must be 1"),
    ({**RESNEXT_A, "ws": [16, 64, 128]}, "ds, ws and ss must be lists of one length"),
    ({**RESNEXT_A, "num_gs": [1, 3, 1, 2]}, "bottleneck width round(64 * 0.25) = 16 is not a positive multiple"),
    ({**RESNET, "bot_muls": [1.0, 1.0, 1.0, 1.0]}, "net.bot_muls must be null or empty for a res_basic_block"),
])
def test_bad_residual_records_stop_with_one_line(tmp_path, net, fragment) -> None:
    root = tmp_path / "data"
    root.mkdir()
    write(root, "ResNeXt-A.json", [nds_record(RESNEXT_A, 0, 90.0, 90.0), nds_record(net, 0, 90.0, 90.0)])
    with pytest.raises(SweepError) as info:
        prepare(settings_for(root, tmp_path / "out", "sweep.space=nds_resnext_a"))
    text = one_line(info.value)
    assert "ResNeXt-A.json: record 1: " in text and fragment in text


def test_a_missing_file_says_where_to_get_it(tmp_path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(SweepError) as info:
        settings_for(root, tmp_path / "out", "sweep.space=nds_pnas")
    text = one_line(info.value)
    assert f"missing data file {root / 'PNAS.json'}" in text
    assert "https://dl.fbaipublicfiles.com/nds/data.zip" in text and "space.nds_pnas.truth_file" in text
    with pytest.raises(MissingDataError):
        make_space("nds_pnas", None, root).cells()


def test_epsinas_is_refused_before_ray_unless_given_weights(nds_root, tmp_path) -> None:
    with pytest.raises(SweepError) as info:
        settings_for(nds_root, tmp_path / "a", "sweep.proxies=[synflow,epsinas]")
    assert "proxy.epsinas.weights is not set and search space nds_darts has no value for it" in one_line(info.value)
    settings = settings_for(nds_root, tmp_path / "b", "sweep.proxies=[epsinas]", "proxy.epsinas.weights=[0.0001,10]")
    assert settings.proxies[0].params["weights"] == [0.0001, 10]
    settings = settings_for(nds_root, tmp_path / "c", "sweep.proxies=[epsinas]",
                            "+space.nds_darts.proxy_constants.epsinas.weights=[0.001,5]")
    assert settings.proxies[0].params["weights"] == [0.001, 5]


def test_the_tenas_thin_networks_are_refused_before_ray(nds_root, tmp_path) -> None:
    """NDS builds only its benchmark networks: ntk_cond and linear_regions, which score
    TE-NAS's thin network by default, stop the run in one line that says what to set."""
    for proxy in ("ntk_cond", "linear_regions"):
        with pytest.raises(SweepError) as info:
            settings_for(nds_root, tmp_path / proxy, f"sweep.proxies=[{proxy}]")
        assert f"proxy.{proxy}.network=full" in one_line(info.value)
    settings = settings_for(nds_root, tmp_path / "full", "sweep.proxies=[ntk_cond]", "proxy.ntk_cond.network=full")
    assert settings.proxies[0].params["network"] == "full"


def test_imagenet_spaces_read_the_users_images(nds_root, tmp_path) -> None:
    """The ImageNet spaces' dataset is ``imagenet``: images of the user's own, 224 pixels,
    one line when they are missing or of the wrong size (random pixels here: no ImageNet
    images are at hand)."""
    base = ["sweep.space=nds_darts_in", "sweep.datasets=[imagenet]", "sweep.proxies=[synflow,naswot]",
            "proxy.naswot.batch_size=4"]
    with pytest.raises(SweepError) as info:
        settings_for(nds_root, tmp_path / "a", *base[:2])
    assert "data file" in one_line(info.value) and "imagenet.npz" in str(info.value)
    assert "ImageNet images do not come with proxysweep" in str(info.value)
    with pytest.raises(SweepError, match="space nds_darts_in has no dataset 'cifar10'; known: imagenet"):
        settings_for(nds_root, tmp_path / "b", "sweep.space=nds_darts_in")
    rng = np.random.default_rng(0)
    images = tmp_path / "imagenet_small.npz"
    np.savez(images, train_images=rng.integers(0, 256, (6, 3, 224, 224), dtype=np.uint8),
             train_labels=rng.integers(0, 1000, 6))
    prepared = prepare(settings_for(nds_root, tmp_path / "c", *base, f"data.images.imagenet={images}"))
    prepared.store.unlock()
    assert prepared.inputs[("imagenet", 0)].input_shape == (3, 224, 224)
    assert prepared.pending_cells == 2
    np.savez(images, train_images=rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8),
             train_labels=rng.integers(0, 1000, 6))
    with pytest.raises(SweepError) as info:
        prepare(settings_for(nds_root, tmp_path / "d", *base, f"data.images.imagenet={images}"))
    assert "imagenet images must be N x 3 x 224 x 224" in one_line(info.value)


def test_the_cli_stops_on_a_bad_nds_file_with_one_line(tmp_path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    write(root, "DARTS.json", {"top": [GOOD]})
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "+sweep=nds_sample", f"data.root={root}", "cluster.address=127.0.0.1:1",
         "data.images.cifar10=cifar10_smoke.npz", f"out_dir={tmp_path / 'out'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"proxysweep: error: {root / 'DARTS.json'} is not an NDS sweep file: it must hold a JSON list "
                     "of records (or {\"top\": [...], \"mid\": [...]}); it holds an object with keys ['top']"]


# --- a real sweep on Ray -----------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_nds_sweep_on_ray(ray_session, nds_root, tmp_path) -> None:
    """The six DARTS records of the test file, three proxies, on the session's Ray; the
    reducer ranks them against the files' final test accuracies."""
    out = tmp_path / "out"
    result = run_sweep(make_config([
        "+sweep=nds_sample", f"data.root={nds_root}", "data.images.cifar10=cifar10_smoke.npz", "cells=all",
        "sweep.proxies=[synflow,naswot,params]", "proxy.naswot.batch_size=16", "sweep.shard_size=4",
        f"out_dir={out}"]))
    assert result.scored_shards == 2
    from proxysweep import load_scores

    table = load_scores(out)
    rows = table.to_pylist()
    assert len(rows) == 18 and all(r["status"] == "ok" for r in rows)
    truth = dict(zip(range(6), [92.0, 84.3, 86.3, 88.4, 84.5, 90.3]))
    archs = make_space("nds_darts", None, nds_root).cells().archs
    expected_params = [r["params"] for r in records(nds_root, "DARTS.json")]
    for r in rows:
        assert r["arch"] == archs[r["arch_id"]]
        assert r["accuracy"] == pytest.approx(truth[r["arch_id"]])
        if r["proxy"] == "params":
            assert r["score"] == expected_params[r["arch_id"]]
    metrics = result.reduction.metrics
    spearman = metrics.filter(pc.and_(pc.equal(metrics["metric"], "spearman"), pc.equal(metrics["aggregate"], "seed")))
    assert set(spearman["proxy"].to_pylist()) >= {"synflow", "naswot", "params"}
    assert set(spearman["n_cells"].to_pylist()) == {6}
