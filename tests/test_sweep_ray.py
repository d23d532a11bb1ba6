"""Real sweeps on a real Ray instance, real Parquet and real CIFAR-10 images.

Batches are shrunk to 16 images to keep the suite fast; everything else is the shipped
nb201_smoke sweep.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import ray
from conftest import DATA_ROOT, REPO, make_config

from orchestrator.store import SCHEMA
from orchestrator.sweep import run_sweep

SMALL = [
    "+sweep=nb201_smoke", "cells.n=5", "cells.seed=7", "sweep.seeds=[0,1]",
    "proxy.grad_norm.batch_size=16", "proxy.snip.batch_size=16",
    "proxy.jacob_cov.batch_size=16", "proxy.naswot.batch_size=16",
]
PROXIES = {"grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"}


def scores_of(out_dir: Path) -> dict[tuple[str, str, int], tuple[str, float]]:
    """(arch_id, proxy, seed) -> (status, score), asserting each key appears exactly once
    and that nothing failed (``nonfinite``, e.g. jacob_cov of a cell whose output ignores
    its input, is an answer, not a failure)."""
    table = pads.dataset(str(out_dir / "scores"), format="parquet", schema=SCHEMA).to_table()
    out: dict[tuple[str, str, int], float] = {}
    for r in table.to_pylist():
        key = (r["arch_id"], r["proxy"], r["seed"])
        assert key not in out, f"duplicate row {key}"
        assert r["status"] in ("ok", "nonfinite"), r
        score = r["score"]
        out[key] = (r["status"], "nan" if score != score else score)  # nan != nan
    return out


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory) -> dict:
    """One uninterrupted run: 1 actor, 2 cells per shard."""
    out = tmp_path_factory.mktemp("reference")
    result = run_sweep(make_config([*SMALL, "cluster.num_actors=1", "sweep.shard_size=2", f"out_dir={out}"]))
    assert result.scored_shards == 2 * 3
    return {"out": out, "scores": scores_of(out), "result": result}


def test_reference_run_is_complete(reference) -> None:
    scores = reference["scores"]
    assert len(scores) == 5 * 2 * len(PROXIES)
    assert {p for _, p, _ in scores} == PROXIES
    out = reference["out"]
    assert (out / "metrics.parquet").exists() and (out / "report.md").exists()
    files = sorted(p.relative_to(out).as_posix() for p in (out / "scores").rglob("*.parquet"))
    assert len(files) == 6  # 5 cells in shards of 2, two seeds
    assert all(f.startswith(("scores/nb201/cifar10/seed0/shard-", "scores/nb201/cifar10/seed1/shard-")) for f in files)


def test_same_scores_with_two_actors_and_other_shards(reference, tmp_path) -> None:
    run_sweep(make_config([*SMALL, "cluster.num_actors=2", "sweep.shard_size=3", f"out_dir={tmp_path}"]))
    assert scores_of(tmp_path) == reference["scores"]
    workers = {r["worker"] for r in pads.dataset(str(tmp_path / "scores"), format="parquet").to_table().to_pylist()}
    assert len(workers) == 2


def test_rerun_scores_nothing_new(reference) -> None:
    result = run_sweep(make_config([*SMALL, "cluster.num_actors=1", "sweep.shard_size=2", f"out_dir={reference['out']}"]))
    assert result.scored_shards == 0
    assert scores_of(reference["out"]) == reference["scores"]


def test_killed_driver_resumes_to_the_same_result(reference, ray_session, tmp_path) -> None:
    overrides = [*SMALL, "cluster.num_actors=1", "sweep.shard_size=1", f"out_dir={tmp_path}", f"data.root={DATA_ROOT}"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *overrides, f"cluster.address={ray_session}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    shard_dir = tmp_path / "scores" / "nb201" / "cifar10"
    try:
        deadline = time.monotonic() + 240
        while len(list(shard_dir.rglob("shard-*.parquet"))) < 3:
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "no shard written in time"
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    before = {p: p.stat().st_mtime_ns for p in shard_dir.rglob("shard-*.parquet")}
    assert 3 <= len(before) < 10
    result = run_sweep(make_config(overrides))
    assert result.scored_shards == 10 - len(before)
    for path, mtime in before.items():  # finished shards are never rewritten
        assert path.stat().st_mtime_ns == mtime
    assert not list(tmp_path.rglob("*.tmp-*"))
    assert scores_of(tmp_path) == reference["scores"]


def test_a_killed_actor_is_replaced_and_its_shard_finished(reference, tmp_path) -> None:
    out = tmp_path
    killed: list[str] = []

    def kill_one_actor() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if list(out.rglob("shard-*.parquet")):
                names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                               if a["name"].startswith("scorer-nb201_smoke"))
                if names:
                    ray.kill(ray.get_actor(names[0], namespace="proxysweep"), no_restart=True)
                    killed.append(names[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_actor, daemon=True)
    killer.start()
    run_sweep(make_config([*SMALL, "cluster.num_actors=2", "sweep.shard_size=1", f"out_dir={out}"]))
    killer.join(timeout=5)
    assert killed, "no actor was killed"
    assert scores_of(out) == reference["scores"]
    workers = {r["worker"] for r in pads.dataset(str(out / "scores"), format="parquet").to_table().to_pylist()}
    assert any(w.endswith("-r1") for w in workers), workers


def test_a_failing_proxy_becomes_error_rows_and_the_sweep_goes_on(ray_session, tmp_path) -> None:
    """A user's plugin proxy that raises (shipped to the actors through Ray's runtime
    environment): its rows are errors, the other proxies' rows are answers."""
    cfg = make_config([*SMALL, "sweep.seeds=[0]", "cells.n=3", "plugins=[example_plugin.proxies]",
                       "sweep.proxies=[params,always_fails]", "proxy.always_fails.reason=by design",
                       f"out_dir={tmp_path}"])
    result = run_sweep(cfg)
    rows = pads.dataset(str(tmp_path / "scores"), format="parquet").to_table().to_pylist()
    assert len(rows) == 6
    bad = [r for r in rows if r["proxy"] == "always_fails"]
    assert all(r["status"] == "error" and r["score"] is None for r in bad)
    assert all(r["error"].startswith("ValueError: oops: by design (at proxies.py:") for r in bad)
    assert all(r["status"] == "ok" for r in rows if r["proxy"] == "params")
    metrics = result.reduction.metrics.to_pylist()
    assert {r["proxy"] for r in metrics} == {"params", "always_fails"}
    failed = [r for r in metrics if r["proxy"] == "always_fails"]  # nan rows that say why (issue 13)
    assert all(r["value"] != r["value"] and "every score is nan or an error" in r["note"] for r in failed)
    assert "| always_fails | 0 | 0 | 3 |" in (tmp_path / "report.md").read_text()


def test_retry_errors_rescores_only_the_shards_with_error_rows(reference, tmp_path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(reference["out"], out)
    damaged = sorted((out / "scores/nb201/cifar10/seed1").glob("shard-*.parquet"))[1]
    table = pq.read_table(damaged)
    rows = table.to_pylist()
    rows[3].update(status="error", score=None, error="RuntimeError: lost to a busy node")
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), damaged)
    args = [*SMALL, "cluster.num_actors=1", "sweep.shard_size=2", f"out_dir={out}"]

    assert run_sweep(make_config(args)).scored_shards == 0  # an error row is a finished answer
    assert pq.read_table(damaged).column("status").to_pylist().count("error") == 1

    assert run_sweep(make_config([*args, "sweep.retry_errors=true"])).scored_shards == 1
    assert scores_of(out) == reference["scores"]  # replaced, not duplicated
    assert not list(out.rglob("*.tmp*"))


def test_reducer_cli_on_a_finished_sweep(reference) -> None:
    (reference["out"] / "metrics.parquet").unlink()
    proc = subprocess.run([sys.executable, "-m", "orchestrator.reduce", str(reference["out"])],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "kendall_tau" in proc.stdout and "naswot" in proc.stdout
    assert (reference["out"] / "metrics.parquet").exists()
