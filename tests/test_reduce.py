"""The reducer on a hand-made scores folder: joins, direction, failures, mean/std over seeds."""
from __future__ import annotations

import math

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import DATA_ROOT, data_file

from handmade import manifest, write_folder
from handmade import row as hand_row

from orchestrator.plan import Job
from orchestrator.reduce import reduce_sweep

CONFIG = {
    "sweep": {"name": "hand", "space": "nb201", "datasets": ["cifar10"], "proxies": ["params"], "seeds": [0],
              "shard_size": 5},
    "space": {"nb201": {"truth": {"cifar10": "cifar10_valid_test"}}},
    "metrics": {"top_k_percent": [20, 100], "kendall_top_percent": 100},
    "data": {"root": str(DATA_ROOT), "images": {"cifar10": "cifar10_smoke.npz"}},
    "cells": {"select": "all"},
    "out_dir": "unused",
}


def truth_of(ids: list[str]) -> list[float]:
    table = pq.read_table(data_file("nb201_accuracy.parquet"), columns=["arch_index", "cifar10_valid_test"])
    acc = dict(zip(table["arch_index"].to_pylist(), table["cifar10_valid_test"].to_pylist()))
    return [acc[int(i)] for i in ids]


def row(seed: int, arch_id: str, proxy: str, score: float | None, status: str = "ok") -> dict:
    return hand_row(Job("nb201", "cifar10", seed), arch_id, proxy, score, status)


def test_reduce_by_hand(tmp_path) -> None:
    ids = ["1", "2", "3", "4", "6"]
    truth = truth_of(ids)
    order = sorted(range(5), key=lambda i: truth[i])  # positions from worst to best
    rank_score = {ids[i]: float(r) for r, i in enumerate(order)}  # 0 worst .. 4 best
    rows = []
    for seed in (0, 1):
        for i in ids:
            perfect = rank_score[i]
            if seed == 1 and perfect in (0.0, 1.0):  # swap the two worst: one discordant pair
                perfect = 1.0 - perfect
            rows.append(row(seed, i, "perfect", perfect))
            rows.append(row(seed, i, "reversed", -rank_score[i]))
        rows.append(row(seed, "7", "perfect", None, "error"))  # failures are left out
    # "reversed" is lower-is-better by the manifest: the reducer flips it, as the registry would
    write_folder(tmp_path, manifest("nb201", {"perfect": True, "reversed": False}), rows, CONFIG)
    result = reduce_sweep(tmp_path)
    m = result.metrics

    def value(proxy: str, metric: str, aggregate: str, seed=None) -> float:
        part = m.filter(pc.and_(pc.equal(m["proxy"], proxy), pc.equal(m["metric"], metric)))
        part = part.filter(pc.equal(part["aggregate"], aggregate))
        if seed is not None:
            part = part.filter(pc.equal(part["seed"], seed))
        assert part.num_rows == 1
        return part["value"][0].as_py()

    assert value("perfect", "kendall_tau", "seed", 0) == pytest.approx(1.0)
    assert value("perfect", "kendall_tau", "seed", 1) == pytest.approx(0.8)  # (9 - 1) / 10
    assert value("perfect", "kendall_tau", "mean") == pytest.approx(0.9)
    assert value("perfect", "kendall_tau", "std") == pytest.approx(math.sqrt(0.02))  # sample std
    assert value("reversed", "spearman", "mean") == pytest.approx(1.0)  # flipped: a perfect ranking
    assert value("reversed", "precision_top_20", "mean") == 1.0
    assert value("perfect", "best_rank_top_20", "seed", 0) == 1.0
    assert value("perfect", "precision_top_100", "mean") == 1.0
    assert set(m.filter(pc.equal(m["proxy"], "perfect"))["n_cells"].to_pylist()) == {5}
    report = result.report_path.read_text()
    assert "## nb201 / cifar10 (truth: `cifar10_valid_test`)" in report
    assert "| perfect | 5 | 2 | 0.900 ± 0.141 |" in report
    assert "| perfect | 10 | 0 | 2 |" in report  # status table: 10 ok, 2 errors
