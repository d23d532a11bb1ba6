"""Random search and ageing evolution on NAS-Bench-201, plain and warm-started by a proxy.

Reference: egracheva/epsinas ``NAS-Bench-201/Integration.ipynb`` (commit 7e4a9bc, July
2025), ``run_random_search`` and ``run_evolution_search``, which follow the examples of
Abdelfattah et al. (ICLR 2021) in SamsungLabs/zero-cost-nas ``notebooks/nas_examples.ipynb``
(commit a43bfbc); the evolution is the ageing (regularized) evolution of Real et al. (AAAI
2019) as AutoDL-Projects ``exps/NAS-Bench-201-algos/R_EA.py`` (commit f46486e) runs it on
NB201. A "trained" cell is a truth query: its accuracy in the search's truth column.

- warm-up pool: ``warmup`` cells drawn uniformly, with replacement, from the cells the run
  may score (``table.pool``), ranked by the proxy, best first (a stable sort: ties and a
  cell drawn twice keep their draw order; a missing or failed score ranks last, where the
  reference set NaN to 0).
- random: ``budget`` cells drawn uniformly with replacement (``random_arch``) from the whole
  space: random search reads no proxy, so the run's scored cells do not restrict it.
  warm random: the same draws, except that the first min(warmup, budget) queries are the
  pool's cells in proxy order (``i < zero_cost_warmup``), so the two differ only by the
  warm-up.
- evolution: a population of ``population`` cells (plain: the first random-search draws;
  warm: the pool's top cells, i.e. warm random's first queries), then per query a
  tournament of ``tournament`` distinct members (``random.sample``; AutoDL's R_EA draws
  with replacement), the best by truth as parent (the youngest of equal best, as ``sorted(...)[-1]``), one mutation, the child
  queried and added, the oldest member removed. Plain and warm evolution draw tournaments
  and mutations from one stream, so they make the same random choices.
- mutation (``node_edge``, epsinas's ``nasspace.mutate_arch`` = AutoDL's
  ``mutate_arch_func``): a node uniformly, one of its incoming edges uniformly, a new
  operation uniformly among the four others; ``edge``: an edge uniformly among the six
  (zero-cost-nas's ``mutate_spec``). Children are any cell of the space (truth exists for
  every NB201 cell); one-edge moves reach every cell.

Each variant's ``curve`` is the best queried truth after each query (the reference's
``best_valids``) and its cell is the best queried one (the first on ties); the driver
reports that cell's test accuracies. ``distinct: true`` draws the pool and the random
cells without replacement (a queried cell is never drawn again by random search; the
reference may query a cell twice, and counts it twice). Every draw comes from the run's
own generators (the notebook's ``random.seed = 21`` assigns, and seeds nothing). The
reference's "move proposal" (parents or children chosen by the proxy) is not run here.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from searches.base import Choice, SearchInputs, SearchRun, SearchTable
from searches.registry import register_search
from spaces.nb201.network import OPS
from spaces.nb201.space import format_cell, parse_cell

MUTATIONS = ("node_edge", "edge")
#: NB201's three intermediate nodes; node t (1..3) has t incoming edges, stored at flat
#: positions t(t-1)/2 .. t(t-1)/2 + t - 1 of the six edges (spaces.nb201.network.EDGES)
NODES = 3


def warm_pool(run: SearchRun, table: SearchTable) -> np.ndarray:
    """The warm-up pool: ``warmup`` rows of ``table.pool`` in draw order (the cells whose
    proxy scores the run reads)."""
    pool, n = table.pool, run.params["warmup"]
    rng = run.rng("warmup")
    if run.params["distinct"]:
        return pool[rng.choice(len(pool), size=n, replace=False)]
    return pool[rng.integers(0, len(pool), size=n)]


def random_rows(run: SearchRun, table: SearchTable) -> np.ndarray:
    """Random search's ``budget`` draws from every cell of the space."""
    n, rng = run.params["budget"], run.rng("random")
    if run.params["distinct"]:
        return rng.choice(len(table), size=n, replace=False)
    return rng.integers(0, len(table), size=n)


def mutate(arch: str, rng: np.random.Generator, how: str = "node_edge") -> str:
    """``arch`` with one edge changed to one of the four other operations."""
    ops = list(parse_cell(arch))
    if how == "node_edge":
        node = int(rng.integers(1, NODES + 1))
        edge = node * (node - 1) // 2 + int(rng.integers(0, node))
    else:
        edge = int(rng.integers(0, len(ops)))
    others = [op for op in OPS if op != ops[edge]]
    ops[edge] = others[int(rng.integers(0, len(others)))]
    return format_cell(ops)


def ageing_evolution(initial: np.ndarray, budget: int, population: int, tournament: int,
                     value: Callable[[int], float],
                     child_of: Callable[[int, np.random.Generator], int],
                     rng: np.random.Generator) -> list[int]:
    """The rows queried, in order: the first ``population`` of ``initial``, then one child
    per tournament until ``budget`` queries."""
    queried = [int(r) for r in initial[:min(population, budget)]]
    rows, values = list(queried), [value(r) for r in queried]  # oldest first
    while len(queried) < budget:
        picks = rng.choice(len(rows), size=tournament, replace=False).tolist()
        best = max(picks, key=lambda i: (values[i], i))  # the youngest of equal best
        child = child_of(rows[best], rng)
        queried.append(child)
        rows.append(child)
        values.append(value(child))
        del rows[0], values[0]
    return queried


def truth_column(params: Mapping[str, Any], dataset: str) -> str:
    try:
        return params["truth"][dataset]
    except KeyError:
        raise ValueError(f"search.settings.truth names no column for dataset {dataset!r} "
                         f"(it has {sorted(params['truth'])})") from None


def check(params: Mapping[str, Any], table: SearchTable) -> None:
    for key in ("budget", "warmup", "population", "tournament"):
        if params[key] < 1:
            raise ValueError(f"search.settings.{key} must be at least 1; got {params[key]}")
    if params["tournament"] > params["population"]:
        raise ValueError(f"search.settings.tournament={params['tournament']} is larger than the population "
                         f"({params['population']}): a tournament draws distinct members")
    if params["warmup"] < params["population"]:
        raise ValueError(f"search.settings.warmup={params['warmup']} is smaller than the population "
                         f"({params['population']}) that warm evolution starts from the pool's top cells")
    if params["mutation"] not in MUTATIONS:
        raise ValueError(f"search.settings.mutation must be one of {MUTATIONS}; got {params['mutation']!r}")
    if params["distinct"] and params["warmup"] > len(table.pool):
        raise ValueError(f"search.settings.warmup={params['warmup']} distinct cells is more than the "
                         f"{len(table.pool)} the search may score")
    if params["distinct"] and params["budget"] > len(table):
        raise ValueError(f"search.settings.budget={params['budget']} distinct cells is more than the "
                         f"{len(table)} cells of the space")
    missing = sorted({c for c in params["truth"].values() if c not in table.truth})
    if missing:
        raise ValueError(f"search.settings.truth names columns the truth table lacks: {missing} "
                         f"(it has {sorted(table.truth)})")


@register_search(
    "evolution",
    kind="table",
    defaults={
        # truth queries per run: Integration.ipynb ``length = 300`` (max_trained_models)
        "budget": 300,
        # cells scored by the proxy for the warm start: ``zero_cost_warmup=3000``
        "warmup": 3000,
        # ageing evolution's population and tournament: ``pool_size=64, tournament_size=10``
        # (zero-cost-nas's nas_examples.ipynb has the same; AutoDL's R_EA scripts use 10 and 3)
        "population": 64,
        "tournament": 10,
        # the column a search "trains" on, per dataset: Integration.ipynb's val_accs, the
        # 200-epoch x-valid accuracy (CIFAR-10: cifar10-valid's, as R_EA's
        # ``dataname = "cifar10-valid"``). CIFAR-100's x-valid is not in the truth table:
        # its x-test column stands in (the search then sees the test split it is judged on)
        "truth": {"cifar10": "cifar10_valid_val", "cifar100": "cifar100_test",
                  "ImageNet16-120": "imagenet16_120_val"},
        # epsinas's nasspace.mutate_arch: node, then edge, then another operation
        "mutation": "node_edge",
        # the reference draws with replacement (random.randint over the 15,625 indices)
        "distinct": False,
    },
    proxy_cells=warm_pool,
    check=check,
)
def evolution(run: SearchRun, inputs: SearchInputs) -> list[Choice]:
    table, params = inputs.table, run.params
    truth = _truth(run, table)
    out = []
    for name, rows in queries(run, table).items():
        values = truth[rows]
        best = int(rows[int(np.argmax(values))])
        curve = tuple(float(v) for v in np.maximum.accumulate(values))
        evaluations = params["warmup"] if name.startswith("warm") else 0
        out.append(Choice(name, params["budget"], best, evaluations, params["budget"], curve))
    return out


def queries(run: SearchRun, table: SearchTable) -> dict[str, np.ndarray]:
    """The rows each variant queries, in order: ``random``, ``warm random``, ``evolution``
    and ``warm evolution``."""
    params, budget = run.params, run.params["budget"]
    truth = _truth(run, table)
    pool = warm_pool(run, table)
    ranked = pool[np.argsort(-table.oriented(run.proxy)[pool], kind="stable")]
    drawn = random_rows(run, table)
    k = min(params["warmup"], budget)

    def child_of(row: int, rng: np.random.Generator) -> int:
        return table.row_of_arch(mutate(str(table.archs[row]), rng, params["mutation"]))

    out = {"random": drawn, "warm random": np.concatenate([ranked[:k], drawn[k:]])}
    for name, initial in (("evolution", drawn), ("warm evolution", ranked)):
        # a fresh generator of the same stream: both make the same random choices
        out[name] = np.array(ageing_evolution(initial, budget, params["population"], params["tournament"],
                                              lambda r: float(truth[r]), child_of, run.rng("evolution")))
    return out


def _truth(run: SearchRun, table: SearchTable) -> np.ndarray:
    """The search's truth column (NaN: never the best)."""
    truth = np.asarray(table.truth[truth_column(run.params, run.dataset)], dtype=np.float64)
    return np.where(np.isnan(truth), -np.inf, truth)
