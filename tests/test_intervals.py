"""Intervals, paired comparisons and the scalable pair counts, checked against values
derived by hand or by the O(n^2) definitions, not against the code's own output."""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from conftest import make_config

from orchestrator.compare import compare_partition
from orchestrator.errors import SweepError
from orchestrator.partition import Partition, partition_metrics
from orchestrator.resample import (boot_correlations, boot_metrics, draw, draw_weights, sampled_pairs, vote_pairwise,
                                   vote_sampled)
from orchestrator.settings import load_settings
from orchestrator.stats import (fisher_interval, holm, kendall_counts, pairwise_accuracy, percentile_interval,
                                wilson_interval, zou_difference)


def slow_pairwise(scores: list[list[float]], acc: list[float]) -> float:
    """Every ordered pair with different accuracies; "i better" when at least half of the
    voters score i strictly higher; the share of pairs where that is true."""
    right = total = 0
    for i, j in itertools.permutations(range(len(acc)), 2):
        if acc[i] == acc[j]:
            continue
        votes = sum(1 for s in scores if s[i] > s[j])
        right += (2 * votes >= len(scores)) == (acc[i] > acc[j])
        total += 1
    return right / total


def slow_counts(x, y) -> tuple[int, int]:
    """Concordant and discordant pairs, by their definition."""
    c = d = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        p = (x[i] - x[j]) * (y[i] - y[j])
        c += p > 0
        d += p < 0
    return c, d


# --- exact counts -----------------------------------------------------------------------
def test_pair_counts_and_pairwise_accuracy_match_the_quadratic_definitions() -> None:
    rng = np.random.default_rng(7)
    for _ in range(150):
        n = int(rng.integers(2, 40))
        x = rng.integers(0, 5, n).astype(float)  # many ties
        y = rng.integers(0, 6, n).astype(float)
        c, d = slow_counts(x, y)
        got = kendall_counts(x, y)
        assert int(got.discordant[0]) == d and int(got.s[0]) == c - d
        if len(set(y)) > 1:
            assert pairwise_accuracy(x, y) == pytest.approx(slow_pairwise([x.tolist()], y.tolist()), abs=1e-12)


def test_grouped_counts_equal_separate_ones() -> None:
    rng = np.random.default_rng(3)
    xs = [rng.integers(0, 4, k).astype(float) for k in (5, 1, 17, 2, 9)]
    ys = [rng.integers(0, 3, k).astype(float) for k in (5, 1, 17, 2, 9)]
    group = np.concatenate([np.full(len(x), g) for g, x in enumerate(xs)])
    got = kendall_counts(np.concatenate(xs), np.concatenate(ys), group, len(xs))
    for g, (x, y) in enumerate(zip(xs, ys)):
        c, d = slow_counts(x, y)
        assert got.s[g] == c - d and got.discordant[g] == d


def test_vote_exact_and_sampled_against_the_definition() -> None:
    rng = np.random.default_rng(11)
    n = 60
    acc = rng.integers(0, 8, n).astype(float)
    scores = np.vstack([acc + rng.integers(0, 6, n) for _ in range(3)]).astype(float)
    exact = slow_pairwise(scores.tolist(), acc.tolist())
    assert vote_pairwise(scores, acc, block=7)[0] == pytest.approx(exact, abs=1e-12)
    estimate, se, _ = vote_sampled(scores, acc, sampled_pairs(n, acc, 200_000, 0))
    assert abs(estimate - exact) < 4 * se and se < 0.002


def test_vote_on_a_draw_is_the_vote_of_the_drawn_cells() -> None:
    # a draw with duplicates, weighted counts against the definition on the drawn cells
    rng = np.random.default_rng(5)
    acc = rng.integers(0, 5, 12).astype(float)
    scores = rng.integers(0, 4, (3, 12)).astype(float)
    index = draw(12, 4, 0, "x")
    _, per_draw = vote_pairwise(scores, acc, draw_weights(index), block=5)
    for b in range(4):
        drawn = index[b]
        assert per_draw[b] == pytest.approx(slow_pairwise(scores[:, drawn].tolist(), acc[drawn].tolist()), abs=1e-6)


# --- intervals ----------------------------------------------------------------------------
def test_interval_contains_a_known_rho() -> None:
    # truth 1..12 and scores with two adjacent swaps: d^2 = 1 + 1 + 1 + 1 = 4,
    # rho = 1 - 6 * 4 / (12 * 143) = 0.986013...
    acc = np.arange(1.0, 13.0)
    scores = acc.copy()
    scores[[0, 1]] = scores[[1, 0]]
    scores[[6, 7]] = scores[[7, 6]]
    rho = 1 - 6 * 4 / (12 * (144 - 1))
    draws = boot_metrics(scores, acc, draw(12, 1000, 0, "t"), top_k=(50,))
    low, high = percentile_interval(draws["spearman"], 0.95)
    assert low <= rho <= high and high <= 1.0 and low > 0.8


def _normal_pair(n: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)


def test_intervals_shrink_with_n() -> None:
    widths = []
    for n in (50, 800):
        x, y = _normal_pair(n, 0.6, 1)
        low, high = percentile_interval(boot_correlations(x, y, draw(n, 400, 0, "s"))["spearman"], 0.95)
        widths.append(high - low)
    # the standard error goes as 1/sqrt(n): 16 times the cells, a quarter of the width
    assert widths[1] < widths[0] / 2.5


def test_fisher_z_and_bootstrap_agree_at_2000_cells() -> None:
    """At 2,000 cells (the default switch-over) the two intervals' ends agree within 0.02
    (the ends' Monte Carlo error with 1,000 draws is about 0.003)."""
    n = 2000
    x, y = _normal_pair(n, 0.6, 2)
    draws = boot_metrics(x, y, draw(n, 1000, 0, "agree"), top_k=(10,))
    from scipy import stats

    point = {"spearman": stats.spearmanr(x, y).statistic, "kendall_tau": stats.kendalltau(x, y).statistic,
             "pearson": stats.pearsonr(x, y).statistic}
    for metric, value in point.items():
        boot_low, boot_high = percentile_interval(draws[metric], 0.95)
        low, high = fisher_interval(metric, value, n, 0.95)
        assert abs(boot_low - low) < 0.02 and abs(boot_high - high) < 0.02, metric
        assert low < value < high


def test_wilson_interval_by_hand() -> None:
    """50 of 100: centre (0.5 + z^2/200) / (1 + z^2/100) = 0.5, half-width
    1.96 * sqrt(0.0025 + z^2/40000) / (1 + z^2/100) = 0.0962 (the textbook [0.404, 0.596]);
    0 of 20: [0, z^2/20 / (1 + z^2/20)] = [0, 0.161]."""
    low, high = wilson_interval(0.5, 100, 0.95)
    assert low == pytest.approx(0.40383, abs=1e-4) and high == pytest.approx(0.59617, abs=1e-4)
    low, high = wilson_interval(0.0, 20, 0.95)
    assert low == 0.0 and high == pytest.approx(0.16113, abs=1e-4)


def test_top_k_intervals_of_both_kinds_agree_at_2000_cells() -> None:
    """Above the threshold a precision at top-K gets Wilson's interval on the chosen cells and
    the Kendall inside the top K% a Fisher z interval on them; at 2,000 cells they are as wide
    as the bootstrap's or a little wider (Wilson ignores that the resampled truth set moves,
    which narrows the bootstrap's), and each bootstrap draw's top-K Kendall is the
    definition's on the drawn cells."""
    from orchestrator.metrics import kendall_in_top, precision_at_top, top_count

    n = 2000
    x, y = _normal_pair(n, 0.6, 5)
    index = draw(n, 1000, 0, "topk")
    draws = boot_metrics(x, y, index, top_k=(5, 10, 50), kendall_top=10)
    for k in (5, 10, 50):
        boot_low, boot_high = percentile_interval(draws[f"precision_top_{k}"], 0.95)
        low, high = wilson_interval(precision_at_top(x, y, k), top_count(n, k), 0.95)
        assert 0.95 <= (high - low) / (boot_high - boot_low) <= 1.4, k
        assert low < np.median(draws[f"precision_top_{k}"]) < high
    boot_low, boot_high = percentile_interval(draws["kendall_top_10"], 0.95)
    low, high = fisher_interval("kendall_tau", kendall_in_top(x, y, 10), top_count(n, 10), 0.95)
    assert abs(boot_low - low) < 0.06 and abs(boot_high - high) < 0.06
    for b in (0, 500):
        assert draws["kendall_top_10"][b] == pytest.approx(kendall_in_top(x[index[b]], y[index[b]], 10))


def test_the_top_k_kendall_of_each_draw_with_ties_and_gaps() -> None:
    """The vectorised top-K Kendall of every bootstrap draw equals the definition
    (metrics.kendall_in_top: tau-b inside the tie-aware top set) on the draw's scored cells,
    with heavy ties in both variables, tied infinite scores and cells without a score, and
    without a warning."""
    from orchestrator.metrics import kendall_in_top

    rng = np.random.default_rng(4)
    n = 60
    scores = rng.integers(0, 8, n).astype(float)
    scores[rng.choice(n, 7, replace=False)] = np.nan
    scores[:3] = np.inf  # tied infinities, as a proxy may give
    acc = rng.integers(0, 5, n).astype(float)
    index = draw(n, 200, 0, "ties")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing for the user's console
        got = boot_metrics(scores, acc, index, top_k=(), kendall_top=25)["kendall_top_25"]
    for b in range(200):
        s, a = scores[index[b]], acc[index[b]]
        keep = ~np.isnan(s)
        want = kendall_in_top(s[keep], a[keep], 25)
        assert (np.isnan(got[b]) and np.isnan(want)) or got[b] == pytest.approx(want, abs=1e-12), b


def test_zou_difference_agrees_with_the_bootstrap_of_the_difference() -> None:
    n = 2000
    rng = np.random.default_rng(4)
    truth = rng.normal(size=n)
    a = 0.7 * truth + 0.71 * rng.normal(size=n)
    b = 0.5 * truth + 0.6 * a + 0.6 * rng.normal(size=n)  # correlated with a, as proxies are
    index = draw(n, 1000, 0, "zou")
    from scipy import stats

    for metric, fn in (("spearman", stats.spearmanr), ("kendall_tau", stats.kendalltau)):
        da, db = boot_correlations(a, truth, index)[metric], boot_correlations(b, truth, index)[metric]
        boot_low, boot_high = percentile_interval(da - db, 0.95)
        r1, r2, r12 = fn(a, truth).statistic, fn(b, truth).statistic, fn(a, b).statistic
        low, high, p = zou_difference(metric, r1, r2, r12, n, 0.95)
        assert abs(boot_low - low) < 0.01 and abs(boot_high - high) < 0.01, (metric, boot_low, low, boot_high, high)
        assert (p < 0.05) == (low > 0 or high < 0)


def test_holm_by_hand() -> None:
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> 0.06 (monotone)
    got = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # nan is left out (m = 2): 0.01 x 2 = 0.02; 0.02 x 1 = 0.02
    assert holm(np.array([0.01, np.nan, 0.02]))[[0, 2]] == pytest.approx([0.02, 0.02])
    assert holm(np.array([0.6, 0.7])) == pytest.approx([1.0, 1.0])  # 0.6 x 2 capped at 1, then monotone


def _settings(n_boot: int = 1000, above: int = 2000):
    return load_settings(make_config(["+sweep=nb201_smoke", f"metrics.bootstrap.n_boot={n_boot}",
                                      f"metrics.bootstrap.asymptotic_above={above}"]), check_files=False)


@pytest.mark.parametrize("asymptotic", [False, True])
def test_a_proxy_against_itself_differs_by_exactly_zero(asymptotic: bool) -> None:
    n = 40
    x, y = _normal_pair(n, 0.5, 9)
    other = np.random.default_rng(0).normal(size=n)
    part = Partition("nb201", "cifar10", "t", np.arange(n).astype(str), y,
                     {("a", 0): x, ("a_copy", 0): x.copy(), ("b", 0): other},
                     [("a", 0), ("a_copy", 0), ("b", 0)], [0])
    settings = _settings(above=10 if asymptotic else 2000)
    _rows, boots = partition_metrics(part, settings)
    rows = compare_partition(part, settings, boots).to_pylist()
    same = [r for r in rows if (r["proxy_a"], r["proxy_b"]) == ("a", "a_copy")]
    assert len(same) == 2  # spearman and kendall_tau
    for r in same:
        assert r["difference"] == 0.0 and r["p_value"] == 1.0 and r["p_holm"] == 1.0
        if not asymptotic:
            assert r["ci_low"] == 0.0 and r["ci_high"] == 0.0
        else:
            assert r["ci_low"] <= 0.0 <= r["ci_high"]


# --- bad settings ---------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("metrics.bootstrap.n_boot=99", "n_boot must be an integer from 100"),
    ("metrics.bootstrap.level=1.0", r"level must be a confidence level in \(0, 1\)"),
    ("metrics.bootstrap.level=0", r"level must be a confidence level in \(0, 1\)"),
    ("metrics.bootstrap.level=nan", r"level must be a confidence level in \(0, 1\)"),
    ("metrics.top_k_percent=[0]", r"percentage in \(0, 100\]"),
    ("metrics.top_k_percent=[100.5]", r"percentage in \(0, 100\]"),
    ("+metrics.bootstrap.nboot=5", "unknown setting metrics.bootstrap.nboot"),
])
def test_metric_settings_out_of_range_are_one_line(override: str, message: str) -> None:
    with pytest.raises(SweepError, match=message) as info:
        load_settings(make_config(["+sweep=nb201_smoke", override]), check_files=False)
    assert "\n" not in str(info.value)


# --- through the reducer ------------------------------------------------------------------
def _hand_folder(tmp_path, bootstrap: dict, proxies=("good", "noisy", "broken")):
    from handmade import manifest, write_folder
    from handmade import row as hand_row
    from test_reduce import CONFIG, truth_of

    from orchestrator.plan import Job

    ids = [str(i) for i in range(1, 41)]
    truth = truth_of(ids)
    rows = []
    for seed in (0, 1):
        job = Job("nb201", "cifar10", seed)
        for i, t in zip(ids, truth):
            made = {"good": t, "noisy": t + 30 * ((int(i) * 7919 + seed) % 13), "other": -t + 5 * (int(i) % 3)}
            # registered names for a vote (ensembles name registered proxies only)
            made.update(synflow=made["good"], jacob_cov=made["noisy"], snip=made["other"])
            rows += [hand_row(job, i, p, made[p]) for p in proxies if p in made]
            if "broken" in proxies:
                rows.append(hand_row(job, i, "broken", float("nan"), "nonfinite"))
    config = dict(CONFIG, metrics={"top_k_percent": [10], "kendall_top_percent": 50, "bootstrap": bootstrap})
    if "snip" in proxies:
        config["ensembles"] = {"vote": ["synflow", "jacob_cov", "snip"]}
    write_folder(tmp_path, manifest("nb201", {p: True for p in proxies}), rows, config)


def test_reducer_writes_intervals_comparisons_and_nan_notes(tmp_path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from orchestrator.reduce import reduce_sweep

    _hand_folder(tmp_path, {"n_boot": 200, "seed": 3})
    result = reduce_sweep(tmp_path)
    m = result.metrics.to_pylist()
    good = [r for r in m if r["proxy"] == "good" and r["metric"] == "spearman"]
    assert {r["aggregate"] for r in good} == {"seed", "mean", "std", "pooled"}
    for r in good:
        if r["aggregate"] in ("seed", "pooled"):  # a perfect ranking: every draw's rho is 1
            assert r["value"] == pytest.approx(1.0) and r["ci_low"] == pytest.approx(1.0)
            assert r["ci_method"] == "bootstrap-percentile" and r["n_boot"] == 200 and r["ci_level"] == 0.95
        else:
            assert r["ci_low"] is None and r["ci_method"] is None
    top = [r for r in m if (r["proxy"], r["metric"], r["aggregate"]) == ("good", "kendall_top_50", "seed")]
    assert top and all(r["ci_method"] == "bootstrap-percentile" and r["ci_low"] == pytest.approx(1.0) for r in top)
    ranks = [r for r in m if r["metric"].startswith("best_rank") and r["proxy"] == "good"]
    assert ranks and all(r["ci_method"] is None for r in ranks)
    broken = [r for r in m if r["proxy"] == "broken"]
    assert broken and all(math.isnan(r["value"]) for r in broken if r["aggregate"] != "std")
    assert all("every score is nan" in r["note"] for r in broken)
    comparisons = pq.read_table(result.comparisons_path)
    assert comparisons.equals(result.comparisons)
    pair = comparisons.filter(pc.and_(pc.equal(comparisons["proxy_a"], "good"), pc.equal(comparisons["metric"], "spearman")))
    assert pair.num_rows == 1 and pair["proxy_b"][0].as_py() == "noisy" and pair["seed"][0].as_py() is None
    row = pair.to_pylist()[0]
    assert row["difference"] > 0 and row["ci_low"] <= row["difference"] <= row["ci_high"] and row["n_cells"] == 40
    report = result.report_path.read_text()
    assert "### Pooled over seeds, with intervals" in report
    assert "- good vs noisy: +" in report


def test_reducer_above_the_threshold_uses_fisher_z_and_zou(tmp_path) -> None:
    from orchestrator.ensembles import PAIRWISE
    from orchestrator.reduce import reduce_sweep

    _hand_folder(tmp_path, {"asymptotic_above": 10}, proxies=("synflow", "jacob_cov", "snip"))
    result = reduce_sweep(tmp_path)
    rows = result.metrics.to_pylist()
    for r in rows:
        if r["aggregate"] not in ("seed", "pooled") or not math.isfinite(r["value"]):
            continue
        if r["metric"] in ("kendall_tau", "spearman", "pearson") or (r["metric"] == PAIRWISE and "vote" not in r["proxy"]):
            assert r["ci_method"] == "fisher-z" and r["n_boot"] is None and r["ci_low"] <= r["value"] <= r["ci_high"]
        elif r["metric"] == PAIRWISE:  # the vote: sampled pairs, their standard error in the note
            assert r["ci_method"] == "bootstrap-percentile" and "sampled ordered pairs" in r["note"]
        elif r["metric"].startswith("precision"):
            assert r["ci_method"] == "wilson" and 0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1
        elif r["metric"].startswith("kendall_top"):  # Fisher z on the 20 cells of the top half
            assert r["ci_method"] == "fisher-z" and r["ci_low"] <= r["value"] <= r["ci_high"]
    # seed 0's Spearman of "good" is 1: the Fisher z interval of 1 is [1, 1]
    good = [r for r in rows if (r["proxy"], r["metric"], r["aggregate"]) == ("synflow", "spearman", "seed")]
    assert good[0]["ci_low"] == pytest.approx(1.0)
    assert set(result.comparisons["method"].to_pylist()) == {"fisher-z-zou2007"}
