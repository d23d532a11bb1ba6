"""NAS-Bench-101 sweeps: the nb101_all and nb101_sample plans, and a real tiny sweep on Ray."""
from __future__ import annotations

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from conftest import data_file, make_config

from orchestrator.errors import SweepError
from orchestrator.settings import load_settings
from orchestrator.store import SCHEMA
from orchestrator.sweep import prepare, run_sweep

pytestmark = pytest.mark.shared_data  # NB101 sweeps read cifar10_sample.npz


def planned(overrides: list[str]):
    prepared = prepare(load_settings(make_config(overrides)))
    prepared.store.unlock()
    return prepared


def test_nb101_all_plans_every_cell_and_seed(nb101_cache, tmp_path) -> None:
    """How long this takes is measured by benchmarks/nb101_plan.py, not asserted here."""
    prepared = planned(["+sweep=nb101_all", f"space.nb101.cache_dir={nb101_cache}", f"out_dir={tmp_path}"])
    settings, plan = prepared.settings, prepared.plan
    assert settings.seeds == (0, 1, 2) and settings.datasets == ("cifar10",)
    assert [p.name for p in settings.proxies] == ["grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"]
    batch = {p.name: p.params.get("batch_size") for p in settings.proxies}
    assert batch == {"grad_norm": 256, "snip": 256, "synflow": None, "jacob_cov": 256, "naswot": 128, "params": None}
    assert len(plan.ids) == 423_624 and len(plan.jobs) == 3
    assert plan.total_cells == 3 * 423_624
    assert len(prepared.pending) == 3 * -(-423_624 // 50)  # shard_size 50
    assert sum(len(s) for s in prepared.pending) == 3 * 423_624
    shard = prepared.pending[-1]
    assert all(isinstance(x, str) for x in (*shard.ids, *shard.archs))  # ids and specs, no models


def test_nb101_sample_plans_the_cells_with_truth(nb101_cache, data_root, tmp_path) -> None:
    truth = set(pq.read_table(data_file("nb101_sample_accuracy.parquet"), columns=["hash"])["hash"].to_pylist())
    base = [f"space.nb101.cache_dir={nb101_cache}"]
    prepared = planned(["+sweep=nb101_sample", *base, f"out_dir={tmp_path / 'a'}"])
    assert set(prepared.plan.ids) == truth and len(prepared.plan.ids) == 30_001
    assert list(prepared.plan.ids) == sorted(prepared.plan.ids)
    fixed = planned(["+sweep=nb101_fidelity300", *base, f"out_dir={tmp_path / 'b'}"])
    again = planned(["+sweep=nb101_fidelity300", *base, f"out_dir={tmp_path / 'c'}"])
    assert len(fixed.plan.ids) == 300 and set(fixed.plan.ids) <= truth
    assert list(fixed.plan.ids) == list(again.plan.ids)
    ranged = planned(["+sweep=nb101_all", *base, "cells=range", "cells.start=10", "cells.stop=15", f"out_dir={tmp_path / 'd'}"])
    assert len(ranged.plan.ids) == 5
    with pytest.raises(SweepError, match="larger than the 30001 cells with ground truth"):
        planned(["+sweep=nb101_sample", *base, "cells.n=40000", f"out_dir={tmp_path / 'e'}"])
    with pytest.raises(SweepError, match="not in the space"):
        planned(["+sweep=nb101_all", *base, "cells=ids", "cells.ids=[nope]", f"out_dir={tmp_path / 'f'}"])


def test_a_tiny_nb101_sweep_on_ray(ray_session, nb101_cache, data_root, tmp_path) -> None:
    """Four sample cells, params and synflow, one seed, real Ray, real Parquet, metrics
    against the sample's truth; params equals the benchmark's parameter count exactly."""
    result = run_sweep(make_config([
        "+sweep=nb101_sample", f"space.nb101.cache_dir={nb101_cache}", "cells.n=4", "cells.seed=5",
        "sweep.seeds=[0]", "sweep.proxies=[params,synflow]", "sweep.shard_size=2",
        "cluster.num_actors=1", f"out_dir={tmp_path}",
    ]))
    assert result.scored_shards == 2
    rows = pads.dataset(str(tmp_path / "scores"), format="parquet", schema=SCHEMA).to_table().to_pylist()
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows), rows
    assert {r["space"] for r in rows} == {"nb101"}
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "scores").rglob("*.parquet"))
    assert len(files) == 2 and all(f.startswith("scores/nb101/cifar10/seed0/shard-") for f in files)
    truth = {r["hash"]: r["trainable_parameters"] for r in
             pq.read_table(data_file("nb101_sample_accuracy.parquet"), columns=["hash", "trainable_parameters"]).to_pylist()}
    for r in rows:
        if r["proxy"] == "params":
            assert r["score"] == truth[r["arch_id"]]
    metrics = result.reduction.metrics.to_pylist()
    spearman = {m["proxy"]: m for m in metrics if m["metric"] == "spearman" and m["aggregate"] == "seed"}
    assert set(spearman) == {"params", "synflow"}
    assert all(m["truth"] == "val_acc_108" and m["n_cells"] == 4 for m in spearman.values())
    assert "nb101" in (tmp_path / "report.md").read_text()
