"""Ensembles of proxies, computed by the reducer from the stored scores (nothing re-scored).

Configured under ``ensembles`` in ``conf/config.yaml``; every ensemble is computed per
(space, dataset, seed) on the cells for which all its proxies have a usable score (``ok``,
or an infinite ``nonfinite`` one, as for single proxies), each proxy oriented by its
registered direction first. Two kinds:

- ``vote``: Abdelfattah et al. (ICLR 2021, "Zero-Cost Proxies for Lightweight NAS"), as the
  ``vote`` cell of SamsungLabs/zero-cost-nas notebooks/nasbench201_correlations.ipynb
  computes it: for every ordered pair (i, j) of distinct cells whose accuracies differ, each
  proxy votes "i is better" when its score of i is strictly greater than that of j (a tie
  votes "j"); i is predicted better when at least half the proxies vote so; the result is
  the share of ordered pairs predicted right (the notebook prints it as the vote's
  "correlation"). It is a pairwise metric, not a per-cell score, so the vote appears in the
  metrics only as ``pairwise_accuracy``; its proxies get the same metric (one voter), so the
  report shows them side by side.
- ``mean_rank``: each cell's score is the mean over the proxies of its rank among the cells
  (1 = worst, ties get their average rank); higher is better. It is a per-cell score, so
  it gets every metric of ``orchestrator.metrics`` plus ``pairwise_accuracy``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from orchestrator.metrics import ranking_metrics

KINDS = ("vote", "mean_rank")
PAIRWISE = "pairwise_accuracy"


@dataclass(frozen=True)
class Ensemble:
    """One configured ensemble: its kind and the proxies it combines, in config order."""

    kind: str
    members: tuple[str, ...]

    @property
    def name(self) -> str:
        """How the ensemble is called in metrics.parquet and report.md."""
        return f"{self.kind}({'+'.join(self.members)})"


def parse_ensembles(config: Mapping[str, Any] | None, known: Collection[str] | None = None) -> list[Ensemble]:
    """The ensembles of an ``ensembles`` config section (None: none). Each kind takes one
    list of proxy names or a list of such lists. ValueError naming the problem otherwise,
    also for a proxy name not in ``known`` when that is given."""
    if not config:
        return []
    if not isinstance(config, Mapping):
        raise ValueError("ensembles must be a mapping, e.g. ensembles.vote=[synflow,jacob_cov,snip]")
    out: list[Ensemble] = []
    for kind, value in config.items():
        if kind not in KINDS:
            raise ValueError(f"unknown ensemble kind ensembles.{kind}; known: {', '.join(KINDS)}")
        if value is None:
            continue
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"ensembles.{kind} must be a list of proxy names or a list of such lists")
        groups = [value] if all(isinstance(v, str) for v in value) else list(value)
        for group in groups:
            if not isinstance(group, (list, tuple)) or not all(isinstance(v, str) for v in group):
                raise ValueError(f"ensembles.{kind} must be a list of proxy names or a list of such lists; got {group!r}")
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError(f"ensembles.{kind} needs at least two different proxies; got {list(group)}")
            unknown = [p for p in group if known is not None and p not in known]
            if unknown:
                raise ValueError(f"ensembles.{kind} names unknown proxies {unknown}; known: {', '.join(sorted(known or ()))}")
            ensemble = Ensemble(str(kind), tuple(group))
            if ensemble not in out:
                out.append(ensemble)
    return out


# --- the computations, on plain arrays --------------------------------------------------
def vote_pairwise_accuracy(scores: np.ndarray, accuracy: np.ndarray, block: int = 256) -> float:
    """Share of ordered pairs of cells with different accuracies whose order the majority
    of the proxies gives right. ``scores`` is proxies x cells, every row higher-is-better;
    one row gives that proxy's own pairwise accuracy. nan when no pair differs."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    acc = np.asarray(accuracy, dtype=np.float64)
    n_voters, n = scores.shape
    right = total = 0
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        truly_better = acc[rows, None] > acc[None, :]
        differs = acc[rows, None] != acc[None, :]
        votes = np.zeros(truly_better.shape, dtype=np.int64)
        for s in scores:
            votes += s[rows, None] > s[None, :]
        predicted_better = 2 * votes >= n_voters  # "numpos >= len(mets) / 2"
        right += int(np.sum((predicted_better == truly_better) & differs))
        total += int(np.sum(differs))
    return right / total if total else float("nan")


def mean_rank(scores: np.ndarray) -> np.ndarray:
    """Per cell, the mean over proxies (rows, higher-is-better) of its rank among the
    cells: 1 for the lowest score, ties sharing their average rank."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    return np.mean([stats.rankdata(row, method="average") for row in scores], axis=0)


# --- from the scores table ----------------------------------------------------------------
def member_matrix(
    usable: pa.Table, members: Sequence[str], seed: int, sign: Callable[[str], float]
) -> tuple[list[str], np.ndarray]:
    """Cell ids scored by every member for ``seed`` (sorted) and the members x cells matrix
    of their oriented scores."""
    per_member = []
    for proxy in members:
        rows = usable.filter(pc.and_(pc.equal(usable["proxy"], proxy), pc.equal(usable["seed"], seed)))
        per_member.append(dict(zip(rows["arch_id"].to_pylist(), rows["score"].to_pylist())))
    ids = sorted(set.intersection(*(set(m) for m in per_member)))
    matrix = np.array([[sign(p) * m[i] for i in ids] for p, m in zip(members, per_member)], dtype=np.float64)
    return ids, matrix.reshape(len(members), len(ids))


def ensemble_seed_rows(
    usable: pa.Table,
    truth: Mapping[str, float],
    ensembles: Iterable[Ensemble],
    where: Mapping[str, Any],
    sign: Callable[[str], float],
    top_k: Sequence[float],
    kendall_k: float,
) -> list[dict[str, Any]]:
    """Per-seed metric rows (``aggregate`` = "seed") of every ensemble whose proxies were
    all scored, and the pairwise accuracy of every vote's proxies, for one (space, dataset):
    ``usable`` holds that pair's usable score rows, ``where`` its space, dataset and truth
    column, ``sign`` +1 or -1 per proxy (its direction)."""
    scored = set(usable["proxy"].to_pylist())
    out: list[dict[str, Any]] = []
    single_done: set[tuple[str, int]] = set()

    def add(proxy: str, seed: int, values: Mapping[str, float], n: int) -> None:
        for metric, value in values.items():
            out.append(dict(where, proxy=proxy, seed=seed, aggregate="seed", metric=metric, value=value, n_cells=n))

    for ensemble in ensembles:
        if not set(ensemble.members) <= scored:
            continue
        seeds = sorted(set(usable.filter(pc.is_in(usable["proxy"], pa.array(ensemble.members)))["seed"].to_pylist()))
        for seed in seeds:
            ids, matrix = member_matrix(usable, ensemble.members, seed, sign)
            keep = [k for k, i in enumerate(ids) if i in truth]
            if len(keep) < 2:
                continue
            acc = np.array([truth[ids[k]] for k in keep], dtype=np.float64)
            if ensemble.kind == "vote":
                add(ensemble.name, seed, {PAIRWISE: vote_pairwise_accuracy(matrix[:, keep], acc)}, len(keep))
                for proxy in ensemble.members:
                    if (proxy, seed) not in single_done:
                        single_done.add((proxy, seed))
                        s, a = _single(usable, proxy, seed, sign, truth)
                        add(proxy, seed, {PAIRWISE: vote_pairwise_accuracy(s, a)}, len(s))
            else:  # ranks among every cell the members scored, then the cells with truth
                combined = mean_rank(matrix)[keep]
                values = ranking_metrics(combined, acc, top_k, kendall_k)
                values[PAIRWISE] = vote_pairwise_accuracy(combined, acc)
                add(ensemble.name, seed, values, len(keep))
    return out


def _single(
    usable: pa.Table, proxy: str, seed: int, sign: Callable[[str], float], truth: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    rows = usable.filter(pc.and_(pc.equal(usable["proxy"], proxy), pc.equal(usable["seed"], seed)))
    pairs = [(sign(proxy) * s, truth[i]) for i, s in zip(rows["arch_id"].to_pylist(), rows["score"].to_pylist()) if i in truth]
    arr = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def over_seeds(seed_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds of per-seed rows, per (space,
    dataset, truth, proxy, metric); n_cells is the smallest over the seeds."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in seed_rows:
        groups.setdefault((r["space"], r["dataset"], r["truth"], r["proxy"], r["metric"]), []).append(r)
    out = []
    for (space, dataset, truth, proxy, metric), rows in groups.items():
        values = np.array([r["value"] for r in rows], dtype=np.float64)
        std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        n = min(r["n_cells"] for r in rows)
        for aggregate, value in (("mean", float(np.mean(values))), ("std", std)):
            out.append(dict(space=space, dataset=dataset, truth=truth, proxy=proxy, seed=None,
                            aggregate=aggregate, metric=metric, value=value, n_cells=n))
    return out


def describe(ensemble: Ensemble, scored: Collection[str]) -> str:
    """One report line: what the ensemble is, or which of its proxies were not scored."""
    missing = [p for p in ensemble.members if p not in scored]
    if missing:
        return f"`{ensemble.name}`: not computed, {', '.join(missing)} not scored in this sweep"
    if ensemble.kind == "vote":
        return (f"`{ensemble.name}`: majority vote of the proxies' order for every pair of cells "
                "(Abdelfattah et al. 2021); only its pairwise accuracy is defined")
    return f"`{ensemble.name}`: mean over the proxies of each cell's rank (direction-aware)"
