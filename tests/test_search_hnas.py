"""HNAS's search (searches/hnas.py): the score, the growing pool and its picks, worked out by
hand on tiny tables; the Bayesian optimisation's bookkeeping, determinism and settings."""
from __future__ import annotations

import numpy as np
import pytest

from searches import SearchInputs, SearchRun, SearchTable, get_search
from searches.hnas import GrowingPool, hnas_score, pool_draws

METHOD = get_search("hnas")


def make_table(metric, cond, accuracy, drawable=None) -> SearchTable:
    n = len(metric)
    return SearchTable(np.array([str(i) for i in range(n)]), np.array([f"cell{i}" for i in range(n)]),
                       {"cifar10_test_12ep": np.asarray(accuracy, dtype=np.float64)},
                       {"snip": np.asarray(metric, dtype=np.float64), "ntk_cond_hnas": np.asarray(cond, dtype=np.float64)},
                       {"snip": True, "ntk_cond_hnas": False}, drawable)


def make_run(seed: int = 0, **settings) -> SearchRun:
    return SearchRun("hnas", "snip", "cifar10", seed, METHOD.settings(settings))


def search(run: SearchRun, table: SearchTable):
    METHOD.check(run.params, table)
    (choice,) = METHOD.fn(run, SearchInputs(table, {}))
    return choice


def test_score_by_hand():
    """M = 2, kappa = 10, target 5, c = -2: 0.01 |4 - 25| + 10 / 2.000001;
    M = 0.5, kappa = 3: 0.01 |0.25 - 25| + 3 / 0.500001."""
    got = hnas_score(np.array([2.0, 0.5]), np.array([10.0, 3.0]), 5.0, -2.0)
    np.testing.assert_allclose(got, [0.21 + 10 / 2.000001, 0.2475 + 3 / 0.500001], rtol=1e-12)
    # c = 0 weighs the target term fully; M = -1e-6 divides by zero
    assert hnas_score(np.array([3.0]), np.array([0.0]), 4.0, 0.0)[0] == 7.0
    assert hnas_score(np.array([-1e-6]), np.array([1.0]), 0.0, 0.0)[0] == np.inf


def test_pool_grows_by_call_and_leaves_out_picked_cells():
    """Rows 0..4 with M = 10, 20, 30, 40, 50 and kappa 0 (s = 10^c |M^2 - target^2|).
    Call 1 draws 3, 1, 3: pool [3, 1]; target 0 picks row 1 (M 20).
    Call 2 adds 2, 0, 1: pool [3, 2, 0] (1 was picked); target 0 picks row 0.
    Call 3 adds 4: pool [3, 2, 4]; target 45: |1600 - 2025| = 425 (row 3) beats
    |2500 - 2025| = 475 (row 4) and |900 - 2025| = 1125 (row 2)."""
    pool = GrowingPool(np.array([[3, 1, 3], [2, 0, 1], [4, 4, 4]]), [10, 20, 30, 40, 50], np.zeros(5))
    assert [pool.scored(k) for k in (1, 2, 3)] == [2, 4, 5]
    assert pool.pick(0, 0.0, -2.0) == 1
    assert pool.pick(1, 0.0, -2.0) == 0
    assert pool.pick(2, 45.0, -2.0) == 3
    assert pool.pick(2, 45.0, -2.0) == 4  # the next best once 3 is taken
    assert pool.pick(2, 45.0, -2.0) == 2
    with pytest.raises(ValueError, match="every cell drawn so far was picked"):
        pool.pick(2, 45.0, -2.0)


def test_ties_go_to_the_first_drawn_and_missing_scores_rank_last():
    # rows 1 and 2 score the same (M 5, kappa 0); 2 is drawn first. Row 0: no M (NaN)
    pool = GrowingPool(np.array([[0, 2, 1]]), [np.nan, 5.0, 5.0], np.zeros(3))
    assert [pool.pick(0, 0.0, 0.0) for _ in range(3)] == [2, 1, 0]


@pytest.mark.parametrize("cond, picks", [
    # kappa 0: T = 0, 0.5, 1 (targets 0, 2500, 5000) pick the M closest to each: rows 0, 1, 2
    ([0.0, 0.0, 0.0, 0.0], [0, 1, 2]),
    # row 2's kappa 2e9 adds 2e9 / 5000.000001 ~ 4.0e5 at target 5000, more than row 3's
    # 0.01 |1000^2 - 5000^2| = 2.4e5: the third call picks row 3
    ([0.0, 0.0, 2e9, 0.0], [0, 1, 3]),
])
def test_probes_pick_by_hand(cond, picks):
    """Five probes' worth of calls without a suggestion: calls = probes = 3, at T = 0, 0.5,
    1 and c = -2; 40 draws from 4 cells put all of them in the first call's pool."""
    accuracy = [70.0, 80.0, 75.0, 90.0]
    table = make_table([100.0, 2500.0, 5000.0, 1000.0], cond, accuracy)
    run = make_run(calls=3, probes=3, n_sample=40)
    assert set(pool_draws(run, table)[0]) == {0, 1, 2, 3}
    choice = search(run, table)
    values = [accuracy[r] for r in picks]
    assert choice.curve == tuple(np.maximum.accumulate(values))
    assert choice.row == picks[int(np.argmax(values))]
    assert (choice.variant, choice.budget, choice.truth_queries, choice.proxy_evaluations) == ("proxy", 3, 3, 4)


def random_table(n: int = 300) -> SearchTable:
    rng = np.random.default_rng(7)
    metric = rng.uniform(0, 5000, n)
    accuracy = 90 - np.abs(metric - 3000) / 100 + rng.normal(0, 1, n)
    return make_table(metric, rng.uniform(1, 100, n), accuracy, drawable=np.arange(0, n, 2))


def test_optimiser_run_is_reproducible_and_its_curve_consistent():
    table = random_table()
    run = make_run(calls=6, probes=5, n_sample=20)
    a, b = search(run, table), search(run, table)
    assert a == b
    assert 5 <= a.truth_queries == len(a.curve) <= 6 and a.budget == 6
    assert np.all(np.diff(a.curve) >= 0) and a.curve[-1] == table.truth["cifar10_test_12ep"][a.row]
    assert a.row % 2 == 0  # a drawable cell
    cells = METHOD.proxy_cells(run, table)
    assert a.proxy_evaluations == len(np.unique(cells[:20 * a.truth_queries]))
    assert search(make_run(seed=1, calls=6, probes=5, n_sample=20), table) != a


def test_proxy_cells_are_the_pool_draws_whatever_the_scores():
    table = random_table()
    run = make_run()
    cells = METHOD.proxy_cells(run, table)
    assert cells.shape == (20 * 2000,) and set(cells) <= set(range(0, 300, 2))
    other = make_table(-table.scores["snip"], table.scores["ntk_cond_hnas"], table.truth["cifar10_test_12ep"],
                       table.drawable)
    np.testing.assert_array_equal(METHOD.proxy_cells(run, other), cells)
    assert METHOD.proxies_of("snip", run.params) == ("snip", "ntk_cond_hnas")


def test_reference_defaults():
    """nasbench2_search.py: --total_iters 20, 5 = min(int(20 * 0.25), 10) probes at c = -2,
    --n_sample 2000, --scale 5e3, pbounds (0, 1) and (-4, 0), EI with xi 0."""
    assert METHOD.settings() == {
        "calls": 20, "probes": 5, "probe_c": -2.0, "n_sample": 2000, "scale": 5000.0, "t_range": [0.0, 1.0],
        "c_range": [-4.0, 0.0], "xi": 0.0, "objective": "cifar10_test_12ep", "cond_proxy": "ntk_cond_hnas"}


def test_missing_scores_are_named():
    table = make_table([1.0, 2.0], [1.0, 1.0], [1.0, 2.0])
    table = SearchTable(table.ids, table.archs, table.truth, {"snip": table.scores["snip"]})
    with pytest.raises(ValueError, match="reads 'ntk_cond_hnas' scores"):
        search(make_run(calls=1, probes=1, n_sample=2), table)


@pytest.mark.parametrize("settings, message", [
    ({"t_range": [1.0, 0.0]}, r"t_range must be \[low, high\] with low < high; got \[1.0, 0.0\]"),
    ({"c_range": [0.0, -4.0]}, "c_range must be"),
    ({"calls": 4}, "calls=4 is fewer than its 5 initial probes"),
    ({"probe_c": -5.0}, "probe_c=-5.0 is outside c_range"),
    ({"n_sample": 0}, "n_sample must be at least 1"),
    ({"objective": "cifar10_test"}, "objective='cifar10_test' is not a truth column"),
    ({"calls": 200}, "calls=200 is more than the 150 cells"),
])
def test_check_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        METHOD.check(METHOD.settings(settings), random_table())


def test_check_rejects_an_objective_with_missing_accuracies():
    table = random_table()
    table.truth["cifar10_test_12ep"][4] = np.nan
    with pytest.raises(ValueError, match="is NaN for 1 of the cells"):
        METHOD.check(METHOD.settings(), table)
