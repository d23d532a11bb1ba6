"""Paired comparisons of proxies: is one proxy's Spearman (Kendall) with the truth higher
than another's, beyond what the choice of cells explains?

For every unordered pair (a, b), a < b by name, of single proxies of one (space, dataset),
on the cells both scored in each seed: the difference metric(a) - metric(b), averaged over
the seeds that scored both. Up to ``metrics.bootstrap.asymptotic_above`` cells it is
computed on each of the partition's common resamples (the same draws as the intervals in
metrics.parquet), giving a percentile interval and a two-sided bootstrap p-value
(``stats.bootstrap_p_value``); above, Zou's (2007) interval for two overlapping dependent
correlations from their Fisher z intervals, and the p-value that inverts it
(``stats.zou_difference``). p_holm: Holm's adjustment over the pairs of the (space,
dataset), per metric. Only the pooled comparison is stored (seed null).
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import stats as sps

from orchestrator.metrics import kendall_tau_b, pearson, spearman
from orchestrator.partition import BOOTSTRAP, Boots, Partition
from orchestrator.resample import boot_correlations
from orchestrator.settings import Settings
from orchestrator.stats import bootstrap_p_value, holm, percentile_interval, zou_difference

METRICS = ("spearman", "kendall_tau")
ZOU = "fisher-z-zou2007"

COMPARISONS_SCHEMA = pa.schema(
    [
        ("space", pa.string()), ("dataset", pa.string()), ("truth", pa.string()), ("metric", pa.string()),
        ("proxy_a", pa.string()), ("proxy_b", pa.string()),
        pa.field("seed", pa.int64(), nullable=True),  # null: pooled over seeds
        ("difference", pa.float64()),
        pa.field("ci_low", pa.float64(), nullable=True), pa.field("ci_high", pa.float64(), nullable=True),
        pa.field("p_value", pa.float64(), nullable=True), pa.field("p_holm", pa.float64(), nullable=True),
        ("n_cells", pa.int64()), pa.field("n_boot", pa.int64(), nullable=True), ("method", pa.string()),
    ]
)


def _corr(metric: str, x: np.ndarray, y: np.ndarray) -> float:
    return spearman(x, y) if metric == "spearman" else kendall_tau_b(x, y)


def compare_partition(part: Partition, settings: Settings, boots: Boots) -> pa.Table:
    """comparisons.parquet's rows for one partition."""
    boot = settings.metrics.bootstrap
    cache: dict[tuple[str, int], np.ndarray] = {}

    def ranks(proxy: str, seed: int, vec: np.ndarray, both: np.ndarray) -> np.ndarray:
        """Average ranks of the proxy's scores on ``both`` (kept while ``both`` is all its cells)."""
        if not np.array_equal(both, ~np.isnan(vec)):
            return sps.rankdata(vec[both])
        if (proxy, seed) not in cache:
            cache[(proxy, seed)] = sps.rankdata(vec[both])
        return cache[(proxy, seed)]

    singles = sorted({p for p, _s in part.scores if p in {q for q, _ in part.jobs}})
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(singles, 2):
        seeds = [s for s in part.seeds if (a, s) in part.scores and (b, s) in part.scores]
        per_seed = []
        for seed in seeds:
            va, vb = part.scores[(a, seed)], part.scores[(b, seed)]
            both = ~np.isnan(va) & ~np.isnan(vb)
            if both.sum() >= 3:
                per_seed.append((seed, va, vb, both))
        if not per_seed:
            continue
        n = min(int(both.sum()) for _s, _a, _b, both in per_seed)
        for metric in METRICS:
            diffs, r1s, r2s, r12s, draws = [], [], [], [], []
            for seed, va, vb, both in per_seed:
                whole = np.array_equal(both, ~np.isnan(va)) and np.array_equal(both, ~np.isnan(vb))
                if whole:  # on all their cells: the values metrics.parquet holds
                    r1, r2 = boots.values[(a, seed)][metric], boots.values[(b, seed)][metric]
                else:
                    r1 = _corr(metric, va[both], part.accuracy[both])
                    r2 = _corr(metric, vb[both], part.accuracy[both])
                diffs.append(r1 - r2)
                if boots.asymptotic:
                    r1s.append(r1)
                    r2s.append(r2)
                    if metric == "spearman":
                        r12s.append(pearson(ranks(a, seed, va, both), ranks(b, seed, vb, both)))
                    else:
                        r12s.append(_corr(metric, va[both], vb[both]))
                else:
                    draws.append(_draws(boots, a, seed, va, both, part.accuracy, metric)
                                 - _draws(boots, b, seed, vb, both, part.accuracy, metric))
            difference = float(np.mean(diffs))
            if boots.asymptotic:
                low, high, p = zou_difference(metric, np.mean(r1s), np.mean(r2s), np.mean(r12s), n, boot.level)
                low, high, p, method, n_boot = float(low), float(high), float(p), ZOU, None
            else:
                samples = np.mean(draws, axis=0)
                low, high = (float(v) for v in percentile_interval(samples, boot.level))
                p, method, n_boot = bootstrap_p_value(samples), BOOTSTRAP, boot.n_boot
            rows.append(dict(space=part.space, dataset=part.dataset, truth=part.truth, metric=metric, proxy_a=a,
                             proxy_b=b, seed=None, difference=difference, ci_low=low, ci_high=high, p_value=p,
                             p_holm=None, n_cells=n, n_boot=n_boot, method=method))
    for metric in METRICS:
        mine = [r for r in rows if r["metric"] == metric]
        adjusted = holm(np.array([r["p_value"] if r["p_value"] is not None else np.nan for r in mine]))
        for r, adj in zip(mine, adjusted):
            r["p_holm"] = float(adj) if np.isfinite(adj) else None
    return pa.Table.from_pylist(rows, schema=COMPARISONS_SCHEMA)


def _draws(boots: Boots, proxy: str, seed: int, vec: np.ndarray, both: np.ndarray, acc: np.ndarray,
           metric: str) -> np.ndarray:
    """The proxy's metric on every draw, on the cells both proxies scored: the interval
    draws already computed when those are all its cells, else computed here."""
    if np.array_equal(both, ~np.isnan(vec)):
        return boots.draws[(proxy, seed)][metric]
    return boot_correlations(np.where(both, vec, np.nan), acc, boots.index)[metric]
