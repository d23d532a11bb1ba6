"""The numbers behind report.html's figures, from the reducer's partitions.

metrics.parquet holds the ranking metrics at the user's top-K list only; the figures need
more (every cell's rank, a precision curve at every K from 1% to 50%, the proxies' scores
against each other, the time per cell), so they are computed here, vectorised, from the
scores the reducer streamed (``orchestrator.partition``): already oriented (lower-is-better
proxies negated), on the cells with truth, the usable rows only (``ok``, and ``nonfinite``
rows whose score is an infinity).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from scipy import stats

from orchestrator.metrics import pearson

if TYPE_CHECKING:
    from orchestrator.partition import Partition

#: the top-K precision curve's percentages
CURVE_PERCENTS = np.arange(1, 51, dtype=np.float64)


@dataclass
class Scored:
    """One (space, dataset): its truth and every proxy's usable oriented scores per seed."""

    space: str
    dataset: str
    truth: str
    accuracy: np.ndarray  # per cell of the truth table (finite accuracies only)
    runs: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)  # proxy -> seed -> (cells, scores)
    seconds: dict[str, float] = field(default_factory=dict)  # proxy -> median seconds per cell


def scored_from(partition: Partition, seconds: Mapping[str, float]) -> Scored:
    """The figures' view of one reducer partition: per proxy and seed, the cells (indices
    into the partition's accuracies) with a usable score and those scores, already
    oriented; ``seconds``: median seconds per cell of each proxy."""
    scored = Scored(partition.space, partition.dataset, partition.truth, partition.accuracy)
    for (proxy, seed), vector in sorted(partition.scores.items()):
        cells = np.flatnonzero(~np.isnan(vector))
        if len(cells):
            scored.runs.setdefault(proxy, {})[seed] = (cells, vector[cells])
        scored.seconds[proxy] = seconds.get(proxy, float("nan"))
    return scored


def precision_curve(scores: np.ndarray, accuracy: np.ndarray, percents: Sequence[float] = CURVE_PERCENTS) -> np.ndarray:
    """Precision at top K% for every K at once, with orchestrator.metrics' tie-aware sets
    (every cell at least as good as the k-th, k = ceil(K% of n)), so its values match
    metrics.parquet's ``precision_top_<K>``."""
    s, a = np.asarray(scores, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    n = len(s)
    p = np.asarray(percents, dtype=np.float64)
    k = np.clip(np.ceil(n * p / 100.0 - 1e-9).astype(np.int64), 1, n)
    s_cut, a_cut = np.sort(s)[::-1][k - 1], np.sort(a)[::-1][k - 1]
    # sort by score, best first: the proxy's top set at cut t is a prefix, its size a count
    order = np.argsort(-s, kind="stable")
    chosen = np.searchsorted(-s[order], -s_cut, side="right")  # cells with score >= cut
    in_top = np.arange(n)[None, :] < chosen[:, None]  # booleans, one row per K: no n x K counts
    hits = np.count_nonzero(in_top & (a[order][None, :] >= a_cut[:, None]), axis=1)
    return hits / chosen


def mean_curve(runs: dict[int, tuple[np.ndarray, np.ndarray]], accuracy: np.ndarray) -> np.ndarray:
    """A proxy's precision curve, mean over its seeds (seeds with fewer than 2 cells left out)."""
    curves = [precision_curve(s, accuracy[c]) for c, s in runs.values() if len(c) >= 2]
    return np.mean(curves, axis=0) if curves else np.full(len(CURVE_PERCENTS), np.nan)


def ranks(values: np.ndarray) -> np.ndarray:
    """1 for the best (largest) value; ties share the mean of their ranks."""
    return stats.rankdata(-np.asarray(values, dtype=np.float64), method="average")


def rank_pairs(cells: np.ndarray, scores: np.ndarray, accuracy: np.ndarray, limit: int,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Proxy ranks and accuracy ranks of one seed's cells, ranked over all of them, then
    subsampled (seeded, without replacement) to at most ``limit`` points; with Spearman's
    rho over all cells and their count."""
    x, y = ranks(scores), ranks(accuracy[cells])
    rho = pearson(x, y)
    pick = np.random.default_rng(seed).choice(len(x), size=limit, replace=False) if len(x) > limit else slice(None)
    return x[pick], y[pick], rho, len(x)


def proxy_correlations(scored: Scored) -> tuple[list[str], np.ndarray, dict[int, int]]:
    """Spearman's rho between every two proxies' scores, per seed over the cells every
    proxy of that seed scored (a proxy with fewer than 3 usable cells in a seed is left out
    of it), then the mean over seeds; with the common cells' count per seed. One common set
    per seed, not one per pair: one rank per column, so nb101's 423k cells stay cheap."""
    proxies = sorted(scored.runs)
    index = {p: i for i, p in enumerate(proxies)}
    total, count, common_counts = np.zeros((len(proxies),) * 2), np.zeros((len(proxies),) * 2), {}
    for seed in sorted({s for runs in scored.runs.values() for s in runs}):
        here = [p for p in proxies if seed in scored.runs[p] and len(scored.runs[p][seed][0]) >= 3]
        everyone = np.ones(len(scored.accuracy), dtype=bool)
        for p in here:
            mine = np.zeros(len(scored.accuracy), dtype=bool)
            mine[scored.runs[p][seed][0]] = True
            everyone &= mine
        common = np.flatnonzero(everyone)
        if len(here) < 2 or len(common) < 3:
            continue
        common_counts[seed] = len(common)
        columns = []
        for p in here:
            cells, values = scored.runs[p][seed]
            lookup = np.full(len(scored.accuracy), np.nan)
            lookup[cells] = values
            columns.append(lookup[common])
        with warnings.catch_warnings():  # a constant proxy has no correlation: nan is the answer
            warnings.simplefilter("ignore")
            rho = np.atleast_2d(np.corrcoef(stats.rankdata(np.column_stack(columns), axis=0), rowvar=False))
        at = np.ix_([index[p] for p in here], [index[p] for p in here])
        finite = np.isfinite(rho)
        total[at] += np.where(finite, rho, 0.0)
        count[at] += finite
    with np.errstate(invalid="ignore", divide="ignore"):
        return proxies, np.where(count > 0, total / np.maximum(count, 1), np.nan), common_counts


def pareto_front(quality: Sequence[float], cost: Sequence[float]) -> np.ndarray:
    """Which points no other point dominates (at least as good in both, better in one):
    higher ``quality`` and lower ``cost`` are better; points with a nan are never on it."""
    q, c = np.asarray(quality, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    valid = np.isfinite(q) & np.isfinite(c)
    qi, qj, ci, cj = q[:, None], q[None, :], c[:, None], c[None, :]
    dominated = ((qj >= qi) & (cj <= ci) & ((qj > qi) | (cj < ci)) & valid[None, :]).any(axis=1)
    return valid & ~dominated
