"""Bootstrap distributions of the ranking metrics, vectorised over resamples of cells.

One set of resamples per (space, dataset): ``n_boot`` draws, with replacement, of the
cells that have truth and a usable score of any proxy (``draw``). Every proxy, seed and
ensemble of that pair is evaluated on the same draws, so the seeds' values can be averaged
draw by draw (the pooled interval) and two proxies subtracted draw by draw (the paired
comparison). A proxy that lacks some drawn cells uses the drawn cells it has.

Per draw the metrics are those of ``orchestrator.metrics`` on the drawn cells, duplicates
included (a duplicated cell is a pair tied in both score and accuracy): Spearman as the
Pearson correlation of average ranks, Pearson on the finite scores, Kendall's tau-b
(scipy, O(n log n) per draw), the tie-aware precision at top and bottom K%, and the
pairwise accuracy of one voter from Kendall's pair counts. A vote of several proxies uses
the draws as multiplicity weights on its pair counts (``vote_pairwise``).
"""
from __future__ import annotations

import math
import warnings
import zlib
from typing import Iterator, Sequence

import numpy as np
from scipy import stats

from orchestrator.metrics import _fmt
from orchestrator.stats import tied_pairs

#: elements (draws x cells) handled at once: bounds the memory of a chunk to ~100 MB
CHUNK_ELEMENTS = 1_000_000


def draw(n_cells: int, n_boot: int, seed: int, *names: str) -> np.ndarray:
    """``n_boot`` x ``n_cells`` indices, seeded by ``seed`` and the names (space, dataset)."""
    entropy = [seed, *(zlib.crc32(name.encode()) for name in names)]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    dtype = np.int32 if n_cells < 2**31 else np.int64
    return rng.integers(0, n_cells, size=(n_boot, n_cells), dtype=dtype)


def chunks(n_boot: int, n_cells: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(n_cells, 1))
    for start in range(0, n_boot, step):
        yield slice(start, min(n_boot, start + step))


def row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair, nan entries left out; nan where a row is constant."""
    keep = ~(np.isnan(x) | np.isnan(y))
    count = keep.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = np.where(keep, x, 0).sum(axis=1) / count
        my = np.where(keep, y, 0).sum(axis=1) / count
        dx = np.where(keep, x - mx[:, None], 0)
        dy = np.where(keep, y - my[:, None], 0)
        sxy, sxx, syy = (dx * dy).sum(axis=1), (dx * dx).sum(axis=1), (dy * dy).sum(axis=1)
        r = sxy / np.sqrt(sxx * syy)
    r = np.where((sxx > 0) & (syy > 0) & (count > 1), r, np.nan)
    return np.clip(r, -1, 1)


def _row_ties(sorted_rows: np.ndarray) -> np.ndarray:
    """Pairs tied per row of rows sorted ascending (nan, never equal to itself, adds none)."""
    n_rows, n_cols = sorted_rows.shape
    group = np.repeat(np.arange(n_rows), n_cols)
    return tied_pairs([sorted_rows.ravel()], group, n_rows)


def _row_top_count(valid_n: np.ndarray, percent: float) -> np.ndarray:
    """``metrics.top_count`` of each row: k = ceil(percent% of its scored cells), 1 to n."""
    return np.minimum(valid_n, np.maximum(1, np.ceil(valid_n * percent / 100.0 - 1e-9).astype(np.int64)))


def _precision(s: np.ndarray, a: np.ndarray, s_sorted: np.ndarray, a_sorted: np.ndarray,
               valid_n: np.ndarray, percent: float, top: bool) -> np.ndarray:
    """Tie-aware precision at top (or bottom) ``percent`` of each row (nan = not drawn)."""
    k = _row_top_count(valid_n, percent)
    rows = np.arange(len(s))
    idx = np.maximum(k - 1, 0)
    if top:  # k-th largest: the sorted rows hold valid values first, ascending
        s_cut = s_sorted[rows, np.maximum(valid_n - k, 0)]
        a_cut = a_sorted[rows, np.maximum(valid_n - k, 0)]
        chosen, truly = s >= s_cut[:, None], a >= a_cut[:, None]
    else:
        s_cut, a_cut = s_sorted[rows, idx], a_sorted[rows, idx]
        chosen, truly = s <= s_cut[:, None], a <= a_cut[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (chosen & truly).sum(axis=1) / chosen.sum(axis=1)
    return np.where(valid_n >= 2, out, np.nan)


def boot_metrics(scores: np.ndarray, accuracy: np.ndarray, index: np.ndarray,
                 top_k: Sequence[float], kendall_top: float | None = None) -> dict[str, np.ndarray]:
    """Every interval metric of one scored vector on every draw of ``index``.
    ``scores``: one value per cell of the draw's universe (oriented, nan = not scored).
    ``kendall_top``: also Kendall's tau inside each draw's top ``kendall_top`` percent."""
    n_boot, n_cells = index.shape
    out: dict[str, list[np.ndarray]] = {}

    def put(name: str, values: np.ndarray) -> None:
        out.setdefault(name, []).append(values)

    for part in chunks(n_boot, n_cells):
        s = scores[index[part]]
        a = np.where(np.isnan(s), np.nan, accuracy[index[part]])
        valid_n = (~np.isnan(s)).sum(axis=1)
        rhos, taus = _row_correlations(s, a)
        put("spearman", rhos)
        finite = np.isfinite(s)
        put("pearson", row_pearson(np.where(finite, s, np.nan), np.where(finite, a, np.nan)))
        s_sorted, a_sorted = np.sort(s, axis=1), np.sort(a, axis=1)
        put("kendall_tau", taus)
        n0 = valid_n * (valid_n - 1) // 2
        n1, n2 = _row_ties(s_sorted), _row_ties(a_sorted)
        with np.errstate(divide="ignore", invalid="ignore"):
            pairs = (n0 - n2).astype(np.float64)
            s_stat = np.nan_to_num(taus) * np.sqrt((n0 - n1).astype(np.float64) * pairs)
            put("pairwise_accuracy", np.where(pairs > 0, (pairs + s_stat) / (2 * pairs), np.nan))
        for k in top_k:
            put(f"precision_top_{_fmt(k)}", _precision(s, a, s_sorted, a_sorted, valid_n, k, top=True))
            put(f"precision_bottom_{_fmt(k)}", _precision(s, a, s_sorted, a_sorted, valid_n, k, top=False))
        if kendall_top is not None:
            put(f"kendall_top_{_fmt(kendall_top)}", _kendall_in_top(s, a, kendall_top))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _kendall_in_top(s: np.ndarray, a: np.ndarray, percent: float) -> np.ndarray:
    """Kendall's tau-b inside the proxy's (tie-aware) top ``percent`` of each row's drawn
    cells, as ``metrics.kendall_in_top`` on one vector (a resample repeats cells, as it
    repeats them for the other metrics). Vectorised over rows: each row's chosen cells are
    gathered into a padded block and every pair is compared there (the top sets are small:
    k% of the cells), tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)) as scipy counts it."""
    valid = ~np.isnan(s)
    valid_n = valid.sum(axis=1)
    k = _row_top_count(valid_n, percent)
    ordered = np.sort(np.where(valid, s, -np.inf), axis=1)[:, ::-1]
    cut = ordered[np.arange(len(s)), np.maximum(k - 1, 0)]
    chosen = valid & (s >= cut[:, None])
    width = int(chosen.sum(axis=1).max(initial=0))
    out = np.full(len(s), np.nan)
    if width < 2:
        return out
    order = np.argsort(~chosen, axis=1, kind="stable")[:, :width]  # the chosen cells first
    inside = np.take_along_axis(chosen, order, axis=1)
    xs, ys = np.take_along_axis(s, order, axis=1), np.take_along_axis(a, order, axis=1)
    upper = np.triu(np.ones((width, width), dtype=bool), 1)
    step = max(1, CHUNK_ELEMENTS // (width * width * 4))
    for lo in range(0, len(s), step):
        part = slice(lo, lo + step)
        pairs = inside[part, :, None] & inside[part, None, :] & upper
        dx = _order_signs(xs[part])
        dy = _order_signs(ys[part])
        n0 = pairs.sum(axis=(1, 2))
        n1 = (pairs & (dx == 0)).sum(axis=(1, 2))
        n2 = (pairs & (dy == 0)).sum(axis=(1, 2))
        signed = np.where(pairs, dx.astype(np.int64) * dy, 0).sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = signed / np.sqrt((n0 - n1).astype(np.float64) * (n0 - n2))
        out[part] = np.where((n0 - n1 > 0) & (n0 - n2 > 0), tau, np.nan)
    return out


def _order_signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i - v_j) of every pair of each row, by comparison: equal infinities tie (as
    ranks treat them) and nan padding gives 0, with no arithmetic on either."""
    left, right = values[:, :, None], values[:, None, :]
    return (left > right).astype(np.int8) - (left < right).astype(np.int8)


def boot_correlations(scores: np.ndarray, accuracy: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """Spearman and Kendall on every draw only (the paired comparisons' statistics)."""
    out: dict[str, list[np.ndarray]] = {"spearman": [], "kendall_tau": []}
    n_boot, n_cells = index.shape
    for part in chunks(n_boot, n_cells):
        s = scores[index[part]]
        a = np.where(np.isnan(s), np.nan, accuracy[index[part]])
        rhos, taus = _row_correlations(s, a)
        out["spearman"].append(rhos)
        out["kendall_tau"].append(taus)
    return {k: np.concatenate(v) for k, v in out.items()}


def _row_correlations(s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman's rho (Pearson's r of average ranks) and Kendall's tau-b of each row pair,
    the row's nan cells (not drawn, or not scored) left out."""
    with warnings.catch_warnings():  # a constant row: scipy warns and gives nan, the answer
        warnings.simplefilter("ignore")
        rhos = row_pearson(stats.rankdata(s, axis=1, nan_policy="omit"), stats.rankdata(a, axis=1, nan_policy="omit"))
        taus = [stats.kendalltau(row[~np.isnan(row)], acc[~np.isnan(row)]).statistic
                if (~np.isnan(row)).sum() > 1 else np.nan for row, acc in zip(s, a)]
    return rhos, np.asarray(taus, dtype=np.float64)


# --- the vote of several proxies --------------------------------------------------------
def _vote_blocks(scores: np.ndarray, accuracy: np.ndarray, block: int) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Row blocks of the ordered-pair matrices "the majority orders (i, j) right" and
    "accuracies of i and j differ" (block x n each; never the whole n x n)."""
    n_voters, n = scores.shape
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        votes = np.zeros((rows.stop - rows.start, n), dtype=np.int32)
        for s in scores:
            votes += s[rows, None] > s[None, :]
        predicted = 2 * votes >= n_voters  # "numpos >= len(mets) / 2"
        truly = accuracy[rows, None] > accuracy[None, :]
        differs = accuracy[rows, None] != accuracy[None, :]
        yield rows, (predicted == truly) & differs, differs


def vote_pairwise(scores: np.ndarray, accuracy: np.ndarray, weights: np.ndarray | None = None,
                  block: int = 256) -> tuple[float, np.ndarray | None]:
    """Exact pairwise accuracy of the majority vote (proxies x cells, oriented) and, with
    ``weights`` (draws x cells: how often each cell was drawn), its value on every draw:
    sum w_i w_j right_ij / sum w_i w_j differ_ij, in row blocks (O(n^2) time, O(block n)
    memory)."""
    right = total = 0
    w = None if weights is None else weights.astype(np.float32)
    boot_right = None if w is None else np.zeros(len(w), np.float64)
    boot_total = None if w is None else np.zeros(len(w), np.float64)
    for rows, good, differs in _vote_blocks(scores, accuracy, block):
        right += int(good.sum())
        total += int(differs.sum())
        if w is not None:
            boot_right += ((w[:, rows] @ good.astype(np.float32)) * w).sum(axis=1)
            boot_total += ((w[:, rows] @ differs.astype(np.float32)) * w).sum(axis=1)
    value = right / total if total else float("nan")
    if w is None:
        return value, None
    with np.errstate(divide="ignore", invalid="ignore"):
        return value, np.where(boot_total > 0, boot_right / boot_total, np.nan)


def sampled_pairs(n_cells: int, accuracy: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` ordered pairs (i, j), i != j, drawn uniformly (seeded) among those whose
    accuracies differ."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x707A1]))
    got_i, got_j, have = [], [], 0
    while have < n_pairs:
        i = rng.integers(0, n_cells, size=n_pairs)
        j = rng.integers(0, n_cells, size=n_pairs)
        keep = accuracy[i] != accuracy[j]
        got_i.append(i[keep])
        got_j.append(j[keep])
        have += int(keep.sum())
    return np.concatenate(got_i)[:n_pairs], np.concatenate(got_j)[:n_pairs]


def vote_sampled(scores: np.ndarray, accuracy: np.ndarray, pairs: tuple[np.ndarray, np.ndarray],
                 weights: np.ndarray | None = None, boot_pairs: int = 100_000) -> tuple[float, float, np.ndarray | None]:
    """The vote's pairwise accuracy estimated on sampled pairs: the estimate, its Monte
    Carlo standard error sqrt(p (1 - p) / m), and with ``weights`` (draws x cells) its
    value per draw on the first ``boot_pairs`` pairs, shifted by the difference between
    the full sample's estimate and that subsample's (so the interval is centred on the
    reported value)."""
    i, j = pairs
    votes = np.zeros(len(i), dtype=np.int32)
    for s in scores:
        votes += s[i] > s[j]
    right = (2 * votes >= len(scores)) == (accuracy[i] > accuracy[j])
    p = float(right.mean())
    se = math.sqrt(p * (1 - p) / len(right))
    if weights is None:
        return p, se, None
    m = min(boot_pairs, len(right))
    ii, jj, rr = i[:m], j[:m], right[:m].astype(np.float32)
    num = np.zeros(len(weights))
    den = np.zeros(len(weights))
    for start in range(0, m, 20_000):
        sl = slice(start, start + 20_000)
        prod = weights[:, ii[sl]].astype(np.float32) * weights[:, jj[sl]]
        num += prod @ rr[sl]
        den += prod.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = np.where(den > 0, num / den, np.nan)
    return p, se, boot + (p - float(rr.mean()))


def draw_weights(index: np.ndarray) -> np.ndarray:
    """How often each cell was drawn, per draw (draws x cells, uint16)."""
    n_boot, n_cells = index.shape
    out = np.zeros((n_boot, n_cells), dtype=np.uint16)
    for b in range(n_boot):
        out[b] = np.bincount(index[b], minlength=n_cells)
    return out


def poisson_weights(n_cells: int, n_boot: int, seed: int, *names: str) -> np.ndarray:
    """Poisson(1) multiplicities per draw and cell (draws x cells, uint8): the large-n
    equivalent of a draw of n cells with replacement (Hanley & MacGibbon 2006, Computer
    Methods and Programs in Biomedicine 83:57-62)."""
    entropy = [seed, 1, *(zlib.crc32(name.encode()) for name in names)]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    return np.minimum(rng.poisson(1.0, size=(n_boot, n_cells)), 255).astype(np.uint8)
