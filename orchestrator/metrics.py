"""Ranking metrics of a proxy against the benchmark's accuracies.

All metrics take scores already oriented so that higher means "predicted better" (the
reducer flips proxies registered as lower-is-better) and accuracies where higher is better.

Top-K sets are tie-aware and order-free: with k = ceil(K% of n), the top set holds every
cell whose value is at least the k-th largest, so cells tied at the cut-off are all in
(the set may exceed k). Ranks are 1 for the best accuracy; tied accuracies share the best
(smallest) rank of their group. Scores may be +-inf (the most extreme ranks); rank-based
metrics use them as such, Pearson's r only the finite pairs.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from scipy import stats


def top_count(n: int, percent: float) -> int:
    """k = ceil(percent% of n), at least 1 and at most n."""
    if not 0 < percent <= 100:
        raise ValueError(f"top-K percentage must be in (0, 100], got {percent}")
    return min(n, max(1, math.ceil(n * percent / 100.0 - 1e-9)))


def top_mask(values: np.ndarray, percent: float) -> np.ndarray:
    """Cells whose value is at least the k-th largest (ties at the cut-off included)."""
    k = top_count(len(values), percent)
    threshold = np.sort(values)[::-1][k - 1]
    return values >= threshold


def true_ranks(accuracy: np.ndarray) -> np.ndarray:
    """1 for the most accurate cell; ties share the smallest rank of their group."""
    return stats.rankdata(-accuracy, method="min").astype(np.int64)


def _quiet(fn, *args):  # constant inputs make scipy warn and return nan: nan is the answer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(*args).statistic)


def kendall_tau_b(scores: np.ndarray, accuracy: np.ndarray) -> float:
    return _quiet(stats.kendalltau, scores, accuracy) if len(scores) > 1 else float("nan")


def spearman(scores: np.ndarray, accuracy: np.ndarray) -> float:
    return _quiet(stats.spearmanr, scores, accuracy) if len(scores) > 1 else float("nan")


def pearson(scores: np.ndarray, accuracy: np.ndarray) -> float:
    finite = np.isfinite(scores)
    scores, accuracy = scores[finite], accuracy[finite]
    if len(scores) < 2 or np.ptp(scores) == 0 or np.ptp(accuracy) == 0:
        return float("nan")
    return _quiet(stats.pearsonr, scores, accuracy)


def precision_at_top(scores: np.ndarray, accuracy: np.ndarray, percent: float) -> float:
    """Share of the proxy's top K% that is also in the truly best K%."""
    chosen = top_mask(scores, percent)
    return float(np.sum(chosen & top_mask(accuracy, percent)) / np.sum(chosen))


def precision_at_bottom(scores: np.ndarray, accuracy: np.ndarray, percent: float) -> float:
    """Share of the proxy's bottom K% that is also in the truly worst K%."""
    return precision_at_top(-scores, -accuracy, percent)


def rank_range_at_top(scores: np.ndarray, accuracy: np.ndarray, percent: float) -> tuple[int, int]:
    """Best and worst true rank among the proxy's top K% (B/WR@K)."""
    ranks = true_ranks(accuracy)[top_mask(scores, percent)]
    return int(ranks.min()), int(ranks.max())


def kendall_in_top(scores: np.ndarray, accuracy: np.ndarray, percent: float) -> float:
    """Kendall tau-b between proxy and truth inside the proxy's top K%."""
    chosen = top_mask(scores, percent)
    return kendall_tau_b(scores[chosen], accuracy[chosen])


def _fmt(percent: float) -> str:
    return f"{percent:g}"


def ranking_metrics(
    scores: Sequence[float], accuracy: Sequence[float],
    top_k_percent: Sequence[float] = (1, 5, 10, 50), kendall_top_percent: float = 10,
) -> dict[str, float]:
    """Every metric, by name, for one (proxy, seed): keys kendall_tau, spearman, pearson,
    precision_top_K, precision_bottom_K, best_rank_top_K, worst_rank_top_K, kendall_top_K."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if s.shape != a.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError("scores and accuracies must be non-empty vectors of the same length")
    out = {"kendall_tau": kendall_tau_b(s, a), "spearman": spearman(s, a), "pearson": pearson(s, a)}
    for k in top_k_percent:
        out[f"precision_top_{_fmt(k)}"] = precision_at_top(s, a, k)
        out[f"precision_bottom_{_fmt(k)}"] = precision_at_bottom(s, a, k)
        best, worst = rank_range_at_top(s, a, k)
        out[f"best_rank_top_{_fmt(k)}"] = float(best)
        out[f"worst_rank_top_{_fmt(k)}"] = float(worst)
    out[f"kendall_top_{_fmt(kendall_top_percent)}"] = kendall_in_top(s, a, kendall_top_percent)
    return out
