"""Ranking metrics on cases worked out by hand: ties, reversed order, K at its edges."""
from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator import metrics as m

TRUTH = np.array([90.0, 80.0, 70.0, 60.0, 50.0])


def test_perfect_and_reversed_order() -> None:
    s = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert m.kendall_tau_b(s, TRUTH) == pytest.approx(1.0)
    assert m.spearman(s, TRUTH) == pytest.approx(1.0)
    assert m.kendall_tau_b(-s, TRUTH) == pytest.approx(-1.0)
    assert m.spearman(-s, TRUTH) == pytest.approx(-1.0)
    assert m.pearson(-s, TRUTH) == pytest.approx(-1.0)


def test_kendall_tau_b_with_ties_by_hand() -> None:
    # scores (1,1,2,3) vs truth (1,2,3,4): of the 6 pairs, 5 concordant, 0 discordant,
    # 1 tied in scores only. tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)) = 5 / sqrt(5 * 6).
    s = np.array([1.0, 1.0, 2.0, 3.0])
    t = np.array([1.0, 2.0, 3.0, 4.0])
    assert m.kendall_tau_b(s, t) == pytest.approx(5 / math.sqrt(30))


def test_spearman_with_ties_uses_average_ranks() -> None:
    # ranks of s: (1.5, 1.5, 3, 4); of t: (1, 2, 3, 4). Pearson of the rank vectors:
    rs, rt = np.array([1.5, 1.5, 3, 4]), np.array([1.0, 2, 3, 4])
    dr, dt = rs - rs.mean(), rt - rt.mean()
    expected = (dr @ dt) / math.sqrt((dr @ dr) * (dt @ dt))
    assert m.spearman(np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2, 3, 4])) == pytest.approx(expected)


def test_top_count_edges() -> None:
    assert m.top_count(5, 1) == 1  # never empty
    assert m.top_count(5, 20) == 1
    assert m.top_count(5, 21) == 2  # ceil(1.05)
    assert m.top_count(5, 100) == 5
    assert m.top_count(200, 10) == 20
    with pytest.raises(ValueError):
        m.top_count(5, 0)


def test_precision_at_top_and_bottom() -> None:
    s = np.array([1.0, 5.0, 3.0, 4.0, 2.0])  # proxy prefers cell 1, then 3
    # top 40% (k=2): proxy {1, 3}, truth {0, 1} -> 1/2; bottom 40%: proxy {0, 4}, truth {3, 4} -> 1/2
    assert m.precision_at_top(s, TRUTH, 40) == pytest.approx(0.5)
    assert m.precision_at_bottom(s, TRUTH, 40) == pytest.approx(0.5)
    # K = 100%: everything is in both sets
    assert m.precision_at_top(s, TRUTH, 100) == 1.0
    # K tiny (k = 1): the proxy's best cell 1 is not the true best cell 0
    assert m.precision_at_top(s, TRUTH, 1) == 0.0


def test_ties_at_the_cut_off_are_all_in() -> None:
    s = np.array([3.0, 3.0, 3.0, 1.0, 0.0])  # three-way tie for the top
    # k = 1 but all three tied cells count: 1 of them (cell 0) is the true best -> 1/3
    assert m.precision_at_top(s, TRUTH, 20) == pytest.approx(1 / 3)
    assert m.rank_range_at_top(s, TRUTH, 20) == (1, 3)


def test_best_and_worst_true_rank_among_top() -> None:
    s = np.array([1.0, 5.0, 3.0, 4.0, 2.0])
    # proxy top 60% (k=3): cells 1, 3, 2 with true ranks 2, 4, 3
    assert m.rank_range_at_top(s, TRUTH, 60) == (2, 4)
    # tied accuracies share the smallest rank of their group
    assert list(m.true_ranks(np.array([70.0, 90.0, 70.0, 60.0]))) == [2, 1, 2, 4]


def test_kendall_inside_top() -> None:
    s = np.array([1.0, 5.0, 3.0, 4.0, 2.0])
    # top 60%: cells 1, 3, 2 with scores 5, 4, 3 and truths 80, 60, 70:
    # pairs (1,3) concordant, (1,2) concordant, (3,2) discordant -> (2 - 1) / 3
    assert m.kendall_in_top(s, TRUTH, 60) == pytest.approx(1 / 3)


def test_constant_scores_give_nan_correlations() -> None:
    s = np.ones(5)
    assert math.isnan(m.kendall_tau_b(s, TRUTH))
    assert math.isnan(m.spearman(s, TRUTH))
    assert math.isnan(m.pearson(s, TRUTH))
    assert m.precision_at_top(s, TRUTH, 20) == pytest.approx(1 / 5)  # all tied -> all in


def test_ranking_metrics_names() -> None:
    out = m.ranking_metrics([1, 2, 3, 4, 5], TRUTH[::-1], top_k_percent=(10, 50), kendall_top_percent=50)
    assert out["kendall_tau"] == pytest.approx(1.0)
    assert {"precision_top_10", "precision_bottom_50", "best_rank_top_50", "worst_rank_top_10", "kendall_top_50"} <= set(out)


def test_infinite_scores_rank_at_the_extremes() -> None:
    s = np.array([5.0, 4.0, 3.0, 2.0, -np.inf])  # the worst cell has a -inf score
    assert m.kendall_tau_b(s, TRUTH) == pytest.approx(1.0)
    assert m.spearman(s, TRUTH) == pytest.approx(1.0)
    assert m.pearson(s, TRUTH) == pytest.approx(1.0)  # over the four finite pairs
    assert m.precision_at_bottom(s, TRUTH, 20) == 1.0
