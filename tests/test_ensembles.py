"""Ensembles (vote, mean rank) on hand-made score tables: ties, reversed orders, the
direction of lower-is-better proxies, and the reducer's metrics and report."""
from __future__ import annotations

import itertools
import math
from typing import Iterator

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import DATA_ROOT, data_file
from handmade import manifest, write_folder
from handmade import row as hand_row

from orchestrator.ensembles import Ensemble, mean_rank, parse_ensembles
from orchestrator.resample import vote_pairwise
from orchestrator.stats import pairwise_accuracy
from orchestrator.errors import SweepError
from orchestrator.plan import Job
from orchestrator.reduce import reduce_sweep
from proxies import PROXIES, register


# --- the vote, by hand --------------------------------------------------------------------
def slow_vote(scores: list[list[float]], acc: list[float]) -> float:
    """The zero-cost-nas notebook's loop, written out: every ordered pair (i, j), i != j,
    with different accuracies; each proxy's score difference votes "i" when positive;
    "i" wins with at least half the votes; count the pairs whose winner is truly better."""
    right = total = 0
    for i, j in itertools.permutations(range(len(acc)), 2):
        diff = acc[i] - acc[j]
        if diff == 0:
            continue
        positive = sum(1 for s in scores if s[i] - s[j] > 0)
        sign = 1 if positive >= len(scores) / 2 else -1
        right += 1 if sign * diff > 0 else 0
        total += 1
    return right / total


ACC = [1.0, 2.0, 3.0]
PERFECT, REVERSED, TIED = [1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 1.0, 2.0]


def vote_pairwise_accuracy(scores: np.ndarray, accuracy: np.ndarray, block: int = 256) -> float:
    """The reducer's exact vote count (its value without resamples)."""
    return vote_pairwise(scores, accuracy, block=block)[0]


def test_vote_worked_by_hand() -> None:
    # Ordered pairs and votes for "first is better" (perfect, reversed, tied):
    # (1,0): yes no no -> 1 of 3, predicts 0 better, wrong.  (0,1): no yes no -> right.
    # (2,0): yes no yes -> right.  (0,2): no yes no -> right.
    # (2,1): yes no yes -> right.  (1,2): no yes no -> right.        => 5 / 6
    assert vote_pairwise_accuracy(np.array([PERFECT, REVERSED, TIED]), np.array(ACC)) == pytest.approx(5 / 6)


def test_single_proxy_pairwise_accuracy() -> None:
    acc = np.array(ACC)
    for scores, want in ((PERFECT, 1.0), (REVERSED, 0.0),
                         (TIED, 5 / 6),  # a tie votes for the second cell: of (0,1) and (1,0) one is right
                         ([7.0, 7.0, 7.0], 0.5)):
        assert vote_pairwise_accuracy(np.array([scores]), acc) == pytest.approx(want)
        assert pairwise_accuracy(np.array(scores), acc) == pytest.approx(want)  # the one-voter count


def test_vote_of_two_needs_one_vote() -> None:
    # "numpos >= len/2": with two proxies one vote wins, so perfect + reversed predicts
    # "first is better" for every ordered pair: right for half of them
    assert vote_pairwise_accuracy(np.array([PERFECT, REVERSED]), np.array(ACC)) == 0.5


def test_pairs_with_equal_accuracy_are_left_out() -> None:
    # only (0,2), (2,0), (1,2), (2,1) count; the perfect-ish proxy gets them all right
    assert vote_pairwise_accuracy(np.array([[1.0, 0.0, 5.0]]), np.array([1.0, 1.0, 2.0])) == 1.0


def test_vote_matches_the_notebook_loop_on_tables_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, m = int(rng.integers(2, 9)), int(rng.integers(1, 5))
        scores = rng.integers(0, 3, size=(m, n)).astype(float)  # many ties
        acc = rng.integers(0, 4, size=n).astype(float)
        if len(set(acc)) < 2:
            continue
        got = vote_pairwise_accuracy(scores, acc, block=3)  # blocks that cut the rows
        assert got == pytest.approx(slow_vote(scores.tolist(), acc.tolist()))


def test_mean_rank_by_hand() -> None:
    # ranks (1 = lowest): [10, 30, 20] -> 1, 3, 2; [0.5, 0.5, 0.9] -> 1.5, 1.5, 3
    got = mean_rank(np.array([[10.0, 30.0, 20.0], [0.5, 0.5, 0.9]]))
    assert got.tolist() == [1.25, 2.25, 2.5]


# --- configuration ------------------------------------------------------------------------
def test_parse_ensembles_forms_and_errors() -> None:
    got = parse_ensembles({"vote": ["synflow", "jacob_cov", "snip"], "mean_rank": [["synflow", "naswot"], ["a", "b"]]})
    assert got == [Ensemble("vote", ("synflow", "jacob_cov", "snip")),
                   Ensemble("mean_rank", ("synflow", "naswot")), Ensemble("mean_rank", ("a", "b"))]
    assert got[0].name == "vote(synflow+jacob_cov+snip)"
    assert parse_ensembles(None) == [] and parse_ensembles({"vote": None}) == []
    assert parse_ensembles({"mean_rank": ["synflow", "naswot"]}) == [Ensemble("mean_rank", ("synflow", "naswot"))]
    with pytest.raises(ValueError, match="unknown ensemble kind ensembles.median"):
        parse_ensembles({"median": [["a", "b"]]})
    with pytest.raises(ValueError, match="at least two different proxies"):
        parse_ensembles({"vote": ["synflow"]})
    with pytest.raises(ValueError, match=r"unknown proxies \['synflw'\]"):
        parse_ensembles({"vote": ["synflw", "snip"]}, known=PROXIES)


def test_a_typo_in_an_ensemble_stops_the_sweep_before_work() -> None:
    from conftest import make_config

    from orchestrator.settings import load_settings

    with pytest.raises(SweepError, match="synflw"):
        load_settings(make_config(["+sweep=nb201_smoke", "ensembles.vote=[synflw,snip,jacob_cov]"]))


# --- through the reducer ------------------------------------------------------------------
IDS = ["1", "2", "3", "4", "6"]
CONFIG = {
    "sweep": {"name": "ens", "space": "nb201", "datasets": ["cifar10"], "proxies": ["synflow"], "seeds": [0],
              "shard_size": 5},
    "space": {"nb201": {"truth": {"cifar10": "cifar10_valid_test"}}},
    "metrics": {"top_k_percent": [20, 100], "kendall_top_percent": 100},
    "data": {"root": str(DATA_ROOT), "images": {"cifar10": "cifar10_smoke.npz"}},
    "cells": {"select": "all"},
    "out_dir": "unused",
    "ensembles": {"vote": ["synflow", "jacob_cov", "snip"],
                  "mean_rank": [["synflow", "lower_is_better_test"], ["synflow", "naswot"]]},
}


@pytest.fixture
def lower_is_better_proxy() -> Iterator[str]:
    name = "lower_is_better_test"
    register(name, higher_is_better=False)(lambda ctx, params: 0.0)
    try:
        yield name
    finally:
        PROXIES.pop(name)


def truth_ranks() -> dict[str, float]:
    """0 for the least accurate of IDS .. 4 for the most accurate."""
    table = pq.read_table(data_file("nb201_accuracy.parquet"), columns=["arch_index", "cifar10_valid_test"])
    acc = dict(zip(table["arch_index"].to_pylist(), table["cifar10_valid_test"].to_pylist()))
    order = sorted(IDS, key=lambda i: acc[int(i)])
    assert len({acc[int(i)] for i in IDS}) == len(IDS)  # distinct: every pair counts
    return {i: float(r) for r, i in enumerate(order)}


def row(seed: int, arch_id: str, proxy: str, score: float | None, status: str = "ok") -> dict:
    return hand_row(Job("nb201", "cifar10", seed), arch_id, proxy, score, status)


def test_ensembles_in_metrics_and_report(tmp_path, lower_is_better_proxy) -> None:
    rank = truth_ranks()
    rows = []
    for seed in (0, 1):
        good, bad = (1.0, -1.0) if seed == 0 else (-1.0, 1.0)
        for i in IDS:
            # seed 0: synflow and jacob_cov perfect, snip reversed -> the majority is perfect
            # seed 1: the other way round -> the majority is reversed
            rows += [row(seed, i, "synflow", good * rank[i]), row(seed, i, "jacob_cov", good * rank[i]),
                     row(seed, i, "snip", bad * rank[i]),
                     # lower is better: -rank is a perfect score once oriented
                     row(seed, i, lower_is_better_proxy, -rank[i])]
        rows.append(row(seed, "7", "synflow", None, "error"))  # failures are left out
    directions = {"synflow": True, "jacob_cov": True, "snip": True, lower_is_better_proxy: False}
    write_folder(tmp_path, manifest("nb201", directions), rows, CONFIG)
    result = reduce_sweep(tmp_path)
    m = result.metrics

    def value(proxy: str, metric: str, aggregate: str, seed=None) -> float:
        part = m.filter(pc.and_(pc.equal(m["proxy"], proxy), pc.equal(m["metric"], metric)))
        part = part.filter(pc.equal(part["aggregate"], aggregate))
        if seed is not None:
            part = part.filter(pc.equal(part["seed"], seed))
        assert part.num_rows == 1, (proxy, metric, aggregate, seed)
        return part["value"][0].as_py()

    vote = "vote(synflow+jacob_cov+snip)"
    assert value(vote, "pairwise_accuracy", "seed", 0) == 1.0
    assert value(vote, "pairwise_accuracy", "seed", 1) == 0.0
    assert value(vote, "pairwise_accuracy", "mean") == 0.5
    assert value(vote, "pairwise_accuracy", "std") == pytest.approx(math.sqrt(0.5))
    assert value("snip", "pairwise_accuracy", "seed", 0) == 0.0  # the members, side by side
    assert value("synflow", "pairwise_accuracy", "seed", 0) == 1.0
    assert set(m.filter(pc.equal(m["proxy"], vote))["metric"].to_pylist()) == {"pairwise_accuracy"}
    # mean rank of synflow and the lower-is-better proxy: on seed 0 both perfect once
    # oriented (had the direction been ignored, the mean rank would be constant: tau nan)
    both = "mean_rank(synflow+lower_is_better_test)"
    assert value(both, "kendall_tau", "seed", 0) == pytest.approx(1.0)
    assert value(both, "pairwise_accuracy", "seed", 0) == 1.0
    # seed 1: synflow reversed, the other perfect -> mean rank constant -> every pair tied
    assert value(both, "pairwise_accuracy", "seed", 1) == 0.5
    assert math.isnan(value(both, "kendall_tau", "seed", 1))
    assert set(m.filter(pc.equal(m["proxy"], both))["n_cells"].to_pylist()) == {5}
    assert "mean_rank(synflow+naswot)" not in set(m["proxy"].to_pylist())  # naswot not scored
    report = result.report_path.read_text()
    assert "## Ensembles" in report
    assert f"| {vote} | 5 | 2 |" in report
    assert f"| {both} | 5 | 2 | " in report
    assert "`mean_rank(synflow+naswot)`: not computed, naswot not scored in this sweep" in report


def test_no_ensembles_configured_changes_nothing(tmp_path) -> None:
    rank = truth_ranks()
    config = {k: v for k, v in CONFIG.items() if k != "ensembles"}
    write_folder(tmp_path, manifest("nb201", {"synflow": True}), [row(0, i, "synflow", rank[i]) for i in IDS], config)
    result = reduce_sweep(tmp_path)
    assert set(result.metrics["proxy"].to_pylist()) == {"synflow"}
    assert "pairwise_accuracy" not in set(result.metrics["metric"].to_pylist())
    assert "## Ensembles" not in result.report_path.read_text()
