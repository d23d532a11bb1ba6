"""Exact pair counts, interval formulas and multiple-comparison correction for the reducer.

Everything here is vectorised numpy and never holds an n x n matrix:

- ``kendall_counts``: the pair counts behind Kendall's tau-b (concordant minus discordant,
  ties in either variable) in O(n log^2 n), for many independent groups at once (one group
  per bootstrap resample). Discordant pairs are counted as the inversions of the second
  variable once the pairs are sorted by the first (Knight 1966, JASA 61:436-439), here by a
  bottom-up merge whose levels are whole-array numpy operations.
- ``pairwise_from_counts``: the pairwise accuracy of one voter (the share of ordered pairs
  of cells with different accuracies that its scores order right, a tie voting for the
  second cell), which is a Kendall-type count: (P + S) / 2P with P the pairs whose
  accuracies differ and S = concordant - discordant.
- ``fisher_interval``: Fisher's z interval of a correlation with the standard error of
  Bonett & Wright (2000, Psychometrika 65:23-28): 1/(n-3) for Pearson's r,
  (1 + r^2/2)/(n-3) for Spearman's rho and 0.437/(n-4) for Kendall's tau (the latter
  from Fieller, Hartley & Pearson 1957, Biometrika 44:470-481).
- ``zou_difference``: the interval of the difference of two overlapping dependent
  correlations r(a, truth) - r(b, truth) from their own intervals (Zou 2007, Psychological
  Methods 12:399-413), the correlation between the two estimates by the Pearson-Filon
  formula (Steiger 1980, Psychological Bulletin 87:245-251), and its p-value by inverting
  the interval.
- ``wilson_interval``: Wilson's score interval of a share (Wilson 1927, JASA 22:209-212),
  the large-sample interval of a precision at top-K.
- ``percentile_interval`` and ``bootstrap_p_value``: Efron & Tibshirani (1993, An
  Introduction to the Bootstrap, ch. 13 and 16); the p-value adds one to both counts
  (Davison & Hinkley 1997, Bootstrap Methods and their Application, eq. 4.11).
- ``holm``: Holm (1979, Scand. J. Statistics 6:65-70) step-down adjusted p-values.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special

#: Kendall's tau's variance factor on the Fisher z scale (Fieller et al. 1957)
KENDALL_FACTOR = 0.437


@dataclass(frozen=True)
class PairCounts:
    """Per group: n0 pairs, n1 tied in x, n2 tied in y, n3 tied in both, discordant."""

    n0: np.ndarray
    n1: np.ndarray
    n2: np.ndarray
    n3: np.ndarray
    discordant: np.ndarray

    @property
    def s(self) -> np.ndarray:
        """Concordant minus discordant pairs."""
        concordant = self.n0 - self.n1 - self.n2 + self.n3 - self.discordant
        return concordant - self.discordant

    def tau_b(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.s / np.sqrt((self.n0 - self.n1).astype(np.float64) * (self.n0 - self.n2))


def tied_pairs(keys: list[np.ndarray], group: np.ndarray, n_groups: int) -> np.ndarray:
    """Pairs per group equal in every one of ``keys`` (each array already in sorted order)."""
    n = len(group)
    if n == 0:
        return np.zeros(n_groups, np.int64)
    new = np.ones(n, dtype=bool)
    new[1:] = group[1:] != group[:-1]
    for k in keys:
        new[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.append(starts, n))
    per = lengths * (lengths - 1) // 2
    return np.bincount(group[starts], weights=per, minlength=n_groups).round().astype(np.int64)


def _inversions(y: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, pairs i < j (positions in the group) with y[i] > y[j]; ``group`` sorted,
    ``y`` non-negative integers. Bottom-up merge: at width w every w-run is sorted, and each
    element of a right run counts the elements of its left partner run above it."""
    n = len(y)
    out = np.zeros(n_groups, np.float64)
    if n < 2:
        return out.astype(np.int64)
    group = group.astype(np.int64)
    sizes = np.bincount(group, minlength=n_groups)
    pos = np.arange(n, dtype=np.int64) - np.concatenate(([0], np.cumsum(sizes)[:-1]))[group]
    longest = int(sizes.max())
    span = int(y.max()) + 1
    y = y.astype(np.int64)
    width = 1
    while width < longest:
        per_group = longest // (2 * width) + 1
        block = group * per_group + pos // (2 * width)
        left = (pos // width) % 2 == 0
        key = block * span + y
        left_keys = key[left]  # sorted: each left run is sorted and blocks increase
        right_keys, right_block = key[~left], block[~left]
        above = (np.searchsorted(left_keys, (right_block + 1) * span, "left")
                 - np.searchsorted(left_keys, right_keys, "right"))
        out += np.bincount(group[~left], weights=above, minlength=n_groups)
        key.sort(kind="stable")  # runs merge: timsort on sorted runs
        y = key - block * span
        width *= 2
    return out.round().astype(np.int64)


def kendall_counts(x: np.ndarray, y: np.ndarray, group: np.ndarray | None = None, n_groups: int = 1) -> PairCounts:
    """The pair counts of (x, y) within each group (``group``: ids 0..n_groups-1, any
    order; None: one group). x and y hold no nan (+-inf are ordinary extreme values)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    group = np.zeros(len(x), np.int64) if group is None else np.asarray(group, dtype=np.int64)
    sizes = np.bincount(group, minlength=n_groups).astype(np.int64)
    n0 = sizes * (sizes - 1) // 2
    _, yr = np.unique(y, return_inverse=True)
    order = np.lexsort((yr, x, group))
    g, xs, ys = group[order], x[order], yr[order]
    n1 = tied_pairs([xs], g, n_groups)
    n3 = tied_pairs([xs, ys], g, n_groups)
    by_y = np.lexsort((yr, group))
    n2 = tied_pairs([yr[by_y]], group[by_y], n_groups)
    return PairCounts(n0, n1, n2, n3, _inversions(ys, g, n_groups))


def pairwise_from_counts(counts: PairCounts) -> np.ndarray:
    """Pairwise accuracy of one voter (x = its scores, y = accuracies): of the ordered
    pairs with different accuracies, the share it orders right, a tie in scores voting for
    the second cell (so a tied pair is right once of its two orders): (P + S) / 2P."""
    pairs = (counts.n0 - counts.n2).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, (pairs + counts.s) / (2 * pairs), np.nan)


def pairwise_accuracy(scores: np.ndarray, accuracy: np.ndarray) -> float:
    """Exact pairwise accuracy of one voter in O(n log^2 n)."""
    return float(pairwise_from_counts(kendall_counts(scores, accuracy))[0])


# --- intervals ------------------------------------------------------------------------
def normal_quantile(level: float) -> float:
    """The two-sided normal critical value of a ``level`` interval."""
    return float(special.ndtri(0.5 + level / 2))


def fisher_se(metric: str, value: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """Standard error of atanh(value) (Bonett & Wright 2000); nan where n is too small."""
    value = np.asarray(value, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "pearson":
            var = 1.0 / (n - 3)
        elif metric == "spearman":
            var = (1 + value**2 / 2) / (n - 3)
        elif metric == "kendall_tau":
            var = KENDALL_FACTOR / (n - 4)
        else:
            raise ValueError(f"no Fisher z standard error for {metric}")
        return np.where(n > 4, np.sqrt(var), np.nan)


def fisher_interval(metric: str, value, n, level: float, q: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fisher z interval of a correlation: tanh(atanh(r) -+ q * se)."""
    q = normal_quantile(level) if q is None else q
    value = np.asarray(value, dtype=np.float64)
    z = np.arctanh(np.clip(value, -1 + 1e-12, 1 - 1e-12))
    se = fisher_se(metric, value, n)
    # |r| = 1 is clipped before atanh: keep the interval around the value itself
    return np.minimum(np.tanh(z - q * se), value), np.maximum(np.tanh(z + q * se), value)


def wilson_interval(share: float, k: int, level: float) -> tuple[float, float]:
    """Wilson's score interval (Wilson 1927) of a share ``share`` of ``k`` trials: the
    large-sample interval of a precision at top-K, whose k chosen cells are the trials
    (the truly best set taken as fixed; at 2,000 cells it is 1.0 to 1.3 times as wide as
    the bootstrap's, tests/test_intervals.py)."""
    q = normal_quantile(level)
    centre = (share + q * q / (2 * k)) / (1 + q * q / k)
    half = q * math.sqrt(share * (1 - share) / k + q * q / (4 * k * k)) / (1 + q * q / k)
    return max(0.0, centre - half), min(1.0, centre + half)


def _zou(r1, r2, r12, metric, n, q):
    l1, u1 = fisher_interval(metric, r1, n, 0.0, q)
    l2, u2 = fisher_interval(metric, r2, n, 0.0, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = ((r12 - 0.5 * r1 * r2) * (1 - r1**2 - r2**2 - r12**2) + r12**3) / ((1 - r1**2) * (1 - r2**2))
    c = np.clip(np.nan_to_num(c, nan=1.0), -1, 1)
    d = r1 - r2
    low = d - np.sqrt(np.maximum((r1 - l1) ** 2 + (u2 - r2) ** 2 - 2 * c * (r1 - l1) * (u2 - r2), 0))
    high = d + np.sqrt(np.maximum((u1 - r1) ** 2 + (r2 - l2) ** 2 - 2 * c * (u1 - r1) * (r2 - l2), 0))
    return low, high


def zou_difference(metric: str, r1, r2, r12, n, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interval of r(a, t) - r(b, t) for correlations sharing t (Zou 2007), with r12 =
    r(a, b) on the same cells, and the two-sided p-value: 1 - the level of the interval
    whose nearer end is 0 (found by bisection, so p < 1 - level exactly when the interval
    excludes 0)."""
    r1, r2, r12, n = (np.asarray(v, dtype=np.float64) for v in (r1, r2, r12, n))
    low, high = _zou(r1, r2, r12, metric, n, normal_quantile(level))
    lo_q, hi_q = np.zeros_like(r1), np.full_like(r1, 40.0)
    for _ in range(80):  # the largest q whose interval still excludes 0
        mid = (lo_q + hi_q) / 2
        a, b = _zou(r1, r2, r12, metric, n, mid)
        excludes = (a > 0) | (b < 0)
        lo_q = np.where(excludes, mid, lo_q)
        hi_q = np.where(excludes, hi_q, mid)
    p = special.erfc(lo_q / np.sqrt(2))  # 2 * (1 - Phi(q))
    p = np.where(np.isfinite(r1 - r2), p, np.nan)
    return low, high, p


def percentile_interval(samples: np.ndarray, level: float, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13); nan resamples (a
    resample where the metric is undefined) are left out."""
    alpha = (1 - level) / 2
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-nan row: nan, said once here
        low = np.nanquantile(samples, alpha, axis=axis)
        high = np.nanquantile(samples, 1 - alpha, axis=axis)
    return low, high


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap differences:
    2 (1 + #{d on the far side of 0}) / (B + 1), at most 1 (Davison & Hinkley 1997)."""
    d = differences[np.isfinite(differences)]
    if len(d) == 0:
        return float("nan")
    far = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
    return float(min(1.0, 2 * (1 + far) / (len(d) + 1)))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (nan stays nan and does not count)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
