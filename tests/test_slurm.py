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

Token authentication stays on throughout, as a user gets it (RAY_AUTH_MODE unset when
submitting): while each job runs, its token file must be the submitter's alone (folder 0700,
file 0600), every Ray process of the job (nodes, workers, driver) must run with
RAY_AUTH_MODE=token and that file, each run of a job must have its own token, the token must
never be written to the job's log, and its folder must be gone when the job ends.
"""
from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
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


def secrets_root(slurm: LocalSlurm) -> Path:
    return slurm.root / "secrets"


def job_environment(slurm: LocalSlurm) -> dict[str, str]:
    """What the batch script needs on a shared host: node addresses from Slurm, free ports,
    a short Ray temp dir, a small object store, no dashboard; token authentication as a
    user has it (RAY_AUTH_MODE unset: conftest turns it off for the tests in this process),
    with the tokens kept in the test's folder."""
    gcs, dashboard, client, agent = free_ports(4)
    env = {k: v for k, v in slurm.env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    return {
        **env,
        "PROXYSWEEP_SECRETS_DIR": str(secrets_root(slurm)),
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


def job_processes(job_id: str) -> list[tuple[int, str, dict[str, str]]]:
    """(pid, command line, environment) of the live processes started by Slurm job ``job_id``
    (found by the SLURM_JOB_ID in their environment: Ray's workers rename themselves)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            if f"SLURM_JOB_ID={job_id}".encode() in env:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                pairs = (item.decode(errors="replace").partition("=") for item in env if b"=" in item)
                found.append((int(proc.name), cmdline, {k: v for k, _, v in pairs}))
        except OSError:
            continue
    return found


def processes_of_job(job_id: str) -> list[str]:
    return [cmdline for _, cmdline, _ in job_processes(job_id)]


#: processes of a job that are Ray's or talk to Ray: `ray start` and its srun step, GCS,
#: raylets, Ray's workers (ray::...), the node waiter and the sweep driver
RAY_PROCESS = re.compile(r"\bray\b|raylet|gcs_server|wait_for_nodes|-m orchestrator")
#: those the check insists on having seen (a raylet per node)
RAY_KINDS = {"ray start": r"\bray start\b", "gcs": r"/gcs_server\b", "raylet": r"/raylet/raylet\b",
             "driver": r"-m orchestrator\b"}


@dataclass
class AuthWatch:
    """What a job showed of its token authentication, sampled while it ran: the token of each
    run, the modes of its folder and file, and the auth settings of each Ray process."""

    job: str
    secrets: Path
    tokens: set[str] = field(default_factory=set)
    modes: set[tuple[int, int, int]] = field(default_factory=set)  # (folder mode, file mode, owner)
    #: (pid, command line) -> (RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH) in its environment
    ray_processes: dict[tuple[int, str], tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def token_file(self) -> Path:
        return self.secrets / self.job / "token"

    def sample(self) -> None:
        """Look once; returns None so that ``poll(lambda: watch.sample() or ...)`` reads well."""
        try:
            folder, token = self.token_file.parent.stat(), self.token_file.stat()
            value = self.token_file.read_text()
        except OSError:  # not written yet, or already removed
            pass
        else:
            self.modes.add((stat.S_IMODE(folder.st_mode), stat.S_IMODE(token.st_mode), token.st_uid))
            if value:
                self.tokens.add(value)
        for pid, cmdline, env in job_processes(self.job):
            if RAY_PROCESS.search(cmdline) and "slurm_script" not in cmdline:  # not the batch script itself
                self.ray_processes[pid, cmdline] = (env.get("RAY_AUTH_MODE"), env.get("RAY_AUTH_TOKEN_PATH"))

    def check(self, log: str, runs: int) -> None:
        """Token auth was on for every Ray process of every run, with a private token file of
        its own per run, never printed in the log and removed at the end."""
        assert self.modes == {(0o700, 0o600, os.geteuid())}, self.modes
        assert len(self.tokens) == runs and all(re.fullmatch(r"[0-9a-f]{64}", t) for t in self.tokens), \
            len(self.tokens)
        assert not any(token in log for token in self.tokens), "the token is in the job's log"
        assert f"cat {self.token_file}" in log, log
        seen = {kind: [c for _, c in self.ray_processes if re.search(pattern, c)] for kind, pattern in RAY_KINDS.items()}
        assert all(seen.values()) and len(seen["raylet"]) >= 2, (seen, list(self.ray_processes))
        expected = ("token", str(self.token_file))
        # Ray's agents and workers rename themselves (ray::...), which overwrites part of the
        # environment that /proc shows: for them, only a mode that is there is checked
        wrong = {key: v for key, v in self.ray_processes.items()
                 if v != expected and not (key[1].startswith("ray::") and v[0] in (None, "token"))}
        assert not wrong, f"Ray processes without token authentication: {wrong}"
        assert not self.token_file.parent.exists(), "the job's token folder outlived it"


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
    watch = AuthWatch(first, secrets_root(slurm))
    running = lambda: slurm.job(first)["JobState"] in ("PENDING", "RUNNING")  # noqa: E731
    poll(lambda: watch.sample() or shard_files(out), timeout=300, what="a first shard file", alive=running)
    watch.sample()
    slurm.run("scancel", first)
    info = slurm.wait_job(first, ("CANCELLED",), timeout=60)
    assert_nothing_left(first)
    after_cancel = shard_files(out)
    assert 1 <= len(after_cancel) < CELLS, log_of(out, first)
    log = log_of(out, first)
    assert "received SIGTERM: stopping the sweep" in log and "Ray stopped" in log, log
    watch.check(log, runs=1)

    # 2. the same command again resumes; SIGUSR1 (time nearly up) makes it requeue itself
    second = submit(slurm, out)
    watch = AuthWatch(second, secrets_root(slurm))
    running = lambda: slurm.job(second)["JobState"] in ("PENDING", "RUNNING")  # noqa: E731
    poll(lambda: watch.sample() or len(shard_files(out)) > len(after_cancel), timeout=300,
         what="a shard of the resubmitted job", alive=running)
    watch.sample()
    slurm.run("scancel", "--signal=USR1", "--batch", second)
    ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL")
    poll(lambda: watch.sample() or slurm.job(second)["JobState"] in ended, timeout=400, every=0.3,
         what=f"the end of job {second}")
    info = slurm.job(second)
    log = log_of(out, second)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log)
    assert_nothing_left(second)
    for marker in ("run 0:", "received SIGUSR1: stopping the sweep", "requeueing job", "run 1:",
                   "the sweep driver exited with status 0"):
        assert marker in log, (marker, log)
    watch.check(log, runs=2)  # the requeued run made a token of its own

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


@pytest.mark.parametrize("auth", ["token", "disabled"])
def test_a_ray_node_that_cannot_start_fails_the_job_at_once(slurm: LocalSlurm, tmp_path: Path, auth: str) -> None:
    """A worker whose ``ray start`` fails (here: an option only a head accepts) fails the job
    within seconds, saying why, instead of holding its nodes until the start timeout. A
    failed job removes its token too; and RAY_AUTH_MODE=disabled, exported by the user, is
    honoured with a warning in the log (and no token is made)."""
    out = tmp_path / "sweep"
    env = {**job_environment(slurm), "PROXYSWEEP_RAY_ARGS": "--include-dashboard=false"}
    if auth == "disabled":
        env["RAY_AUTH_MODE"] = "disabled"
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
    on = f"Ray token authentication is on; the token (yours only, removed when the job ends) is in " \
         f"{secrets_root(slurm) / job / 'token'}"
    warning = "warning: Ray token authentication is off (RAY_AUTH_MODE=disabled)"
    assert (on in log, warning in log) == (auth == "token", auth == "disabled"), log
    assert not (secrets_root(slurm) / job).exists()
