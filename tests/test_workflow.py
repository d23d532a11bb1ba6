"""A researcher's workflow on real sweeps: extend a study without re-scoring, read the
results in one line (and with every common Parquet reader), bring a proxy of one's own to a
cluster, score one network from Python."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from conftest import DATA_ROOT, REPO, data_file, make_config
from torch import nn

from orchestrator.scoring import cell_seed, seed_everything
from orchestrator.sweep import run_sweep
from proxysweep import load_metrics, load_scores, score
from spaces import make_space
from benchdata.batches import BatchSpec, draw_batch
from benchdata.images import read_images

CELLS = ["7", "1234", "5000", "15000"]
BASE = ["+sweep=nb201_smoke", "cells=ids", f"cells.ids=[{','.join(CELLS)}]", "sweep.seeds=[0]",
        "sweep.proxies=[synflow,naswot,params]", "proxy.naswot.batch_size=16", "proxy.grad_norm.batch_size=16",
        "sweep.shard_size=10"]


def rows_of(out: Path) -> dict[tuple, tuple]:
    """(dataset, seed, arch_id, proxy) -> (status, score); each key exactly once."""
    out_rows: dict[tuple, tuple] = {}
    for r in load_scores(out, truth=False).to_pylist():
        key = (r["dataset"], r["seed"], str(r["arch_id"]), r["proxy"])
        assert key not in out_rows, f"duplicate row {key}"
        out_rows[key] = (r["status"], r["score"])
    return out_rows


@pytest.fixture(scope="module")
def base(ray_session, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base")
    result = run_sweep(make_config([*BASE, f"out_dir={out}"]))
    assert result.scored_shards == 1
    return out


def files_of(out: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_mtime_ns, pq.read_metadata(p).num_rows) for p in (out / "scores").rglob("*.parquet")}


@pytest.mark.shared_data  # cifar100_sample.npz
def test_extending_a_study_scores_only_what_is_new(base, tmp_path) -> None:
    out = tmp_path / "study"
    shutil.copytree(base, out)
    before = files_of(out)
    old_rows = rows_of(out)
    extended = [*BASE, "sweep.proxies=[synflow,naswot,params,grad_norm]", "sweep.seeds=[0,1]",
                "sweep.datasets=[cifar10,cifar100]", "data.images.cifar100=cifar100_sample.npz",
                f"cells.ids=[{','.join(CELLS)},42]", f"out_dir={out}"]
    result = run_sweep(make_config(extended))
    after = files_of(out)
    for path, stamp in before.items():  # nothing stored was rewritten
        assert after[path] == stamp
    rows = rows_of(out)
    # every (dataset, seed, cell, proxy) of the extended request, once
    proxies = ["synflow", "naswot", "params", "grad_norm"]
    wanted = {(d, s, c, p) for d in ("cifar10", "cifar100") for s in (0, 1) for c in [*CELLS, "42"] for p in proxies}
    assert set(rows) == wanted
    assert all(status == "ok" for status, _ in rows.values())
    for key, value in old_rows.items():  # the old answers are the very same rows
        assert rows[key] == value
    # the new work: cifar10 seed 0 grad_norm for the 4 old cells, and all 4 proxies for the
    # new cell there (2 shards); seed 1 and cifar100's two seeds everything (3 shards)
    assert result.scored_shards == 5
    assert sum(n for p, (_, n) in after.items() if p not in before) == len(wanted) - len(old_rows)
    metrics = result.reduction.metrics
    means = metrics.filter(pc.and_(pc.equal(metrics["aggregate"], "seed"), pc.equal(metrics["metric"], "kendall_tau")))
    assert {(r["dataset"], r["proxy"], r["seed"]) for r in means.to_pylist() if r["proxy"] in proxies} == {
        (d, p, s) for d in ("cifar10", "cifar100") for p in proxies for s in (0, 1)}
    assert set(means["n_cells"].to_pylist()) == {5}


def test_every_common_reader_takes_the_scores_folder(base) -> None:
    scores = base / "scores"
    expected = sorted((r["dataset"], r["seed"], str(r["arch_id"]), r["proxy"], r["score"])
                      for r in load_scores(base, truth=False).to_pylist())
    frames = {
        "pandas": pd.read_parquet(scores),
        "pyarrow": pq.read_table(scores).to_pandas(),
        "duckdb": duckdb.sql(f"select * from read_parquet('{scores}/**/*.parquet')").df(),
        "polars": pl.read_parquet(f"{scores}/**/*.parquet").to_pandas(),
        "polars, lazy (the README's line)": pl.scan_parquet(f"{scores}/**/*.parquet").collect().to_pandas(),
    }
    for reader, frame in frames.items():
        got = sorted(zip(frame["dataset"], frame["seed"].astype(int), frame["arch_id"], frame["proxy"], frame["score"]))
        assert got == expected, reader
        assert list(frame.columns[:6]) == ["space", "dataset", "seed", "arch_id", "arch", "proxy"], reader


def test_load_scores_types_ids_and_joins_the_truth(base) -> None:
    """NB201's CIFAR-10 has two truth columns by default: each score once per column."""
    table = load_scores(base)
    assert str(table.schema.field("arch_id").type) == "int64"  # NB201's own index
    columns = ["cifar10_valid_test", "cifar10_test"]
    truth = pq.read_table(data_file("nb201_accuracy.parquet"), columns=["arch_index", *columns])
    accuracy = {c: dict(zip(truth["arch_index"].to_pylist(), truth[c].to_pylist())) for c in columns}
    rows = table.to_pylist()
    assert len(rows) == len(CELLS) * 3 * 2
    assert sorted(r["truth"] for r in rows) == sorted(columns * len(CELLS) * 3)
    for r in rows:
        assert r["accuracy"] == accuracy[r["truth"]][r["arch_id"]]
    frame = table.to_pandas().query("truth == 'cifar10_test'")
    assert frame.groupby("proxy")["accuracy"].count().to_dict() == {"naswot": 4, "params": 4, "synflow": 4}


def test_load_metrics_and_its_pivot(base) -> None:
    metrics = load_metrics(base)
    wide = metrics.to_pandas().query("aggregate == 'mean'").pivot_table(
        index=["dataset", "proxy"], columns="metric", values="value")
    assert {"kendall_tau", "spearman", "pearson"} <= set(wide.columns)
    assert set(wide.index.get_level_values("proxy")) >= {"synflow", "naswot", "params"}


def test_a_plugin_proxy_is_shipped_to_a_cluster_joined_by_address(ray_session, tmp_path) -> None:
    """The driver imports the user's package from its own path; the workers of the
    cluster it joins do not have it there and get it through the job's runtime env."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *BASE, "plugins=[example_plugin.proxies]",
         "sweep.proxies=[params,scaled_params]", "proxy.scaled_params.scale=0.5", f"data.root={DATA_ROOT}",
         f"out_dir={out}", f"cluster.address={ray_session}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = load_scores(out).to_pylist()
    params_m = dict(zip(*pq.read_table(data_file("nb201_accuracy.parquet"), columns=["arch_index", "params_m"])
                        .to_pydict().values()))
    scaled = {r["arch_id"]: r["score"] for r in rows if r["proxy"] == "scaled_params"}
    assert set(scaled) == {int(c) for c in CELLS}
    for cell, value in scaled.items():  # the benchmark's parameter count, halved
        assert value == pytest.approx(0.5 * params_m[cell] * 1e6, abs=0.5)


class Tiny(nn.Module):
    """1x1 conv (one channel) then a linear head: small enough to score by hand."""

    def __init__(self, a: float, w: list[float]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        self.head = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(a)
            self.head.weight.copy_(torch.tensor([w]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(1))


def test_score_a_network_by_hand() -> None:
    """synflow: R = sum of the output of |net| on an all-ones input = |a| * sum|w|, and
    sum over parameters of theta * dR/dtheta = 2R (R is linear in a and in each w_j);
    l2_norm: |a| + ||w||. The weights are left as they were."""
    a, w = -0.5, [1.0, -2.0, 3.0, 0.5]
    model = Tiny(a, w)
    x = torch.randn(3, 1, 2, 2)
    scores = score(model, ["synflow", "l2_norm"], x)
    r = abs(a) * sum(abs(v) for v in w)
    assert scores["synflow"] == pytest.approx(2 * r)
    assert scores["l2_norm"] == pytest.approx(abs(a) + float(np.linalg.norm(w)))
    assert model.conv.weight.item() == a and model.training
    with pytest.raises(ValueError, match="grad_norm reads the labels: pass targets"):
        score(model, ["grad_norm"], x)


def test_score_from_python_equals_the_sweep(base) -> None:
    """The same network (seeded as a sweep seeds the cell) on the same batch gives the
    sweep's scores."""
    settings_space = make_space("nb201")
    cell = "1234"
    arch = settings_space.cells().archs[int(cell)]
    seed_everything(cell_seed("nb201", 0, cell))
    model = settings_space.build(settings_space.parse(arch), 10).train()
    x, y = read_images(REPO / "benchdata" / "embedded" / "cifar10_smoke.npz", "cifar10")
    inputs, targets = draw_batch(x, y, "cifar10", 0, BatchSpec(16, False))
    got = score(model, ["synflow", "naswot", "params"], inputs, targets, seed=cell_seed("nb201", 0, cell))
    stored = {r["proxy"]: r["score"] for r in load_scores(base, truth=False).to_pylist() if r["arch_id"] == int(cell)}
    assert got == stored


def test_a_plugin_space_runs_a_sweep(ray_session, tmp_path) -> None:
    """A space registered from a user's module (tests/example_plugin/spaces.py): its
    defaults join the config as ``space.conv_widths.*`` (overridable), its cells are scored
    on Ray, its truth is read from the user's table, and the metrics are those one derives
    by hand: ``params`` is 39w + 10 for width w (3x3x3 conv without bias 27w, BatchNorm 2w,
    linear 10w + 10), strictly increasing in w, as the truth 50 + w is: Spearman and Kendall 1."""
    from orchestrator.plugins import load_plugins

    load_plugins(["example_plugin.spaces"])
    root = tmp_path / "data"
    root.mkdir()
    widths = list(range(1, 7))
    pq.write_table(pa.table({"arch_id": widths, "cifar10": [50.0 + w for w in widths]}), root / "conv_widths.parquet")
    out = tmp_path / "out"
    cfg = make_config(["+sweep=nb201_smoke", "plugins=[example_plugin.spaces]", "sweep.space=conv_widths",
                       "space.conv_widths.max_width=6", "cells=all", "sweep.seeds=[0]",
                       "sweep.proxies=[params,synflow]", "sweep.shard_size=3", f"data.root={root}",
                       "data.images.cifar10=cifar10_smoke.npz", f"out_dir={out}"])
    assert cfg.space.conv_widths.truth_file == "conv_widths.parquet"
    result = run_sweep(cfg)
    assert result.scored_shards == 2
    rows = load_scores(out).to_pylist()
    params = {r["arch_id"]: r["score"] for r in rows if r["proxy"] == "params"}
    assert params == {w: 39.0 * w + 10 for w in widths}
    assert {r["accuracy"] for r in rows} == {50.0 + w for w in widths}
    metrics = load_metrics(out).to_pylist()
    for metric in ("spearman", "kendall_tau"):
        (value,) = [r["value"] for r in metrics if (r["proxy"], r["metric"], r["aggregate"]) == ("params", metric, "seed")]
        assert value == pytest.approx(1.0)
