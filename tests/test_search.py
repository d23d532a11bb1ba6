"""Searches with proxies (issue 15): best-of-N on hand-made tables, the driver end to end on
real Ray (missing cells scored through the sweep path, a killed driver resumed to the same
answer), and bad input as one line before any work."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import DATA_ROOT, REPO, make_config

from orchestrator.search import run_search
from orchestrator.sweep import main_with_errors
from proxysweep import load_scores, load_searches
from searches import SearchInputs, SearchRun, SearchTable, get_search
from searches.best_of_n import draws
from spaces import make_space


def hand_table(scores: list[float], truth: list[float], higher_is_better: bool = True) -> SearchTable:
    n = len(scores)
    return SearchTable(np.asarray([str(i) for i in range(n)], dtype=object),
                       np.asarray([f"cell{i}" for i in range(n)], dtype=object),
                       {"acc": np.asarray(truth, dtype=float)}, {"p": np.asarray(scores, dtype=float)},
                       {"p": higher_is_better})


def run_of(n: list[int], seed: int = 0) -> SearchRun:
    return SearchRun("best_of_n", "p", "cifar10", seed, {"n": n, "oracle_truth": "acc"})


def test_best_of_n_picks_by_hand() -> None:
    # 5 cells; the proxy's best is cell 3 (score 9), the most accurate cell 1 (acc 95)
    table = hand_table([1, 2, 0, 9, float("nan")], [50, 95, 60, 70, 99])
    fn = get_search("best_of_n").fn
    for seed in range(20):
        run = run_of([1, 3, 50], seed)
        drawn = [int(r) for r in draws(run, table)]
        choices = {(c.variant, c.budget): c for c in fn(run, SearchInputs(table, {}))}
        assert choices[("random", 1)].row == drawn[0]
        assert choices[("proxy", 1)].row == drawn[0] and choices[("oracle", 1)].row == drawn[0]
        # by hand: the proxy's order is 3 > 1 > 0 > 2, a failed score (nan) last; the oracle's 4 > 1 > 3 > 2 > 0
        proxy_order, oracle_order = [3, 1, 0, 2, 4], [4, 1, 3, 2, 0]
        for n in (3, 50):
            assert choices[("proxy", n)].row == min(drawn[:n], key=proxy_order.index)
            assert choices[("oracle", n)].row == min(drawn[:n], key=oracle_order.index)
            assert choices[("proxy", n)].proxy_evaluations == n and choices[("oracle", n)].truth_queries == n
        assert len(set(drawn)) == 5  # 50 draws with replacement from 5 cells reach all of them


def test_best_of_n_lower_is_better_and_draw_pairing() -> None:
    table = hand_table([5, 1, 3], [1, 2, 3], higher_is_better=False)  # the best is the lowest: cell 1
    choices = get_search("best_of_n").fn(run_of([40]), SearchInputs(table, {}))
    assert next(c for c in choices if c.variant == "proxy").row == 1
    # a run's draws depend on (method, seed) alone: every proxy ranks the same cells
    other = SearchRun("best_of_n", "q", "cifar100", 0, {"n": [40], "oracle_truth": "acc"})
    assert (draws(run_of([40]), table) == draws(other, table)).all()
    assert not (draws(run_of([40], 1), table) == draws(run_of([40]), table)).all()


TINY = ["+search=best_of_n", "sweep.proxies=[params]", "search.proxies=[params,synflow]", "sweep.shard_size=8",
        "search.settings.n=[2,5]", "search.runs=4", "search.runs_per_task=1", "cluster.num_actors=2"]


def test_search_scores_missing_cells_then_resumes(ray_session, tmp_path) -> None:
    out = tmp_path / "search"
    first = run_search(make_config([*TINY, f"out_dir={out}"]))
    assert first.ran == 8  # 2 proxies x 4 seeds
    found = load_searches(out).to_pandas()
    assert len(found) == 8 * 5  # per run: proxy and oracle at n=2 and 5, one random cell
    # every cell a run drew was scored, through the sweep path, with both proxies, once
    space = make_space("nb201", data_root=DATA_ROOT)
    truth = space.ground_truth("cifar10", "cifar10_test").to_pandas().set_index("arch_id")["accuracy"]
    scores = load_scores(out, truth=False).to_pandas()
    assert not scores.duplicated(["arch_id", "proxy"]).any()
    scored = {str(i) for i in scores["arch_id"]}
    assert set(found["arch_id"]) <= scored and set(scores["proxy"]) == {"params", "synflow"}
    for row in found.itertuples():  # the reported accuracy is the benchmark's for the chosen cell
        assert row.cifar10_test == pytest.approx(truth[row.arch_id])
    # the proxy's pick is the best scored of the draws: params picks the largest of the first n cells
    params = scores[scores.proxy == "params"].set_index(scores[scores.proxy == "params"]["arch_id"].astype(str))["score"]
    table = SearchTable(np.asarray(space.cells().ids, dtype=object), np.asarray(space.cells().archs, dtype=object), {})
    for row in found[(found.variant == "proxy") & (found.proxy == "params")].itertuples():
        drawn = [str(table.ids[r]) for r in draws(SearchRun("best_of_n", "params", "cifar10", row.seed,
                                                            {"n": [2, 5]}), table)][:row.budget]
        assert params[row.arch_id] == max(params[c] for c in drawn)
    # report.md has the search section
    assert "## Searches" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert 'id="search-summary"' in page and "No search simulations" not in page

    # lost results (deleted, cut short, a temporary left by a kill) are redone, nothing else
    files = sorted((out / "searches").glob("*/*.parquet"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:100])
    (files[2].parent / f".{files[2].name}.tmp-deadbeef").write_bytes(b"partial")
    shards_before = sorted(p.name for p in (out / "scores").rglob("*.parquet"))
    again = run_search(make_config([*TINY, f"out_dir={out}"]))
    assert again.ran == 2
    assert sorted(p.name for p in (out / "scores").rglob("*.parquet")) == shards_before  # nothing scored again
    redone = load_searches(out).to_pandas().drop(columns="seconds").sort_values(["proxy", "seed", "variant", "budget"])
    before = found.drop(columns="seconds").sort_values(["proxy", "seed", "variant", "budget"])
    assert redone.reset_index(drop=True).equals(before.reset_index(drop=True))


def test_killed_search_resumes_to_the_same_answer(ray_session, tmp_path) -> None:
    """A driver killed with SIGKILL while its runs finish: the rerun runs only the rest,
    and the results equal those of an uninterrupted search."""
    args = [*TINY, "sweep.proxies=[params]", "search.proxies=[params]", "search.runs=120", "search.cells=space",
            "search.settings.n=[3]", "reduce=false"]
    reference = tmp_path / "reference"
    run_search(make_config([*args, f"out_dir={reference}"]))
    out = tmp_path / "killed"  # the same sweep, its cells scored: the kill comes while runs finish
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("searches", ".lock"))
    cmd = [sys.executable, "-m", "orchestrator", f"data.root={DATA_ROOT}", *args, f"out_dir={out}",
           f"cluster.address={ray_session}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 300
    written = 0
    while written < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        written = len(list((out / "searches").glob("*/*.parquet")))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    partial = len(list((out / "searches").glob("*/*.parquet")))
    assert 10 <= partial < 120, f"the driver was not killed mid-search ({partial} of 120 runs written)"
    resumed = run_search(make_config([*args, f"out_dir={out}"]))
    assert resumed.ran == 120 - partial
    cols = ["proxy", "seed", "variant", "budget", "arch_id", "cifar10_test"]
    a = load_searches(out).to_pandas()[cols].sort_values(cols).reset_index(drop=True)
    b = load_searches(reference).to_pandas()[cols].sort_values(cols).reset_index(drop=True)
    assert len(a) == 120 * 3 and a.equals(b)


@pytest.mark.parametrize("overrides, fragment", [
    (["search.method=annealing"], "unknown search method 'annealing'"),
    (["search.proxies=[naswot,nope]"], "unknown proxy 'nope'"),
    (["search.settings.n=[10,20000]"], "search.settings.n=20000 is larger than the 15625 cells"),
    (["+search.settings.m=3"], "search.settings.m is not a setting of best_of_n"),
    (["search.cells=scored"], "holds no scores of proxy naswot on cifar10"),
    (["search.report_truth=[cifar10_tset]"], "no truth column 'cifar10_tset'"),
    (["search.runs=0"], "search.runs must be an integer from 1"),
    (["+search.budget=3"], "unknown setting search.budget"),
])
def test_bad_search_input_is_one_line_before_any_work(tmp_path, capsys, overrides, fragment) -> None:
    out = tmp_path / "out"
    cfg = make_config(["+search=best_of_n", "cluster.address=127.0.0.1:1", f"out_dir={out}", *overrides])
    assert main_with_errors(cfg) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("proxysweep: error: ") and fragment in err[0], err
    assert not out.exists() or not any(out.rglob("*.parquet"))


def test_unknown_search_config_is_one_line(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "+search=annealing", f"out_dir={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("proxysweep: error: bad override") and "search/annealing" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_zero_cost_pt_runs_on_ray_and_writes_its_own_report(ray_session, tmp_path) -> None:
    """A network search through the driver: runs on Ray actors with the dataset's images,
    scores no cell into the sweep, and the folder gets a report of its searches."""
    out = tmp_path / "zcpt"
    tiny = ["+search=zero_cost_pt", "search.runs=2", "search.settings.n_genotypes=1", "search.settings.batch_size=8",
            "search.settings.validation_batches=1", "search.settings.supernet_channels=4",
            "search.settings.supernet_cells_per_stage=1", f"out_dir={out}"]
    outcome = run_search(make_config(tiny))
    assert outcome.ran == 2
    found = load_searches(out).to_pandas()
    assert (found["status"] == "ok").all() and set(found["seed"]) == {0, 1}
    assert set(found["variant"]) >= {"proxy"} and found["cifar10_test"].notna().all()
    assert not (out / "scores").exists() or not any((out / "scores").rglob("*.parquet"))
    assert "## Searches" in (out / "report.md").read_text()
    assert 'id="search-summary"' in (out / "report.html").read_text()
    assert run_search(make_config(tiny)).ran == 0  # finished runs are not redone
