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
  report shows them side by side. The counting is in ``orchestrator.resample.vote_pairwise``
  (exact, in row blocks) and ``orchestrator.stats.pairwise_accuracy`` (one voter, O(n log^2 n)).
- ``mean_rank``: each cell's score is the mean over the proxies of its rank among the cells
  (1 = worst, ties get their average rank); higher is better. It is a per-cell score, so
  it gets every metric of ``orchestrator.metrics`` plus ``pairwise_accuracy``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Mapping

import numpy as np
from scipy import stats


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
def mean_rank(scores: np.ndarray) -> np.ndarray:
    """Per cell, the mean over proxies (rows, higher-is-better) of its rank among the
    cells: 1 for the lowest score, ties sharing their average rank."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    return np.mean([stats.rankdata(row, method="average") for row in scores], axis=0)


def describe(ensemble: Ensemble, scored: Collection[str]) -> str:
    """One report line: what the ensemble is, or which of its proxies were not scored."""
    missing = [p for p in ensemble.members if p not in scored]
    if missing:
        return f"`{ensemble.name}`: not computed, {', '.join(missing)} not scored in this sweep"
    if ensemble.kind == "vote":
        return (f"`{ensemble.name}`: majority vote of the proxies' order for every pair of cells "
                "(Abdelfattah et al. 2021); only its pairwise accuracy is defined")
    return f"`{ensemble.name}`: mean over the proxies of each cell's rank (direction-aware)"
