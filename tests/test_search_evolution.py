"""epsinas's random search and ageing evolution (searches/evolution.py) on hand-made tables.

The table holds every NB201 cell (in product order, not the benchmark's) with a truth that
counts 3x3 convolutions, so the optimum (all six edges ``nor_conv_3x3``) is known; expected
orders and query sequences are worked out by hand in each test.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from searches import SearchInputs, SearchRun, SearchTable, get_search
from searches.evolution import ageing_evolution, mutate, queries
from spaces.nb201.network import OPS
from spaces.nb201.space import format_cell, parse_cell

SPECS = list(itertools.product(OPS, repeat=6))
ARCHS = np.array([format_cell(s) for s in SPECS])
CONVS = np.array([s.count("nor_conv_3x3") for s in SPECS], dtype=np.float64)
OPTIMUM = int(np.flatnonzero(CONVS == 6)[0])
METHOD = get_search("evolution")


def make_table(**kwargs) -> SearchTable:
    truth = {"cifar10_valid_val": CONVS, "cifar100_test": CONVS + 1000.0, "imagenet16_120_val": CONVS}
    # a proxy that disagrees with the truth: the number of skip connections
    skips = np.array([s.count("skip_connect") for s in SPECS], dtype=np.float64)
    return SearchTable(np.array([str(i) for i in range(len(SPECS))]), ARCHS, truth,
                       **{"scores": {"skips": skips}, "higher_is_better": {"skips": True}, **kwargs})


TABLE = make_table()


def make_run(seed: int = 0, dataset: str = "cifar10", proxy: str = "skips", **settings) -> SearchRun:
    return SearchRun("evolution", proxy, dataset, seed, METHOD.settings({"budget": 120, "warmup": 300, **settings}))


def search(run: SearchRun, table: SearchTable = TABLE):
    METHOD.check(run.params, table)
    return {c.variant: c for c in METHOD.fn(run, SearchInputs(table, {}))}


@pytest.mark.parametrize("how", ["node_edge", "edge"])
def test_mutation_changes_one_edge_to_another_op_and_reaches_every_neighbour(how):
    rng = np.random.default_rng(1)
    parent = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    children = set()
    for _ in range(2000):
        child = mutate(parent, rng, how)
        diff = [e for e, (a, b) in enumerate(zip(parse_cell(parent), parse_cell(child))) if a != b]
        assert len(diff) == 1
        children.add(child)
    assert len(children) == 6 * 4  # every one-edge neighbour


def test_node_edge_mutation_picks_the_node_first():
    """epsinas/AutoDL: node 1's single edge is changed a third of the time, each of node 3's
    three edges a ninth."""
    rng = np.random.default_rng(2)
    parent = format_cell(["none"] * 6)
    counts = np.zeros(6)
    for _ in range(9000):
        counts[[a != b for a, b in zip(parse_cell(mutate(parent, rng)), ["none"] * 6)].index(True)] += 1
    np.testing.assert_allclose(counts / 9000, [1 / 3, 1 / 6, 1 / 6, 1 / 9, 1 / 9, 1 / 9], atol=0.02)


def test_ageing_removes_the_oldest_even_when_it_is_the_best():
    """Tournament = the whole population, lower row = better: the best is always the oldest
    member, so each parent is the next-oldest cell: 5, 6, 7 give 15, 16, 17, then 25."""
    out = ageing_evolution(np.array([5, 6, 7]), 8, 3, 3, lambda r: -r, lambda r, rng: r + 10,
                           np.random.default_rng(0))
    assert out == [5, 6, 7, 15, 16, 17, 25, 26]


def test_ageing_breaks_ties_for_the_youngest():
    out = ageing_evolution(np.array([1, 2, 3]), 6, 3, 3, lambda r: 0.0, lambda r, rng: r + 10,
                           np.random.default_rng(0))
    assert out == [1, 2, 3, 13, 23, 33]


def test_budget_below_population_queries_only_the_first_cells():
    out = ageing_evolution(np.array([4, 5, 6]), 2, 3, 2, float, lambda r, rng: r, np.random.default_rng(0))
    assert out == [4, 5]


def test_curves_costs_and_chosen_cells():
    run = make_run()
    got = search(run)
    assert list(got) == ["random", "warm random", "evolution", "warm evolution"]
    rows = queries(run, TABLE)
    for name, choice in got.items():
        curve = np.array(choice.curve)
        assert len(curve) == choice.budget == choice.truth_queries == 120
        assert np.all(np.diff(curve) >= 0)
        np.testing.assert_array_equal(curve, np.maximum.accumulate(CONVS[rows[name]]))
        assert CONVS[choice.row] == curve[-1] and choice.row in rows[name]
        assert choice.proxy_evaluations == (300 if name.startswith("warm") else 0)
    assert got["evolution"].curve[-1] >= got["random"].curve[-1]


def test_a_budget_of_the_whole_space_finds_the_optimum():
    """Distinct draws of every cell; a population of the whole space leaves evolution no
    step, so every variant queries each cell once."""
    n = len(SPECS)
    run = make_run(budget=n, warmup=n, population=n, tournament=1, distinct=True)
    for rows in queries(run, TABLE).values():
        assert sorted(rows) == list(range(n))
    for choice in search(run).values():
        assert choice.row == OPTIMUM and choice.curve[-1] == 6.0 and choice.curve[0] < 6.0


def test_warm_start_queries_the_pools_top_cells_first():
    """The run may score five cells, all in the pool (distinct draws): rows 10, 20, 30, 40, 50
    with proxy 3, 1, 5, 2, 4 rank 30, 50, 10, 40, 20 whatever order they were drawn in."""
    proxy = np.zeros(len(SPECS))
    proxy[[10, 20, 30, 40, 50]] = [3, 1, 5, 2, 4]
    table = make_table(scores={"p": proxy}, higher_is_better={"p": True}, drawable=np.array([10, 20, 30, 40, 50]))
    run = make_run(proxy="p", warmup=5, population=4, tournament=2, budget=12, distinct=True)
    rows = queries(run, table)
    assert list(rows["warm random"][:5]) == [30, 50, 10, 40, 20]
    assert list(rows["warm evolution"][:4]) == [30, 50, 10, 40]
    # the plain and warm variants share the random stream: random search after the warm-up,
    # evolution's first population is random search's first draws
    np.testing.assert_array_equal(rows["warm random"][5:], rows["random"][5:])
    np.testing.assert_array_equal(rows["evolution"][:4], rows["random"][:4])
    # lower is better, and a missing score ranks last
    proxy[30] = np.nan
    low = replace(table, higher_is_better={"p": False})
    assert list(queries(run, low)["warm random"][:5]) == [20, 40, 10, 50, 30]


def test_children_are_one_edge_mutations_of_earlier_queries():
    run = make_run(population=10, tournament=3, budget=60)
    for name in ("evolution", "warm evolution"):
        rows = queries(run, TABLE)[name]
        for k in range(10, 60):
            child = parse_cell(ARCHS[rows[k]])
            assert any(sum(a != b for a, b in zip(child, parse_cell(ARCHS[r]))) == 1 for r in rows[k - 10:k])


def test_the_truth_column_is_the_datasets():
    assert search(make_run(dataset="cifar100"))["random"].curve[0] >= 1000.0
    with pytest.raises(ValueError, match="no column for dataset 'svhn'"):
        search(make_run(dataset="svhn"))


def test_determinism_and_seeds():
    a, b, c = search(make_run(seed=3)), search(make_run(seed=3)), search(make_run(seed=4))
    assert a == b
    for name in a:
        assert a[name] != c[name]
    # the proxy does not change which cells random search draws (runs of one seed are paired)
    other = make_table(scores={"skips": -TABLE.scores["skips"]})
    np.testing.assert_array_equal(queries(make_run(seed=3), other)["random"], queries(make_run(seed=3), TABLE)["random"])


def test_proxy_cells_are_the_warm_up_pool_from_the_drawable_cells():
    table = make_table(drawable=np.arange(100, 400))
    cells = METHOD.proxy_cells(make_run(), table)
    assert len(cells) == 300 and set(cells) <= set(range(100, 400))


@pytest.mark.parametrize("settings, message", [
    ({"tournament": 65}, "tournament=65 is larger than the population"),
    ({"warmup": 10}, "warmup=10 is smaller than the population"),
    ({"mutation": "swap"}, "mutation must be one of"),
    ({"budget": 0}, "budget must be at least 1"),
    ({"truth": {"cifar10": "cifar10_test"}}, r"lacks: \['cifar10_test'\]"),
    ({"distinct": True, "budget": len(SPECS) + 1}, "distinct cells is more than the 15625 cells"),
])
def test_check_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        METHOD.check(METHOD.settings(settings), TABLE)
