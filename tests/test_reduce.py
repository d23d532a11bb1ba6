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


def test_every_metric_against_each_truth_column(tmp_path) -> None:
    """space.nb201.truth.cifar10 a list: the metrics against each column, labelled. Cells 3,
    9, 6, 8 rise in that order on cifar10_valid_test (83.88, 84.12, 88.65, 88.81) but read
    9, 3, 8, 6 on cifar10_test (86.44, 86.62, 92.10, 92.51): a score that follows the first
    has tau 1 and rho 1 there, and against the second two discordant pairs of six,
    tau = (4 - 2) / 6, and every rank off by one, rho = 1 - 6 * 4 / (4 * 15) = 0.6."""
    config = {**CONFIG, "space": {"nb201": {"truth": {"cifar10": ["cifar10_valid_test", "cifar10_test"]}}}}
    rows = [row(0, i, "follows_valid", s) for i, s in (("3", 0.0), ("9", 1.0), ("6", 2.0), ("8", 3.0))]
    write_folder(tmp_path, manifest("nb201", {"follows_valid": True}), rows, config)
    result = reduce_sweep(tmp_path)
    m = result.metrics.filter(pc.equal(result.metrics["aggregate"], "seed"))
    got = {(r["truth"], r["metric"]): r["value"] for r in m.to_pylist() if r["metric"] in ("kendall_tau", "spearman")}
    assert got == pytest.approx({("cifar10_valid_test", "kendall_tau"): 1.0, ("cifar10_valid_test", "spearman"): 1.0,
                                 ("cifar10_test", "kendall_tau"): 1 / 3, ("cifar10_test", "spearman"): 0.6})
    report = result.report_path.read_text()
    main, other = (report.index(f"## nb201 / cifar10 (truth: `{c}`)") for c in ("cifar10_valid_test", "cifar10_test"))
    assert main < other  # the main column first


def test_a_shard_damaged_past_its_footer_is_set_aside_by_the_reducer(tmp_path) -> None:
    """A file whose footer is whole (so the cheap check passes it) but whose data pages are
    not: the reducer stops with one error naming it, moves it to quarantine/ (byte for
    byte), and a second reduction, without it, works on what is left."""
    from orchestrator.errors import SweepError
    from orchestrator.store import ScoreStore

    ids = ["1", "2", "3", "4", "6"]
    rows = [row(0, i, p, float(n)) for n, i in enumerate(ids) for p in ("params", "synflow")]
    write_folder(tmp_path, manifest("nb201", {"params": True, "synflow": True}), rows, CONFIG)
    shards = sorted((tmp_path / "scores").rglob("*.parquet"))
    assert len(shards) == 2
    victim, survivor = shards
    (kept,) = set(pq.read_table(survivor)["proxy"].to_pylist())
    data = bytearray(victim.read_bytes())
    footer_length = int.from_bytes(data[-8:-4], "little")
    assert len(data) - 8 - footer_length > 40  # data pages before the footer
    start = len(data) - 8 - footer_length
    data[4:start] = b"\xff" * (start - 4)  # every column chunk's pages: garbage
    victim.write_bytes(bytes(data))
    from orchestrator.manifest import Manifest

    assert len(ScoreStore(tmp_path).scan(Manifest.read(tmp_path), quarantine=False).shards) == 2  # footers pass
    with pytest.raises(SweepError) as raised:
        reduce_sweep(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and f"{victim} is damaged" in message and "rerun the sweep" in message
    moved = sorted((tmp_path / "quarantine").rglob("*"))
    moved = [p for p in moved if p.is_file()]
    assert len(moved) == 1 and moved[0].read_bytes() == bytes(data) and not victim.exists()
    rho = {r["proxy"]: r["value"] for r in reduce_sweep(tmp_path).metrics.to_pylist()
           if r["metric"] == "spearman" and r["aggregate"] == "seed"}
    assert math.isfinite(rho[kept]) and all(math.isnan(v) for p, v in rho.items() if p != kept)
