"""Submit a sweep to Slurm: check the Hydra overrides here, then ``sbatch`` proxysweep.sbatch.

Checking on the login node means a typo in an override or a missing data file is reported
at once, not after the job has waited in the queue. The sweep's ``out_dir`` is made
absolute and the job's log goes into it, so the results, the log of every run (a requeued
job appends to it) and the shard files a resubmission resumes from stay together on the
shared file system.

The job turns Ray's token authentication on with a token of its own, kept in
``secrets_dir() / <jobid> / token`` while it runs (see proxysweep.sbatch).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

HOME = Path(__file__).resolve().parents[2]
SCRIPT = HOME / "launch" / "slurm" / "proxysweep.sbatch"


@dataclass(frozen=True)
class Sweep:
    """What the submission needs to know about the sweep: its name and output folder."""

    name: str
    out_dir: Path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m launch.slurm",
        description="Submit a proxysweep sweep as one Slurm job: a Ray cluster over the "
        "allocation and the sweep driver on its first node. Everything after the options "
        "is passed to `python -m orchestrator` as Hydra overrides.",
        epilog="example: python -m launch.slurm --nodes 4 --gpus-per-node 8 --partition gpu "
        "--time 24:00:00 +sweep=nb201_all out_dir=/shared/runs/nb201_all",
    )
    parser.add_argument("--nodes", type=int, default=1, help="nodes of the allocation (default 1)")
    parser.add_argument("--gpus-per-node", default=None,
                        help="GPUs per node, a count or TYPE:COUNT (default: none, CPU actors)")
    parser.add_argument("--cpus-per-node", type=int, default=None,
                        help="CPUs per node for Ray (default: what Slurm gives the job)")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--time", default=None, help="time limit, e.g. 24:00:00")
    parser.add_argument("--account", default=None)
    parser.add_argument("--job-name", default=None, help="default: proxysweep-<sweep.name>")
    parser.add_argument("--no-requeue", dest="requeue", action="store_false",
                        help="do not requeue the job after preemption or when its time runs out")
    parser.add_argument("--warn-seconds", type=int, default=300,
                        help="SIGUSR1 this long before the time limit: the job stops the sweep "
                        "cleanly and requeues itself to resume (default 300)")
    parser.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                        help="extra sbatch argument, repeatable, e.g. --sbatch-arg=--qos=high")
    parser.add_argument("--python", default=sys.executable,
                        help="Python of the environment every node uses (default: this one)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip checking the data files before submitting")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch command, submit nothing")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. +sweep=nb201_all")
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if args.warn_seconds < 0:
        parser.error("--warn-seconds must not be negative")
    bad = [o for o in args.overrides if o.startswith("cluster.address")]
    if bad:
        parser.error("cluster.address is set by the job to its own Ray head; drop it")
    return args


def resolve_sweep(overrides: Sequence[str], check_files: bool) -> Sweep:
    """Compose the config as the driver will; SweepError on a bad override or input."""
    from orchestrator.config import compose_config
    from orchestrator.settings import load_settings

    cfg = compose_config(overrides)
    settings = load_settings(cfg, check_files=check_files)
    return Sweep(settings.name, settings.out_dir)


def with_absolute_out_dir(overrides: Sequence[str], out_dir: Path) -> list[str]:
    """The overrides with ``out_dir`` pinned to an absolute path (the job's cwd may differ)."""
    kept = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~") == "out_dir"]
    return [*kept, f"out_dir={out_dir}"]


def sbatch_command(args: argparse.Namespace, sweep: Sweep, script: Path = SCRIPT) -> list[str]:
    """The sbatch command line for ``args`` (without the environment it needs)."""
    cmd = [
        "sbatch", "--parsable",
        f"--job-name={args.job_name or f'proxysweep-{sweep.name}'}",
        f"--nodes={args.nodes}", "--ntasks-per-node=1",
        f"--output={sweep.out_dir / 'slurm-%j.out'}", "--open-mode=append",
        f"--chdir={Path.cwd()}",
        "--requeue" if args.requeue else "--no-requeue",
    ]
    if args.warn_seconds:
        cmd.append(f"--signal=B:USR1@{args.warn_seconds}")
    if args.gpus_per_node:
        cmd.append(f"--gpus-per-node={args.gpus_per_node}")
    if args.cpus_per_node:
        cmd.append(f"--cpus-per-task={args.cpus_per_node}")
    for flag in ("partition", "time", "account"):
        if getattr(args, flag):
            cmd.append(f"--{flag}={getattr(args, flag)}")
    cmd += list(args.sbatch_arg)
    cmd.append(str(script))
    cmd += with_absolute_out_dir(args.overrides, sweep.out_dir)
    return cmd


def secrets_dir() -> Path:
    """Where jobs keep their Ray tokens: ``$PROXYSWEEP_SECRETS_DIR``, else
    ~/.proxysweep/slurm. Fixed here, on the login node, so the path printed at submission is
    the one the job uses."""
    configured = os.environ.get("PROXYSWEEP_SECRETS_DIR")
    return Path(configured).expanduser().absolute() if configured else Path.home() / ".proxysweep" / "slurm"


def auth_disabled() -> bool:
    """Whether the submitting shell turned Ray's token authentication off (sbatch passes it on)."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "disabled"


def job_environment(args: argparse.Namespace) -> dict[str, str]:
    """What the batch script reads besides its arguments (sbatch passes the environment on)."""
    return {"PROXYSWEEP_HOME": str(HOME), "PROXYSWEEP_PYTHON": str(args.python),
            "PROXYSWEEP_SECRETS_DIR": str(secrets_dir())}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from orchestrator.errors import SweepError

    try:
        sweep = resolve_sweep(args.overrides, args.check)
    except SweepError as exc:
        print(f"launch.slurm: error: {exc}", file=sys.stderr)
        return 2
    cmd = sbatch_command(args, sweep)
    extra_env = job_environment(args)
    if auth_disabled():
        print("launch.slurm: warning: RAY_AUTH_MODE=disabled: the job's Ray cluster will run without "
              "token authentication (anyone who reaches its ports can run code as you); unset "
              "RAY_AUTH_MODE to turn it back on", file=sys.stderr)
    if args.dry_run:
        print(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in extra_env.items()), *map(shlex.quote, cmd)]))
        return 0
    sweep.out_dir.mkdir(parents=True, exist_ok=True)  # Slurm does not create the log's folder
    try:
        done = subprocess.run(cmd, env={**os.environ, **extra_env}, capture_output=True, text=True)
    except FileNotFoundError:
        print("launch.slurm: error: sbatch not found: run this on a Slurm login node", file=sys.stderr)
        return 2
    if done.returncode != 0:
        print(f"launch.slurm: error: sbatch failed: {done.stderr.strip()}", file=sys.stderr)
        return done.returncode
    job_id = done.stdout.strip().split(";")[0]
    print(job_id)
    token = "" if auth_disabled() else (
        f"  token:   cat {secrets_dir() / job_id / 'token'} while the job runs "
        "(the dashboard and Ray's CLI ask for it)\n")
    print(f"Submitted sweep {sweep.name} as Slurm job {job_id}\n"
          f"  results: {sweep.out_dir}\n  log:     {sweep.out_dir / f'slurm-{job_id}.out'} "
          "(it names the head node and the SSH command for the Ray dashboard)\n"
          f"{token}  resume:  submit the same command again; cancel: scancel {job_id}",
          file=sys.stderr)
    return 0
