"""``python -m orchestrator.data convert``: the NAS-Bench-201 table from small files written
here in the official formats, every value checked against a hand computation.

The files follow the structures of the reference code (NAS-Bench-201 ``api_201.py`` /
``api_utils.py``, NATS-Bench ``api_topology.py`` / ``api_utils.py``): ``ArchResults`` and
``ResultsCount`` state dicts with every key the originals have, accuracies in percent under
``"<split>@<epoch>"`` for every epoch (so taking the wrong epoch shows), ``params`` in
millions as numpy float64. The ``.pth`` is written as the 2020 files were (torch's legacy
format, pickle protocol 2, numpy 1 module names), the NATS folder as ``pickle_save`` writes
(bz2, pickle protocol 4, OrderedDicts).
"""
from __future__ import annotations

import bz2
import collections
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO, data_file

from orchestrator.data.__main__ import main

ARCHS = [
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]
PARAMS = [0.129306, 0.802426, 0.073306]  # millions, as the benchmark stores them (CIFAR-10 head)
SPLITS = {"cifar10-valid": ["x-valid", "ori-test"], "cifar10": ["ori-test"],
          "cifar100": ["ori-test", "x-valid", "x-test"], "ImageNet16-120": ["ori-test", "x-valid", "x-test"]}
HEAD = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}

# Final-epoch accuracies (percent) per cell, hp, dataset, split: one value per seed. Chosen so
# that every mean is exact in binary floating point and easy to check by eye.
FINAL = {
    0: {"200": {"cifar10-valid": {"x-valid": [82.0, 81.5, 82.5], "ori-test": [81.25, 81.75, 81.5]},
                "cifar10": {"ori-test": [85.5, 86.0, 86.5]},
                "cifar100": {"x-valid": [52.0, 53.0, 54.0], "x-test": [52.5, 53.5, 52.75], "ori-test": [1.0, 2.0, 3.0]},
                "ImageNet16-120": {"x-valid": [28.0, 28.5, 28.25], "x-test": [26.5, 26.75, 26.625], "ori-test": [9.0, 9.0, 9.0]}},
        "12": {"cifar10-valid": {"x-valid": [60.0, 61.0], "ori-test": [59.0, 60.0]},
               "cifar10": {"ori-test": [69.5]},
               "cifar100": {"x-valid": [30.0], "x-test": [31.0], "ori-test": [30.5]},
               "ImageNet16-120": {"x-valid": [15.0], "x-test": [14.0], "ori-test": [14.5]}}},
    # two trials of each 200-epoch dataset
    1: {"200": {"cifar10-valid": {"x-valid": [88.0, 89.0], "ori-test": [87.5, 87.75]},
                "cifar10": {"ori-test": [91.5, 92.0]},
                "cifar100": {"x-valid": [67.0, 68.0], "x-test": [67.5, 68.5], "ori-test": [0.0, 0.0]},
                "ImageNet16-120": {"x-valid": [30.5, 31.0], "x-test": [30.25, 30.0], "ori-test": [5.0, 5.0]}},
        "12": {"cifar10-valid": {"x-valid": [63.0, 64.0], "ori-test": [62.5, 64.5]},
               "cifar10": {"ori-test": [74.0]},
               "cifar100": {"x-valid": [33.5], "x-test": [32.75], "ori-test": [33.0]},
               "ImageNet16-120": {"x-valid": [15.5], "x-test": [14.75], "ori-test": [15.0]}}},
    # one trial each: the all-`none` cell guesses
    2: {"200": {"cifar10-valid": {"x-valid": [10.0], "ori-test": [10.0]},
                "cifar10": {"ori-test": [10.0]},
                "cifar100": {"x-valid": [1.0], "x-test": [1.0], "ori-test": [1.0]},
                "ImageNet16-120": {"x-valid": [0.8125], "x-test": [0.875], "ori-test": [0.84375]}},
        "12": {"cifar10-valid": {"x-valid": [10.0, 10.0], "ori-test": [10.0, 10.0]},
               "cifar10": {"ori-test": [10.0]},
               "cifar100": {"x-valid": [1.0], "x-test": [1.0], "ori-test": [1.0]},
               "ImageNet16-120": {"x-valid": [0.8125], "x-test": [0.875], "ori-test": [0.84375]}}},
}

# The table by hand: means over the seeds of FINAL, params as stored.
EXPECTED = [
    {"arch_index": 0, "arch_str": ARCHS[0],
     "cifar10_test": 86.0,             # (85.5 + 86.0 + 86.5) / 3
     "cifar10_valid_val": 82.0,        # (82.0 + 81.5 + 82.5) / 3
     "cifar10_valid_test": 81.5,       # (81.25 + 81.75 + 81.5) / 3
     "cifar100_test": 52.916666666666664,  # (52.5 + 53.5 + 52.75) / 3 = 158.75 / 3
     "imagenet16_120_val": 28.25,      # (28.0 + 28.5 + 28.25) / 3
     "imagenet16_120_test": 26.625,    # (26.5 + 26.75 + 26.625) / 3
     "cifar10_test_12ep": 69.5,        # the one 12-epoch cifar10 trial
     "params_m": 0.129306},
    {"arch_index": 1, "arch_str": ARCHS[1],
     "cifar10_test": 91.75, "cifar10_valid_val": 88.5, "cifar10_valid_test": 87.625,
     "cifar100_test": 68.0, "imagenet16_120_val": 30.75, "imagenet16_120_test": 30.125,
     "cifar10_test_12ep": 74.0, "params_m": 0.802426},
    {"arch_index": 2, "arch_str": ARCHS[2],
     "cifar10_test": 10.0, "cifar10_valid_val": 10.0, "cifar10_valid_test": 10.0,
     "cifar100_test": 1.0, "imagenet16_120_val": 0.8125, "imagenet16_120_test": 0.875,
     "cifar10_test_12ep": 10.0, "params_m": 0.073306},
]
SEEDS = {"200": [777, 888, 999], "12": [111, 777]}


def results_count(dataset: str, seed: int, epochs: int, finals: dict[str, float], params: float) -> dict:
    """A ``ResultsCount.state_dict()``: every epoch's accuracy, the last one = ``finals``."""
    accs, losses, times = {}, {}, {}
    for split in SPLITS[dataset]:
        for e in range(epochs):
            # earlier epochs are lower (a decoy for the wrong epoch); only @(epochs-1) is final
            accs[f"{split}@{e}"] = finals[split] if e == epochs - 1 else finals[split] * e / (2 * epochs)
            losses[f"{split}@{e}"] = 2.0 - e / epochs
            times[f"{split}@{e}"] = 1.5
    return {
        "name": dataset, "net_state_dict": None, "train_acc1es": {e: 50.0 for e in range(epochs)},
        "train_acc5es": {e: 80.0 for e in range(epochs)}, "train_losses": {e: 1.0 for e in range(epochs)},
        "train_times": {e: 10.0 for e in range(epochs)},
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": "", "class_num": HEAD[dataset]},
        "params": np.float64(params if HEAD[dataset] == 10 else params + 0.0058),  # a larger head
        "flop": 113.95137, "seed": f"{seed:04d}", "epochs": epochs, "latency": [0.01],
        "eval_names": list(SPLITS[dataset]), "eval_acc1es": accs, "eval_losses": losses, "eval_times": times,
    }


def arch_results(index: int, hp: str, ordered: bool = False, drop: set[str] = frozenset()) -> dict:
    """An ``ArchResults.state_dict()`` for cell ``index`` at hp "12" or "200"."""
    epochs = int(hp)
    all_results, dataset_seed = {}, {}
    for dataset, splits in FINAL[index][hp].items():
        if dataset in drop:
            continue
        n = len(next(iter(splits.values())))
        seeds = SEEDS[hp][:n]
        dataset_seed[dataset] = seeds
        for i, seed in enumerate(seeds):
            rc = results_count(dataset, seed, epochs, {s: v[i] for s, v in splits.items()}, PARAMS[index])
            rc["arch_config"]["arch_str"] = ARCHS[index]
            all_results[(dataset, seed)] = rc
    state = {"arch_index": index, "arch_str": ARCHS[index], "all_results": all_results,
             "dataset_seed": dataset_seed, "clear_net_done": True}
    return collections.OrderedDict(state) if ordered else state


def write_pth(path: Path, v10: bool = False, edit=None) -> Path:
    """A NAS-Bench-201 ``.pth`` as the 2020 files are; ``v10``: 12-epoch results for
    cifar10-valid only, as in v1.0. ``edit`` changes the dict before it is saved."""
    drop = {"cifar10", "cifar100", "ImageNet16-120"} if v10 else set()
    data = {"meta_archs": list(ARCHS),
            "arch2infos": {i: {"less": arch_results(i, "12", drop=drop), "full": arch_results(i, "200")}
                           for i in range(len(ARCHS))},
            "evaluated_indexes": set(range(len(ARCHS)))}
    if edit:
        edit(data)
    torch.save(data, path, _use_new_zipfile_serialization=False, pickle_protocol=2)
    raw = path.read_bytes()  # numpy 2 names its scalar reconstructor numpy._core; numpy 1 did not
    assert b"cnumpy._core.multiarray\nscalar\n" in raw
    path.write_bytes(raw.replace(b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n"))
    return path


def write_nats(folder: Path, edit=None) -> Path:
    """A ``NATS-tss-v1_0-3ffb9-simple`` folder: meta plus one bz2 pickle per cell."""
    folder.mkdir()
    meta = {"meta_archs": list(ARCHS), "total_archs": len(ARCHS), "arch2infos": None, "evaluated_indexes": set()}
    with bz2.BZ2File(folder / "meta.pickle.pbz2", "wb") as fh:
        pickle.dump(meta, fh, protocol=4)
    for i in range(len(ARCHS)):
        data = collections.OrderedDict([("12", arch_results(i, "12", ordered=True)),
                                        ("200", arch_results(i, "200", ordered=True))])
        if edit:
            edit(i, data)
        with bz2.BZ2File(folder / f"{i:06d}.pickle.pbz2", "wb") as fh:
            pickle.dump(data, fh, protocol=4)
    return folder


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("proxysweep: error: "), err
    return lines[0]


def test_the_hand_expectations_follow_from_the_trials() -> None:
    """EXPECTED is the plain mean of FINAL (guards the hand arithmetic above)."""
    names = {"cifar10_test": ("200", "cifar10", "ori-test"), "cifar10_valid_val": ("200", "cifar10-valid", "x-valid"),
             "cifar10_valid_test": ("200", "cifar10-valid", "ori-test"), "cifar100_test": ("200", "cifar100", "x-test"),
             "imagenet16_120_val": ("200", "ImageNet16-120", "x-valid"),
             "imagenet16_120_test": ("200", "ImageNet16-120", "x-test"), "cifar10_test_12ep": ("12", "cifar10", "ori-test")}
    for row in EXPECTED:
        for col, (hp, ds, split) in names.items():
            values = FINAL[row["arch_index"]][hp][ds][split]
            assert row[col] == sum(values) / len(values), col


def test_convert_pth_gives_the_shared_tables_columns_and_hand_values(tmp_path, capsys) -> None:
    src = write_pth(tmp_path / "NAS-Bench-201-v1_1-096897.pth")
    out = tmp_path / "out" / "nb201_accuracy.parquet"
    assert main(["convert", "nb201", str(src), str(out)]) == 0
    assert "3 cells" in capsys.readouterr().out
    schema = pq.read_schema(out)
    shared = pq.read_schema(data_file("nb201_accuracy.parquet"))
    assert schema.names == shared.names
    assert [f.type for f in schema] == [f.type for f in shared]
    assert read_rows(out) == EXPECTED
    assert sorted(p.name for p in out.parent.iterdir()) == ["nb201_accuracy.parquet"]


def test_convert_nats_folder_gives_the_same_table(tmp_path, capsys) -> None:
    src = write_nats(tmp_path / "NATS-tss-v1_0-3ffb9-simple")
    out = tmp_path / "nats.parquet"
    assert main(["convert", "nb201", str(src), str(out)]) == 0
    assert read_rows(out) == EXPECTED


def test_v10_pth_without_12_epoch_cifar10_gives_nan_and_says_so(tmp_path, capsys) -> None:
    src = write_pth(tmp_path / "NAS-Bench-201-v1_0-e61699.pth", v10=True)
    out = tmp_path / "v10.parquet"
    assert main(["convert", "nb201", str(src), str(out)]) == 0
    assert "cifar10_test_12ep is NaN for 3 of 3 cells" in capsys.readouterr().out
    rows = read_rows(out)
    assert all(math.isnan(r["cifar10_test_12ep"]) for r in rows)
    for got, want in zip(rows, EXPECTED):
        assert {k: v for k, v in got.items() if k != "cifar10_test_12ep"} == \
            {k: v for k, v in want.items() if k != "cifar10_test_12ep"}


def _drop_split(data: dict) -> None:
    del data["arch2infos"][1]["full"]["all_results"][("cifar100", 888)]["eval_acc1es"]["x-test@199"]


def _string_accuracy(data: dict) -> None:
    data["arch2infos"][2]["full"]["all_results"][("cifar10", 777)]["eval_acc1es"]["ori-test@199"] = "10.0"


def _drop_trial(data: dict) -> None:
    del data["arch2infos"][0]["full"]["all_results"][("ImageNet16-120", 999)]


def _no_meta(data: dict) -> None:
    del data["meta_archs"]


def _bad_cell(data: dict) -> None:
    data["meta_archs"][1] = "|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize("edit, message", [
    (_drop_split, "cell 1 hp=200['all_results'][('cifar100', 888)]['eval_acc1es'] has no 'x-test@199'"),
    (_string_accuracy, "['eval_acc1es']['ori-test@199'] must be a number, got str '10.0'"),
    (_drop_trial, "cell 0 hp=200['all_results'] has no ('ImageNet16-120', 999)"),
    (_no_meta, "no 'meta_archs' key"),
    (_bad_cell, "meta_archs[1]: malformed NAS-Bench-201 cell"),
])
def test_a_malformed_pth_is_one_line_and_no_table(tmp_path, capsys, edit, message) -> None:
    src = write_pth(tmp_path / "bad.pth", edit=edit)
    out = tmp_path / "out" / "t.parquet"
    assert main(["convert", "nb201", str(src), str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert message in line, line
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_truncated_pth_is_one_line(tmp_path) -> None:
    """As a subprocess: the real entry point, one line on stderr, no traceback, no table."""
    src = write_pth(tmp_path / "cut.pth")
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    out = tmp_path / "t.parquet"
    proc = subprocess.run([sys.executable, "-m", "orchestrator.data", "convert", "nb201", str(src), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert f"cannot read {src}" in one_error_line(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pth"]


class Payload:
    """What a malicious pickle holds: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_pickles_that_name_other_callables_are_refused_not_run(tmp_path, capsys) -> None:
    marker = tmp_path / "it-ran"
    src = tmp_path / "evil.pth"
    torch.save({"meta_archs": list(ARCHS), "arch2infos": {}, "x": Payload(marker)}, src)
    assert main(["convert", "nb201", str(src), str(tmp_path / "t.parquet")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "it names posix.system" in line and "not loaded" in line, line
    folder = write_nats(tmp_path / "nats")
    with bz2.BZ2File(folder / "meta.pickle.pbz2", "wb") as fh:
        pickle.dump({"meta_archs": list(ARCHS), "x": Payload(marker)}, fh, protocol=4)
    assert main(["convert", "nb201", str(folder), str(tmp_path / "t.parquet")]) == 2
    assert "it names posix.system" in one_error_line(capsys.readouterr().err)
    assert not marker.exists()
    assert not (tmp_path / "t.parquet").exists()


def _nats_string_params(i: int, data: dict) -> None:
    if i == 1:
        data["200"]["all_results"][("cifar10", 888)]["params"] = "0.8"


def _nats_wrong_arch(i: int, data: dict) -> None:
    if i == 2:
        data["200"]["arch_str"] = ARCHS[0]


def _nats_no_hp12(i: int, data: dict) -> None:
    if i == 0:
        del data["12"]


@pytest.mark.parametrize("edit, message", [
    (_nats_string_params, "['params'] must be a number, got str '0.8'"),
    (_nats_wrong_arch, "cell 2 hp=200 holds the results of"),
    (_nats_no_hp12, "000000.pickle.pbz2: no '12' results"),
])
def test_a_malformed_nats_folder_is_one_line_and_no_table(tmp_path, capsys, edit, message) -> None:
    src = write_nats(tmp_path / "nats", edit=edit)
    out = tmp_path / "t.parquet"
    assert main(["convert", "nb201", str(src), str(out)]) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_nats_truncated_or_missing_cell_files(tmp_path, capsys) -> None:
    src = write_nats(tmp_path / "nats")
    raw = (src / "000001.pickle.pbz2").read_bytes()
    (src / "000001.pickle.pbz2").write_bytes(raw[: len(raw) // 2])
    assert main(["convert", "nb201", str(src), str(tmp_path / "t.parquet")]) == 2
    assert "cannot read" in one_error_line(capsys.readouterr().err)
    (src / "000001.pickle.pbz2").unlink()
    assert main(["convert", "nb201", str(src), str(tmp_path / "t.parquet")]) == 2
    assert "1 of 3 cell files are missing (first: 000001.pickle.pbz2)" in one_error_line(capsys.readouterr().err)
    assert main(["convert", "nb201", str(tmp_path / "absent"), str(tmp_path / "t.parquet")]) == 2
    assert "no such file or folder" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nats"]


def test_convert_keeps_an_existing_table_when_it_fails(tmp_path, capsys) -> None:
    out = tmp_path / "nb201_accuracy.parquet"
    out.write_bytes(b"the old table")
    assert main(["convert", "nb201", str(write_pth(tmp_path / "bad.pth", edit=_no_meta)), str(out)]) == 2
    assert out.read_bytes() == b"the old table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth", "nb201_accuracy.parquet"]


def test_convert_nb101_delegates_to_the_tfrecord_converter(tmp_path, capsys) -> None:
    from test_nb101_tfrecord import CELLS, frame, metrics_class, official_payload

    cls = metrics_class()
    runs = {  # (val, test) fractions per repeat, chosen by hand
        CELLS[0][0]: [(0.90, 0.89), (0.91, 0.88), (0.92, 0.90)],
        CELLS[1][0]: [(0.80, 0.81), (0.82, 0.83), (0.84, 0.79)],
    }
    payloads = [official_payload(cls, h, adj, ops, params, 108, *runs[h][r], 1000.0 + r)
                for r in range(3) for h, adj, ops, params in CELLS]
    src = tmp_path / "nasbench_only108.tfrecord"
    src.write_bytes(b"".join(frame(p) for p in payloads))
    out = tmp_path / "nb101_only108.parquet"
    assert main(["convert", "nb101", str(src), str(out)]) == 0
    assert "6 records, 2 cells" in capsys.readouterr().out
    rows = {r["hash"]: r for r in read_rows(out)}
    first, second = rows[CELLS[0][0]], rows[CELLS[1][0]]
    assert first["trainable_parameters"] == CELLS[0][3] and first["repeats_108"] == 3
    assert first["val_acc_108"] == pytest.approx(0.91, abs=1e-12)       # (0.90 + 0.91 + 0.92) / 3
    assert first["test_acc_108"] == pytest.approx(0.89, abs=1e-12)      # (0.89 + 0.88 + 0.90) / 3
    assert second["val_acc_108"] == pytest.approx(0.82, abs=1e-12)      # (0.80 + 0.82 + 0.84) / 3
    assert second["test_acc_108"] == pytest.approx(0.81, abs=1e-12)     # (0.81 + 0.83 + 0.79) / 3
    assert first["train_seconds_108"] == pytest.approx(1001.0, abs=1e-9)  # (1000 + 1001 + 1002) / 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name])

    broken = tmp_path / "broken.tfrecord"
    broken.write_bytes(src.read_bytes()[:-7])
    assert main(["convert", "nb101", str(broken), str(tmp_path / "never.parquet")]) == 2
    assert "truncated" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "never.parquet").exists()
