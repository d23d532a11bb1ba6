"""Hydra's and Ray's conventions, as their users expect them: multirun gives each job its
own output folder and a failing job does not stop the others; a driver started where
``RAY_ADDRESS`` is set (as ``ray job submit`` sets it) joins that cluster."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import DATA_ROOT, REPO

from proxysweep import load_scores

SMALL = ["+sweep=nb201_smoke", "cells=ids", "cells.ids=[7,42]", "sweep.seeds=[0]", f"data.root={DATA_ROOT}"]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_multirun_gives_each_job_its_folder_and_goes_on_after_a_failure(ray_session, tmp_path) -> None:
    proc = run(["-m", *SMALL, "sweep.proxies=[no_such_proxy],[params],[synflow]", f"cluster.address={ray_session}",
                f"hydra.sweep.dir={tmp_path / 'multi'}"], cwd=tmp_path)
    assert proc.returncode != 0  # Hydra reports the failed job once the others ran
    assert "sweep.proxies=[no_such_proxy]" in proc.stderr and "unknown proxy 'no_such_proxy'" in proc.stderr
    done = sorted(p.name for p in (tmp_path / "multi").iterdir() if (p / "report.md").exists())
    assert done == ["cells.ids=[7,42],cells=ids,sweep.proxies=[params],sweep.seeds=[0]",
                    "cells.ids=[7,42],cells=ids,sweep.proxies=[synflow],sweep.seeds=[0]"]
    for name, proxy in zip(done, ("params", "synflow")):
        rows = load_scores(tmp_path / "multi" / name).to_pylist()
        assert {(r["arch_id"], r["proxy"]) for r in rows} == {(7, proxy), (42, proxy)}
    assert not (tmp_path / "outputs").exists()  # nothing in the single-run default folder


def test_ray_address_in_the_environment_joins_that_cluster(ray_session, tmp_path) -> None:
    proc = run([*SMALL, "sweep.proxies=[params]", f"out_dir={tmp_path / 'out'}"], cwd=REPO, RAY_ADDRESS=ray_session)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"Connecting to existing Ray cluster at address: {ray_session}" in proc.stderr
    assert "Started a local Ray instance" not in proc.stderr
    assert len(load_scores(tmp_path / "out", truth=False).to_pylist()) == 2
