"""One (space, dataset) of a sweep at a time: its scores read as vectors, and its metric rows.

``read_partitions`` streams the valid shard files one (space, dataset) and seed at a time,
a few thousand files per read, only the columns needed; what a partition keeps is one float
vector per (proxy, seed) over the cells with truth (nan: no usable score), plus, for the
members of mean-rank ensembles, their usable scores of every cell (their ranks are among
every cell they scored). ``partition_metrics`` turns it into the long rows of
metrics.parquet, with intervals: bootstrap percentile intervals on common resamples of the
cells up to ``metrics.bootstrap.asymptotic_above`` cells; above, Fisher z intervals for the
correlations (Kendall inside the top K% on the cells chosen) and Wilson intervals for the
precisions at top K (the cells chosen are the trials).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from orchestrator.ensembles import PAIRWISE, Ensemble, mean_rank
from orchestrator.metrics import _fmt, ranking_metrics, top_mask
from orchestrator.resample import (boot_metrics, draw, draw_weights, poisson_weights, sampled_pairs, vote_pairwise,
                                   vote_sampled)
from orchestrator.settings import Settings
from orchestrator.stats import (fisher_interval, kendall_counts, pairwise_from_counts, percentile_interval,
                               wilson_interval)
from orchestrator.store import SCHEMA, StoredShard

BOOTSTRAP = "bootstrap-percentile"
FISHER = "fisher-z"
WILSON = "wilson"
#: metrics with a Fisher z interval above the asymptotic threshold
CORRELATIONS = ("kendall_tau", "spearman", "pearson")
#: ordered pairs sampled for a vote's pairwise accuracy above the threshold
VOTE_PAIRS = 1_000_000
#: files read at once (bounds the memory of a read)
FILES_PER_READ = 2000
READ_COLUMNS = ["arch_id", "proxy", "score", "status", "seconds", "error"]

METRICS_SCHEMA = pa.schema(
    [
        ("space", pa.string()), ("dataset", pa.string()), ("truth", pa.string()),
        ("proxy", pa.string()),
        pa.field("seed", pa.int64(), nullable=True),
        ("aggregate", pa.string()),  # "seed", "mean", "std" or "pooled" (mean on common resamples)
        ("metric", pa.string()), ("value", pa.float64()), ("n_cells", pa.int64()),
        pa.field("ci_low", pa.float64(), nullable=True), pa.field("ci_high", pa.float64(), nullable=True),
        pa.field("ci_level", pa.float64(), nullable=True),
        pa.field("ci_method", pa.string(), nullable=True),  # "bootstrap-percentile", "fisher-z" or null
        pa.field("n_boot", pa.int64(), nullable=True),
        pa.field("note", pa.string(), nullable=True),
    ]
)


@dataclass
class Partition:
    """The usable scores of one (space, dataset) on its cells with truth."""

    space: str
    dataset: str
    truth: str
    ids: np.ndarray  # cell ids with truth and a usable score of some proxy
    accuracy: np.ndarray
    scores: dict[tuple[str, int], np.ndarray]  # (proxy, seed) -> oriented score per cell, nan = none
    jobs: list[tuple[str, int]]  # every (proxy, seed) with a row in the partition, usable or not
    seeds: list[int]
    mean_ranks: dict[tuple[Ensemble, int], np.ndarray] = field(default_factory=dict)


def usable_mask(table: pa.Table) -> pa.Array:
    """ok rows, and infinite scores: they rank (NASWOT's log-determinant of a singular kernel
    is -inf, the worst score, as in the reference); nan has no rank and is left out."""
    return pc.or_(pc.equal(table["status"], "ok"),
                  pc.and_(pc.equal(table["status"], "nonfinite"), pc.is_inf(table["score"])))


def _reads(shards: Sequence[StoredShard], columns: Sequence[str]) -> Iterator[pa.Table]:
    files = sorted(str(s.path) for s in shards)
    for start in range(0, len(files), FILES_PER_READ):
        part = files[start:start + FILES_PER_READ]
        yield pads.dataset(part, schema=SCHEMA, format="parquet").to_table(columns=list(columns))


def _truths(settings: Settings, dataset: str) -> tuple[tuple[str, ...], pa.Array, np.ndarray]:
    """The dataset's truth columns, the ids of the cells with a finite value in any of
    them, and their values (cells x columns, nan where a column has none)."""
    columns = settings.truth_columns(dataset)
    tables = [settings.search_space.ground_truth(dataset, c) for c in columns]
    accs = [np.asarray(t.column("accuracy").to_numpy(zero_copy_only=False), dtype=np.float64) for t in tables]
    ids = [pc.cast(t.column("arch_id"), pa.string()).combine_chunks() for t in tables]
    union = pc.unique(pa.concat_arrays([i.filter(pa.array(np.isfinite(a))) for i, a in zip(ids, accs)]))
    matrix = np.full((len(union), len(columns)), np.nan)
    for j, (i, a) in enumerate(zip(ids, accs)):
        where = pc.index_in(union, value_set=i)
        found = pc.is_valid(where).to_numpy(zero_copy_only=False)
        matrix[found, j] = a[pc.drop_null(where).to_numpy()]
    return columns, union, matrix


def read_partitions(shards: Sequence[StoredShard], settings: Settings, direction: Callable[[str], bool],
                    summary: Any = None) -> Iterator[Partition]:
    """Each (space, dataset) of ``shards`` in turn, read seed by seed once, and one
    partition per truth column of the dataset (on the cells with a value in it);
    ``summary`` (a report.StatusSummary) is given every row's proxy, status, seconds and
    error."""
    by_pair: dict[tuple[str, str], dict[int, list[StoredShard]]] = {}
    for shard in shards:
        by_pair.setdefault((shard.job.space, shard.job.dataset), {}).setdefault(shard.job.seed, []).append(shard)
    rank_members = {p for e in settings.ensembles if e.kind == "mean_rank" for p in e.members}
    for (space, dataset), by_seed in sorted(by_pair.items()):
        columns, truth_ids, truth_acc = _truths(settings, dataset)
        scores: dict[tuple[str, int], np.ndarray] = {}
        mean_ranks: dict[tuple[Ensemble, int], np.ndarray] = {}
        jobs: set[tuple[str, int]] = set()
        for seed, seed_shards in sorted(by_seed.items()):
            full: dict[str, tuple[list[pa.Array], list[np.ndarray]]] = {}
            for table in _reads(seed_shards, READ_COLUMNS):
                if summary is not None:
                    summary.add(table, dataset, seed)
                usable = table.filter(usable_mask(table))
                where = pc.index_in(usable["arch_id"], value_set=truth_ids)
                kept = usable.filter(pc.is_valid(where))
                at = pc.drop_null(where).to_numpy()
                proxy_col = kept["proxy"].to_numpy(zero_copy_only=False)
                score_col = kept["score"].to_numpy(zero_copy_only=False).astype(np.float64)
                for proxy in np.unique(proxy_col) if len(proxy_col) else ():
                    rows = proxy_col == proxy
                    vec = scores.setdefault((str(proxy), seed), np.full(len(truth_acc), np.nan))
                    vec[at[rows]] = (1.0 if direction(str(proxy)) else -1.0) * score_col[rows]
                jobs.update((str(p), seed) for p in pc.unique(table["proxy"]).to_pylist())
                for proxy in rank_members & set(pc.unique(usable["proxy"]).to_pylist()):
                    part = usable.filter(pc.equal(usable["proxy"], proxy))
                    ids, vals = full.setdefault(proxy, ([], []))
                    ids.append(part["arch_id"].combine_chunks())
                    vals.append((1.0 if direction(proxy) else -1.0) * part["score"].to_numpy(zero_copy_only=False))
            for ensemble in settings.ensembles:
                if ensemble.kind == "mean_rank" and set(ensemble.members) <= set(full):
                    mean_ranks[(ensemble, seed)] = _mean_rank_on_truth(ensemble, full, truth_ids)
        present = np.zeros(len(truth_acc), dtype=bool)
        for vec in scores.values():
            present |= ~np.isnan(vec)
        for j, column in enumerate(columns):
            keep = np.flatnonzero(present & np.isfinite(truth_acc[:, j]))
            yield Partition(
                space, dataset, column, np.asarray(truth_ids.take(pa.array(keep)).to_pylist(), dtype=object),
                truth_acc[keep, j], {k: v[keep] for k, v in scores.items()}, sorted(jobs), sorted(by_seed),
                {k: v[keep] for k, v in mean_ranks.items()},
            )


def _mean_rank_on_truth(ensemble: Ensemble, full: dict[str, tuple[list[pa.Array], list[np.ndarray]]],
                        truth_ids: pa.Array) -> np.ndarray:
    """The mean rank of the cells every member scored (ranked among all of them), on the
    truth cells (nan where not every member scored)."""
    member_ids, member_vals = [], []
    for proxy in ensemble.members:
        ids, vals = full[proxy]
        member_ids.append(pa.concat_arrays(ids))
        member_vals.append(np.concatenate(vals))
    common = member_ids[0]
    for ids in member_ids[1:]:
        common = common.filter(pc.is_in(common, value_set=ids))
    common = pc.unique(common)
    matrix = []
    for ids, vals in zip(member_ids, member_vals):
        matrix.append(vals[pc.index_in(common, value_set=ids).to_numpy()])
    combined = mean_rank(np.array(matrix).reshape(len(ensemble.members), len(common)))
    out = np.full(len(truth_ids), np.nan)
    where = pc.index_in(common, value_set=truth_ids)
    valid = pc.is_valid(where).to_numpy(zero_copy_only=False)
    out[pc.drop_null(where).to_numpy()] = combined[valid]
    return out


# --- metric rows ----------------------------------------------------------------------
@dataclass
class Boots:
    """Per (name, seed): the point values, cell counts and per-draw values of one partition,
    for the pooled rows and the comparisons."""

    asymptotic: bool
    index: np.ndarray | None
    values: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    n_cells: dict[tuple[str, int], int] = field(default_factory=dict)
    draws: dict[tuple[str, int], dict[str, np.ndarray]] = field(default_factory=dict)
    notes: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)


def _metric_names(settings: Settings, pairwise: bool) -> list[str]:
    names = ["kendall_tau", "spearman", "pearson"]
    for k in settings.metrics.top_k_percent:
        names += [f"precision_top_{_fmt(k)}", f"precision_bottom_{_fmt(k)}", f"best_rank_top_{_fmt(k)}",
                  f"worst_rank_top_{_fmt(k)}"]
    names.append(f"kendall_top_{_fmt(settings.metrics.kendall_top_percent)}")
    return names + [PAIRWISE] * pairwise


def partition_metrics(part: Partition, settings: Settings) -> tuple[list[dict[str, Any]], Boots]:
    """The rows of metrics.parquet for one partition, and what the comparisons reuse."""
    boot = settings.metrics.bootstrap
    n_all = len(part.ids)
    asymptotic = n_all > boot.asymptotic_above
    index = None if asymptotic or n_all < 2 else draw(n_all, boot.n_boot, boot.seed, part.space, part.dataset)
    boots = Boots(asymptotic, index)
    weights: np.ndarray | None = None
    scored = {p for (p, _s), v in part.scores.items() if np.any(~np.isnan(v))}
    votes = [e for e in settings.ensembles if e.kind == "vote" and set(e.members) <= scored]
    voters = {p for e in votes for p in e.members}

    def vote_weights() -> np.ndarray:
        nonlocal weights
        if weights is None:
            weights = (poisson_weights(n_all, boot.n_boot, boot.seed, part.space, part.dataset) if asymptotic
                       else draw_weights(index))
        return weights

    for proxy, seed in part.jobs:
        vec = part.scores.get((proxy, seed))
        _single(boots, proxy, seed, vec, part.accuracy, settings, pairwise=proxy in voters)
    for (ensemble, seed), vec in sorted(part.mean_ranks.items(), key=lambda kv: (kv[0][0].name, kv[0][1])):
        _single(boots, ensemble.name, seed, vec, part.accuracy, settings, pairwise=True)
    for ensemble in votes:
        for seed in part.seeds:
            members = [part.scores.get((p, seed)) for p in ensemble.members]
            if any(m is None for m in members):
                continue
            _vote(boots, ensemble, seed, np.array(members), part.accuracy, settings, vote_weights)
    rows = _rows(part, boots, settings)
    return rows, boots


def _nan_rows(boots: Boots, name: str, seed: int, names: Sequence[str], n: int, note: str) -> None:
    boots.values[(name, seed)] = {m: float("nan") for m in names}
    boots.n_cells[(name, seed)] = n
    boots.notes[(name, seed)] = {m: note for m in names}


def _single(boots: Boots, name: str, seed: int, vec: np.ndarray | None, acc: np.ndarray, settings: Settings,
            pairwise: bool) -> None:
    names = _metric_names(settings, pairwise)
    valid = np.zeros(len(acc), dtype=bool) if vec is None else ~np.isnan(vec)
    n = int(valid.sum())
    if n < 2:
        why = ("no usable score on a cell with truth: every score is nan or an error" if n == 0
               else "one cell with truth and a usable score: no ranking to measure")
        _nan_rows(boots, name, seed, names, n, why)
        return
    s, a = vec[valid], acc[valid]
    values = ranking_metrics(s, a, settings.metrics.top_k_percent, settings.metrics.kendall_top_percent)
    counts = kendall_counts(s, a) if pairwise else None
    if counts is not None:
        values[PAIRWISE] = float(pairwise_from_counts(counts)[0])
    boots.values[(name, seed)] = values
    boots.n_cells[(name, seed)] = n
    if boots.asymptotic:
        chosen = _chosen_counts(s, settings)
        if counts is not None:  # pairwise accuracy = 1/2 + tau_b / 2 * sqrt((n0 - n1) / (n0 - n2))
            with np.errstate(divide="ignore", invalid="ignore"):
                chosen["_pa_factor"] = np.sqrt((counts.n0 - counts.n1) / (counts.n0 - counts.n2).astype(np.float64))
        boots.draws[(name, seed)] = chosen
        return
    draws = boot_metrics(vec, acc, boots.index, settings.metrics.top_k_percent, settings.metrics.kendall_top_percent)
    if not pairwise:
        draws.pop(PAIRWISE)
    boots.draws[(name, seed)] = draws


def _chosen_counts(scores: np.ndarray, settings: Settings) -> dict[str, np.ndarray]:
    """How many cells each top-K metric chose (ties at the cut-off included): the sample
    size of its asymptotic interval, stored as ``_chosen_<metric>``."""
    metrics = settings.metrics
    out = {}
    for k in metrics.top_k_percent:
        out[f"_chosen_precision_top_{_fmt(k)}"] = np.array([top_mask(scores, k).sum()])
        out[f"_chosen_precision_bottom_{_fmt(k)}"] = np.array([top_mask(-scores, k).sum()])
    out[f"_chosen_kendall_top_{_fmt(metrics.kendall_top_percent)}"] = np.array(
        [top_mask(scores, metrics.kendall_top_percent).sum()])
    return out


def _vote(boots: Boots, ensemble: Ensemble, seed: int, members: np.ndarray, acc: np.ndarray, settings: Settings,
          weights: Callable[[], np.ndarray]) -> None:
    valid = ~np.isnan(members).any(axis=0)
    n = int(valid.sum())
    key = (ensemble.name, seed)
    if n < 2:
        _nan_rows(boots, ensemble.name, seed, [PAIRWISE], n, "fewer than two cells every member scored")
        return
    boot = settings.metrics.bootstrap
    if boots.asymptotic:
        pairs = sampled_pairs(n, acc[valid], VOTE_PAIRS, boot.seed)
        value, se, draws = vote_sampled(members[:, valid], acc[valid], pairs, weights()[:, valid])
        boots.notes[key] = {PAIRWISE: (f"estimated from {VOTE_PAIRS:,} sampled ordered pairs (seed {boot.seed}), "
                                       f"Monte Carlo standard error {se:.2g}; interval: bootstrap over cells "
                                       "(Poisson weights) on 100,000 of those pairs, centred on the estimate")}
    else:
        value, draws = vote_pairwise(members[:, valid], acc[valid], weights()[:, valid])
    boots.values[key] = {PAIRWISE: value}
    boots.n_cells[key] = n
    boots.draws[key] = {PAIRWISE: draws}


def _interval(boots: Boots, name: str, seed: int | None, metric: str, value: float, n: int,
              level: float) -> tuple[float | None, float | None, str | None]:
    """(low, high, method) of one seed's value (seed None: pooled)."""
    if not np.isfinite(value):
        return None, None, None
    seeds = [seed] if seed is not None else [s for (p, s) in boots.values if p == name]
    draws = [boots.draws.get((name, s), {}) for s in seeds]
    if all(metric in d and d[metric] is not None for d in draws) and draws:
        with warnings.catch_warnings():  # a draw where every seed's value is nan stays nan
            warnings.simplefilter("ignore", RuntimeWarning)
            samples = np.nanmean(np.vstack([d[metric] for d in draws]), axis=0)
        if np.all(np.isnan(samples)):
            return None, None, None
        low, high = percentile_interval(samples, level)
        return float(low), float(high), BOOTSTRAP
    if boots.asymptotic and metric in CORRELATIONS:
        low, high = fisher_interval(metric, value, n, level)
        return float(low), float(high), FISHER
    chosen = [d.get(f"_chosen_{metric}") for d in draws]
    if boots.asymptotic and draws and all(c is not None for c in chosen):
        k = int(min(c[0] for c in chosen))
        if metric.startswith("precision_"):
            low, high = wilson_interval(value, k, level)
            return low, high, WILSON
        low, high = fisher_interval("kendall_tau", value, k, level)
        return (float(low), float(high), FISHER) if np.isfinite(low) else (None, None, None)
    if boots.asymptotic and metric == PAIRWISE:
        factors = [d.get("_pa_factor", np.array([np.nan]))[0] for d in draws]
        taus = [boots.values[(name, s)]["kendall_tau"] for s in seeds]
        factor, tau = float(np.mean(factors)), float(np.mean(taus))
        if not (np.isfinite(factor) and np.isfinite(tau)):
            return None, None, None
        low, high = fisher_interval("kendall_tau", tau, n, level)
        return float(0.5 + low * factor / 2), float(0.5 + high * factor / 2), FISHER
    return None, None, None


def _rows(part: Partition, boots: Boots, settings: Settings) -> list[dict[str, Any]]:
    boot = settings.metrics.bootstrap
    where = dict(space=part.space, dataset=part.dataset, truth=part.truth)
    out: list[dict[str, Any]] = []
    no_interval = "no interval: too few cells for the asymptotic interval"
    names = sorted({p for p, _s in boots.values})
    for name in names:
        seeds = sorted(s for p, s in boots.values if p == name)
        metrics = list(boots.values[(name, seeds[0])])
        for metric in metrics:
            for seed in seeds:
                value = boots.values[(name, seed)][metric]
                n = boots.n_cells[(name, seed)]
                low, high, method = _interval(boots, name, seed, metric, value, n, boot.level)
                note = boots.notes.get((name, seed), {}).get(metric)
                if method is None and boots.asymptotic and note is None and np.isfinite(value) and not _rank(metric):
                    note = no_interval
                out.append(dict(where, proxy=name, seed=seed, aggregate="seed", metric=metric, value=value, n_cells=n,
                                ci_low=low, ci_high=high, ci_level=boot.level if method else None, ci_method=method,
                                n_boot=boot.n_boot if method == BOOTSTRAP else None, note=note))
            values = np.array([boots.values[(name, s)][metric] for s in seeds], dtype=np.float64)
            n = min(boots.n_cells[(name, s)] for s in seeds)
            std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            mean = float(np.mean(values))
            notes = {boots.notes.get((name, s), {}).get(metric) for s in seeds} - {None}
            note = "; ".join(sorted(notes)) or None
            for aggregate, value in (("mean", mean), ("std", std)):
                out.append(dict(where, proxy=name, seed=None, aggregate=aggregate, metric=metric, value=value,
                                n_cells=n, ci_low=None, ci_high=None, ci_level=None, ci_method=None, n_boot=None,
                                note=note))
            low, high, method = _interval(boots, name, None, metric, mean, n, boot.level)
            if method is None and boots.asymptotic and note is None and np.isfinite(mean) and not _rank(metric):
                note = no_interval
            out.append(dict(where, proxy=name, seed=None, aggregate="pooled", metric=metric, value=mean, n_cells=n,
                            ci_low=low, ci_high=high, ci_level=boot.level if method else None, ci_method=method,
                            n_boot=boot.n_boot if method == BOOTSTRAP else None, note=note))
    return out


def _rank(metric: str) -> bool:
    """Rank ranges: integers of one cell each, no interval is computed for them."""
    return metric.startswith(("best_rank", "worst_rank"))

