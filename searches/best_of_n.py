"""NASWOT's search: draw N random cells, keep the one the proxy scores best.

Reference: BayesWatch/nas-without-training, ``search.py`` (Mellor et al., ICML 2021): for
each of 500 runs, ``searchspace.random_arch()`` N times (uniform over the space's indices,
with replacement), score each cell, take the argmax; the table reports the chosen cell's
test accuracy. Beside the proxy's pick, every run reports, on the same N cells, the oracle's
pick (the best by the search's truth column, ``oracle_truth``) and a random cell (the first
draw, reported once with budget 1), as NASWOT's Table 2 sets them beside it. A cell whose score is missing or failed
ranks last; ties go to the first drawn, as ``numpy.argmax`` does in the reference.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from searches.base import Choice, SearchInputs, SearchRun, SearchTable
from searches.registry import register_search


def draws(run: SearchRun, table: SearchTable) -> np.ndarray:
    """The run's cells: max(n) uniform draws from the drawable rows, with replacement;
    the first n of them are the sample of size n (so the samples of one run are nested)."""
    pool = table.pool
    return pool[run.rng("draws").integers(0, len(pool), size=max(run.params["n"]))]


def check(params: Mapping[str, Any], table: SearchTable) -> None:
    sizes = params["n"]
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"search.settings.n must be a non-empty list of positive integers; got {sizes!r}")
    if max(sizes) > len(table.pool):
        raise ValueError(f"search.settings.n={max(sizes)} is larger than the {len(table.pool)} cells the search "
                         "draws from (search.cells=scored draws from the cells the sweep scored)")


@register_search(
    "best_of_n",
    kind="table",
    defaults={"n": [10, 100, 1000], "oracle_truth": "cifar10_test"},
    proxy_cells=draws,
    check=check,
)
def best_of_n(run: SearchRun, inputs: SearchInputs) -> list[Choice]:
    table = inputs.table
    rows = draws(run, table)
    score = table.oriented(run.proxy)[rows]
    truth = np.nan_to_num(np.asarray(table.truth[run.params["oracle_truth"]], dtype=np.float64)[rows], nan=-np.inf)
    out = []
    for n in run.params["n"]:
        out.append(Choice("proxy", n, int(rows[int(np.argmax(score[:n]))]), n, 0))
        out.append(Choice("oracle", n, int(rows[int(np.argmax(truth[:n]))]), 0, n))
    out.append(Choice("random", 1, int(rows[0]), 0, 0))  # best of one: the same for every n
    return out
