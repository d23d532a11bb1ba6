"""HNAS on NAS-Bench-201: Bayesian optimisation of a training-free score's two constants.

Reference: Shu, Dai, Wu and Low, "Unifying and Boosting Gradient-Based Training-Free Neural
Architecture Search" (NeurIPS 2022), shuyao95/HNAS ``nasbench/nasbench2_search.py`` (commit
970789c, November 2022). A cell's score, lower is better, is

    s = 10^c |M^2 - (scale T)^2| + kappa / (M + 1e-6)

with M the run's proxy (raw, as HNAS reads ``logmeasures[metric]``: grad_norm, snip, grasp
or ntk_trace_norm) and kappa the NTK's condition number (``condnum``; HNAS computes both in
one pass on one network and batch, foresight/pruners/measures/condnum.py and
ntk_trace.py). Each objective call adds ``n_sample`` cells drawn uniformly with replacement
to a growing pool, leaves out the cells earlier calls picked, picks the pool's lowest score
(the first drawn on ties; a missing score ranks last) and returns that cell's 12-epoch
accuracy. The ``bayesian-optimization`` package maximises that accuracy over (T, c), as
HNAS: a Gaussian process (Matern 5/2, alpha 1e-6, normalised targets, 5 restarts: the
package's own, unchanged since the version HNAS used) with expected improvement, xi = 0
(bayes_opt 1.x ``maximize(acq="ei")``'s default); ``probes`` lazy probes at T evenly
spaced over its range and c = -2, then ``calls - probes`` suggestions. As in the package,
a suggestion equal to an earlier point returns that point's value without a call, so a
run may make fewer than ``calls`` calls. The answer is the picked cell with the best
12-epoch accuracy (the first on ties); the driver reports its 200-epoch accuracies.

HNAS searches once, on CIFAR-10's 12-epoch accuracy, for every dataset; here the objective
column is a setting, by default ``cifar10_test_12ep`` (the 12-epoch CIFAR-10 run's test
accuracy, train+valid) standing in for HNAS's cifar10-valid 12-epoch validation accuracy,
which the truth table lacks. HNAS's M and kappa are CIFAR-10's for every dataset; here
they are the run's dataset's stored scores. The pool draws come from the run's own
generator before any score exists (``proxy_cells``), independent of the optimiser, whose
random state is derived from the run too; HNAS seeds numpy's global generator and the
optimiser with one seed.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from searches.base import Choice, SearchInputs, SearchRun, SearchTable
from searches.registry import register_search

EPS = 1e-6  # score_arch's ``metric + 1e-6``


def hnas_score(metric: np.ndarray, cond: np.ndarray, target: float, coeff: float) -> np.ndarray:
    """HNAS's ``score_arch``: 10^coeff |metric^2 - target^2| + cond / (metric + 1e-6)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return 10.0 ** coeff * np.abs(metric ** 2 - target ** 2) + cond / (metric + EPS)


def pool_draws(run: SearchRun, table: SearchTable) -> np.ndarray:
    """The cells each call adds to the pool: ``calls`` x ``n_sample`` rows of ``table.pool``,
    drawn uniformly with replacement (``np.random.choice(n, n_sample)``)."""
    pool, params = table.pool, run.params
    return pool[run.rng("pool").integers(0, len(pool), size=(params["calls"], params["n_sample"]))]


class GrowingPool:
    """HNAS's ``sampled_archs``: the cells drawn up to the current call, once each in
    order of first draw, less those picked before."""

    def __init__(self, draws: np.ndarray, metric: np.ndarray, cond: np.ndarray) -> None:
        """``draws``: calls x n_sample rows; ``metric``, ``cond``: raw scores per table row."""
        rows, first = np.unique(draws.ravel(), return_index=True)
        order = np.argsort(first)
        self.rows = rows[order]
        self.joins = first[order] // draws.shape[1]  # the call that first draws each cell
        self.metric = np.asarray(metric, dtype=np.float64)[self.rows]
        self.cond = np.asarray(cond, dtype=np.float64)[self.rows]
        self.picked = np.zeros(len(self.rows), dtype=bool)

    def pick(self, call: int, target: float, coeff: float) -> int:
        """The row call ``call`` (from 0) picks with the score's target and coefficient."""
        live = np.flatnonzero((self.joins <= call) & ~self.picked)
        if not len(live):
            raise ValueError(f"HNAS call {call + 1}: every cell drawn so far was picked before "
                             "(search.settings.n_sample is too small for the cells the search may draw)")
        score = hnas_score(self.metric[live], self.cond[live], target, coeff)
        best = live[int(np.argmin(np.where(np.isnan(score), np.inf, score)))]
        self.picked[best] = True
        return int(self.rows[best])

    def scored(self, calls: int) -> int:
        """Distinct cells in the pool over the first ``calls`` calls (each needs M and kappa)."""
        return int(np.count_nonzero(self.joins < calls))


def _range(params: Mapping[str, Any], key: str) -> tuple[float, float]:
    bounds = params[key]
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        raise ValueError(f"search.settings.{key} must be [low, high] with low < high; got {list(bounds)}")
    return float(bounds[0]), float(bounds[1])


def check(params: Mapping[str, Any], table: SearchTable) -> None:
    _range(params, "t_range")
    c_low, c_high = _range(params, "c_range")
    for key in ("calls", "probes", "n_sample"):
        if params[key] < 1:
            raise ValueError(f"search.settings.{key} must be at least 1; got {params[key]}")
    if params["calls"] < params["probes"]:
        raise ValueError(f"search.settings.calls={params['calls']} is fewer than its {params['probes']} initial probes")
    if not c_low <= params["probe_c"] <= c_high:
        raise ValueError(f"search.settings.probe_c={params['probe_c']} is outside c_range {params['c_range']}")
    if params["scale"] <= 0 or params["xi"] < 0:
        raise ValueError(f"search.settings.scale must be positive and xi at least 0; got {params['scale']}, {params['xi']}")
    if params["calls"] > len(table.pool):
        raise ValueError(f"search.settings.calls={params['calls']} is more than the {len(table.pool)} cells "
                         "the search may draw (each call picks a new one)")
    if params["objective"] not in table.truth:
        raise ValueError(f"search.settings.objective={params['objective']!r} is not a truth column "
                         f"(the table has {sorted(table.truth)})")
    missing = int(np.isnan(np.asarray(table.truth[params["objective"]], dtype=np.float64)[table.pool]).sum())
    if missing:
        raise ValueError(f"search.settings.objective={params['objective']!r} is NaN for {missing} of the cells "
                         "the search may draw (a NAS-Bench-201 v1.0 table has no cifar10_test_12ep)")


@register_search(
    "hnas",
    kind="table",
    # nasbench2_search.py's arguments and constants
    defaults={
        # objective calls: --total_iters 20
        "calls": 20,
        # initial probes: min(int(total_iters * init_portion), 10) with --init_portion 0.25,
        # at T = np.linspace(0, 1, 5) and target_coeff = -2
        "probes": 5,
        "probe_c": -2.0,
        # cells added to the pool per call: --n_sample 2000
        "n_sample": 2000,
        # the target of M is scale * T: --scale 5e3
        "scale": 5000.0,
        # the optimiser's box: pbounds target_metric (0, 1), target_coeff (-4, 0)
        "t_range": [0.0, 1.0],
        "c_range": [-4.0, 0.0],
        # expected improvement's xi: --acq ei with bayes_opt 1.x's maximize default xi=0.0
        "xi": 0.0,
        # the accuracy a call returns: HNAS reads cifar10-valid's 12-epoch valid-accuracy
        # (get_infos, --hp 12, mean over trials); the table's 12-epoch column stands in
        "objective": "cifar10_test_12ep",
        # kappa: HNAS's condition number of the same NTK as ntk_trace_norm (proxies/ntk.py)
        "cond_proxy": "ntk_cond_hnas",
    },
    proxy_cells=lambda run, table: pool_draws(run, table).ravel(),
    extra_proxies=lambda params: (params["cond_proxy"],),
    check=check,
)
def hnas(run: SearchRun, inputs: SearchInputs) -> list[Choice]:
    from bayes_opt import BayesianOptimization, acquisition
    from sklearn.exceptions import ConvergenceWarning

    table, params = inputs.table, run.params
    for proxy in (run.proxy, params["cond_proxy"]):
        if proxy not in table.scores:
            raise ValueError(f"HNAS reads {proxy!r} scores, which the search table lacks")
    pool = GrowingPool(pool_draws(run, table), table.scores[run.proxy], table.scores[params["cond_proxy"]])
    accuracy = np.asarray(table.truth[params["objective"]], dtype=np.float64)
    picks: list[int] = []

    def objective(target_metric: float, target_coeff: float) -> float:
        row = pool.pick(len(picks), target_metric * params["scale"], target_coeff)
        picks.append(row)
        return float(accuracy[row])

    optimizer = BayesianOptimization(
        f=objective, pbounds={"target_metric": _range(params, "t_range"), "target_coeff": _range(params, "c_range")},
        acquisition_function=acquisition.ExpectedImprovement(xi=params["xi"]),
        random_state=int(run.rng("optimiser").integers(0, 2 ** 32)), verbose=0)
    for t in np.linspace(*_range(params, "t_range"), params["probes"]):
        optimizer.probe({"target_metric": float(t), "target_coeff": params["probe_c"]}, lazy=True)
    with warnings.catch_warnings():
        # the GP's hyperparameters at their bounds on a few points: expected, not an error
        warnings.simplefilter("ignore", ConvergenceWarning)
        optimizer.maximize(init_points=0, n_iter=params["calls"] - params["probes"])

    values = np.nan_to_num(accuracy[picks], nan=-np.inf)
    curve = tuple(float(v) for v in np.maximum.accumulate(values))
    answer = picks[int(np.argmax(values))]
    return [Choice("proxy", params["calls"], answer, pool.scored(len(picks)), len(picks), curve)]
