"""The Slurm submit command and helpers, without Slurm: the sbatch command it builds, the
errors it reports before submitting, the batch script's syntax, and the node waiter."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from conftest import DATA_ROOT, REPO

from launch.slurm.submit import main

SCRIPT = REPO / "launch" / "slurm" / "proxysweep.sbatch"
SWEEP = ["+sweep=nb201_smoke", f"data.root={DATA_ROOT}"]


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def launch(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable[..., Done]:
    """``python -m launch.slurm ARGS`` in this process (imports once: much faster)."""

    def run(*args: str) -> Done:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code)
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return run


def test_dry_run_builds_the_sbatch_command(tmp_path: Path) -> None:
    """The real command line, as a module run from another folder."""
    done = subprocess.run(
        [sys.executable, "-m", "launch.slurm", "--nodes", "4", "--gpus-per-node", "8", "--cpus-per-node", "32",
         "--partition", "gpu", "--time", "24:00:00", "--sbatch-arg=--qos=high", "--dry-run", *SWEEP,
         "out_dir=runs/a"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout)
    env = dict(w.split("=", 1) for w in words[:3])
    assert env == {"PROXYSWEEP_HOME": str(REPO), "PROXYSWEEP_PYTHON": sys.executable,
                   "PROXYSWEEP_SECRETS_DIR": str(Path.home() / ".proxysweep" / "slurm")}
    cmd = words[3:]
    assert cmd[:2] == ["sbatch", "--parsable"]
    out = tmp_path / "runs" / "a"  # made absolute: the job may run elsewhere
    for flag in ("--job-name=proxysweep-nb201_smoke", "--nodes=4", "--ntasks-per-node=1", "--gpus-per-node=8",
                 "--cpus-per-task=32", "--partition=gpu", "--time=24:00:00", "--requeue",
                 "--signal=B:USR1@300", f"--output={out}/slurm-%j.out", "--open-mode=append",
                 f"--chdir={tmp_path}", "--qos=high"):
        assert flag in cmd, flag
    script = cmd.index(str(SCRIPT))
    assert cmd[script + 1:] == [*SWEEP, f"out_dir={out}"]


def test_the_token_folder_is_fixed_at_submission_and_turning_auth_off_warns(
        launch, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The job's token folder is the one printed here (made absolute on the login node), and
    RAY_AUTH_MODE=disabled, which sbatch would pass on to the job, is warned about."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROXYSWEEP_SECRETS_DIR", "secrets")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    done = launch("--dry-run", *SWEEP)
    assert done.returncode == 0, done.stderr
    assert f"PROXYSWEEP_SECRETS_DIR={tmp_path / 'secrets'} " in done.stdout
    assert "warning" not in done.stderr
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    done = launch("--dry-run", *SWEEP)
    assert done.returncode == 0, done.stderr
    assert "launch.slurm: warning: RAY_AUTH_MODE=disabled: the job's Ray cluster will run without token" \
        " authentication" in done.stderr


def test_no_requeue_and_no_warning_signal(launch) -> None:
    done = launch("--no-requeue", "--warn-seconds", "0", "--dry-run", *SWEEP)
    assert done.returncode == 0, done.stderr
    assert "--no-requeue" in done.stdout and "--signal" not in done.stdout


@pytest.mark.parametrize("overrides, message", [
    (["+sweep=nb999"], "bad override: In 'config': Could not find 'sweep/nb999'"),
    (["+sweep=nb201_smoke", "sweep.proxies=[snap]"], "unknown proxy 'snap'"),
    (["+sweep=nb201_smoke", "data.root=/nonexistent", "data.images.cifar10=cifar10_sample.npz"],
     "missing data file /nonexistent/cifar10_sample.npz"),
])
def test_a_bad_sweep_is_refused_before_submitting(launch, overrides: list[str], message: str) -> None:
    done = launch("--dry-run", *overrides)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("launch.slurm: error: ") and message in lines[0], done.stderr
    assert "sbatch" not in done.stdout


def test_the_job_sets_the_cluster_address_itself(launch) -> None:
    done = launch("--dry-run", *SWEEP, "cluster.address=auto")
    assert done.returncode == 2 and "cluster.address is set by the job" in done.stderr


def test_without_sbatch_says_where_to_run(launch, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    done = launch(*SWEEP, f"out_dir={tmp_path}")
    assert done.returncode == 2
    assert "sbatch not found: run this on a Slurm login node" in done.stderr


def test_batch_script_is_valid_bash_with_its_slurm_defaults() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    header = [line for line in SCRIPT.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --ntasks-per-node=1" in header and "#SBATCH --open-mode=append" in header
    assert os.access(SCRIPT, os.X_OK)


def test_node_waiter_reports_the_nodes_or_times_out(ray_session: str) -> None:
    waiter = [sys.executable, str(REPO / "launch" / "slurm" / "wait_for_nodes.py"), "--address", ray_session]
    done = subprocess.run([*waiter, "--nodes", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Ray cluster at {ray_session} has 1 node(s):" in done.stdout and "2 CPU" in done.stdout
    done = subprocess.run([*waiter, "--nodes", "2", "--timeout", "2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "wait_for_nodes: 1 of 2 Ray nodes joined in 2s" in done.stderr
