"""The Slurm launcher on a real Slurm: two slurmd nodes on this host, the real sbatch script.

One sweep (24 NB201 cells x synflow, params x 1 seed, one cell per shard) goes through
what happens to long jobs on a cluster:

1. submitted with ``python -m launch.slurm``, then cancelled with ``scancel`` once some
   shards are written: the job ends and leaves no process behind;
2. submitted again with the same command: it resumes. Then it gets the SIGUSR1 that
   ``--signal=B:USR1@...`` sends before the time limit: it stops cleanly, requeues itself,
   and its second run finishes the sweep.

The results must be complete, without a cell scored twice, with the shards of earlier runs
untouched, and scored on both Ray nodes (the actor names carry the node address: 127.0.0.2
and 127.0.0.3, the NodeAddr of each Slurm node).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pyarrow.dataset as pads
import pytest
from conftest import DATA_ROOT, REPO
from local_slurm import APT_PACKAGES, LocalSlurm, install_with_apt, missing_programs
from netutil import free_ports, poll

pytestmark = pytest.mark.slurm

CELLS = 24
OVERRIDES = [
    "+sweep=nb201_smoke", f"cells.n={CELLS}", "cells.seed=3", "sweep.seeds=[0]",
    "sweep.proxies=[synflow,params]", "sweep.shard_size=1", f"data.root={DATA_ROOT}",
]


def _unavailable(reason: str) -> None:
    """No Slurm here: a clear skip on a developer's machine, a failure in CI."""
    message = (f"the Slurm tests need Debian's {' '.join(APT_PACKAGES)} and root: {reason} "
               f"(as root: apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)})")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def slurm() -> Iterator[LocalSlurm]:
    if os.geteuid() != 0:
        _unavailable("not running as root (munged and slurmd are started here)")
    missing = missing_programs()
    if missing:
        why = install_with_apt()
        if why is not None:
            _unavailable(f"{', '.join(missing)} missing and {why}")
    cluster = LocalSlurm(nodes=2, cpus_per_node=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        cluster.cleanup()


def job_environment(slurm: LocalSlurm) -> dict[str, str]:
    """What the batch script needs on a shared host: node addresses from Slurm, free ports,
    a short Ray temp dir, a small object store, no dashboard."""
    gcs, dashboard, client, agent = free_ports(4)
    return {
        **slurm.env,
        "PROXYSWEEP_NODE_IP": "nodeaddr",
        "PROXYSWEEP_RAY_PORT": str(gcs),
        "PROXYSWEEP_DASHBOARD_PORT": str(dashboard),
        "PROXYSWEEP_CLIENT_PORT": str(client),
        "PROXYSWEEP_AGENT_PORT": str(agent),
        "PROXYSWEEP_RAY_TMP": str(slurm.root / "r"),
        "PROXYSWEEP_RAY_ARGS": "--object-store-memory=200000000",
        # the dashboard has its own test (test_dashboard.py); here it would only cost time
        "PROXYSWEEP_RAY_HEAD_ARGS": "--include-dashboard=false",
    }


def submit(slurm: LocalSlurm, out: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "launch.slurm", "--nodes", "2", *OVERRIDES, f"out_dir={out}"],
        cwd=REPO, env=job_environment(slurm), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def shard_files(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (out / "scores").rglob("shard-*.parquet")}


def processes_of_job(job_id: str) -> list[str]:
    """Command lines of live processes started by Slurm job ``job_id`` (found by the
    SLURM_JOB_ID in their environment: Ray's workers rename themselves)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            if f"SLURM_JOB_ID={job_id}".encode() in env:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def assert_nothing_left(job_id: str) -> None:
    try:
        poll(lambda: not processes_of_job(job_id), timeout=30, what=f"end of job {job_id}'s processes")
    except AssertionError:
        raise AssertionError(f"job {job_id} left processes behind: {processes_of_job(job_id)}") from None


def log_of(out: Path, job_id: str) -> str:
    path = out / f"slurm-{job_id}.out"
    return path.read_text(errors="replace") if path.exists() else "(no log)"


def test_cancel_resubmit_and_requeue_finish_the_sweep_on_both_nodes(slurm: LocalSlurm, tmp_path: Path) -> None:
    out = tmp_path / "sweep"

    # 1. scancel while the sweep runs
    first = submit(slurm, out)
    running = lambda: slurm.job(first)["JobState"] in ("PENDING", "RUNNING")  # noqa: E731
    poll(lambda: shard_files(out), timeout=300, what="a first shard file", alive=running)
    slurm.run("scancel", first)
    info = slurm.wait_job(first, ("CANCELLED",), timeout=60)
    assert_nothing_left(first)
    after_cancel = shard_files(out)
    assert 1 <= len(after_cancel) < CELLS, log_of(out, first)
    log = log_of(out, first)
    assert "received SIGTERM: stopping the sweep" in log and "Ray stopped" in log, log

    # 2. the same command again resumes; SIGUSR1 (time nearly up) makes it requeue itself
    second = submit(slurm, out)
    running = lambda: slurm.job(second)["JobState"] in ("PENDING", "RUNNING")  # noqa: E731
    poll(lambda: len(shard_files(out)) > len(after_cancel), timeout=300, what="a shard of the resubmitted job",
         alive=running)
    slurm.run("scancel", "--signal=USR1", "--batch", second)
    info = slurm.wait_job(second, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"), timeout=400)
    log = log_of(out, second)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log)
    assert_nothing_left(second)
    for marker in ("run 0:", "received SIGUSR1: stopping the sweep", "requeueing job", "run 1:",
                   "the sweep driver exited with status 0"):
        assert marker in log, (marker, log)

    # the results: complete, each (cell, proxy) once, earlier shards untouched, both nodes used
    rows = pads.dataset(str(out / "scores"), format="parquet").to_table().to_pylist()
    keys = [(r["arch_id"], r["proxy"]) for r in rows]
    assert len(keys) == len(set(keys)) == CELLS * 2
    assert all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"][:3]
    final = shard_files(out)
    assert len(final) == CELLS
    assert all(final[p] == mtime for p, mtime in after_cancel.items())
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-")
    workers = {r["worker"] for r in rows}
    assert workers == {f"scorer-nb201_smoke-{host}-{slurm.node_addr(k)}-cpu0" for k in range(2)}, workers
    assert (out / "metrics.parquet").exists() and (out / "report.md").exists()


def test_a_ray_node_that_cannot_start_fails_the_job_at_once(slurm: LocalSlurm, tmp_path: Path) -> None:
    """A worker whose ``ray start`` fails (here: an option only a head accepts) fails the job
    within seconds, saying why, instead of holding its nodes until the start timeout."""
    out = tmp_path / "sweep"
    env = {**job_environment(slurm), "PROXYSWEEP_RAY_ARGS": "--include-dashboard=false"}
    done = subprocess.run([sys.executable, "-m", "launch.slurm", "--nodes", "2", *OVERRIDES, f"out_dir={out}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    started = time.monotonic()
    info = slurm.wait_job(job, ("COMPLETED", "FAILED", "CANCELLED"), timeout=180)
    log = log_of(out, job)
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "1:0", (info, log)
    assert time.monotonic() - started < 120
    assert "should only be specified when starting head node" in log, log
    assert "a Ray node stopped while the cluster was starting" in log, log
    assert "Sweep nb201_smoke" not in log  # the driver never started
    assert_nothing_left(job)
