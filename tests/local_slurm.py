"""A real two-node Slurm cluster on this host, for tests: munged, slurmctld and two slurmd.

Everything lives in one short temporary folder (configuration, state, spools, logs, and a
munge socket of its own, so a system munged, if any, is left alone) and every daemon is
started on free loopback ports and stopped by its pid file. Node k answers at 127.0.0.k+1,
which the Slurm batch script can use as the node's Ray address (PROXYSWEEP_NODE_IP=nodeaddr),
so two Ray nodes on one host still have distinct addresses.

Settings that matter in a container without systemd or cgroups (see shared/NOTES.md):
proctrack/linuxproc, task/none, no accounting database, ReturnToService=2, KillWait=5;
``cred_expire=5`` and a scheduler pass every second let a requeued job start again within
seconds instead of minutes.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from netutil import free_ports

DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "scontrol", "squeue", "scancel")
APT_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")


def missing_programs() -> list[str]:
    return [p for p in DAEMONS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def install_with_apt() -> str | None:
    """Install Debian's slurm-wlm and munge; None on success, else why not."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("apt-get") is None:
        return "no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class LocalSlurm:
    """Start with ``start()``, stop with ``stop()``; ``env`` is what Slurm clients need."""

    nodes: int = 2
    cpus_per_node: int = 1
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ps5s-")))

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def node_name(self, k: int) -> str:
        return f"node{k + 1}"

    def node_addr(self, k: int) -> str:
        return f"127.0.0.{k + 2}"

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    # -- set-up ------------------------------------------------------------------------
    def start(self) -> None:
        self.root.chmod(0o755)
        for sub in ("state", "log", "spool"):
            (self.root / sub).mkdir()
        self._start_munge()
        self._write_conf()
        subprocess.run([_sbin("slurmctld"), "-f", str(self.conf)], env=self.env, check=True, timeout=60)
        for k in range(self.nodes):
            (self.root / "spool" / self.node_name(k)).mkdir()
            subprocess.run([_sbin("slurmd"), "-f", str(self.conf), "-N", self.node_name(k)],
                           env=self.env, check=True, timeout=60)
        self.wait_idle()

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        folder = self.root / "munge"
        folder.mkdir(mode=0o755)
        key = folder / "munge.key"
        system_key = Path("/etc/munge/munge.key")
        key.write_bytes(system_key.read_bytes() if system_key.exists() else os.urandom(1024))
        key.chmod(0o600)
        for path in (folder, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        subprocess.run(
            ["runuser", "-u", "munge", "--", _sbin("munged"), f"--socket={folder / 'munge.sock'}",
             f"--key-file={key}", f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
             f"--seed-file={folder / 'munged.seed'}"],
            check=True, timeout=60,
        )

    def _write_conf(self) -> None:
        ctld_port, *node_ports = free_ports(1 + self.nodes)
        r = self.root
        lines = [
            "ClusterName=proxysweeptest",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={r / 'munge' / 'munge.sock'},cred_expire=5",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}/%n",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log'}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "KillWait=5",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=bf_interval=1,sched_interval=1",
            "InactiveLimit=0",
            "MinJobAge=600",
        ]
        names = []
        for k, port in enumerate(node_ports):
            names.append(self.node_name(k))
            lines.append(f"NodeName={self.node_name(k)} NodeHostname=localhost NodeAddr={self.node_addr(k)} "
                         f"Port={port} CPUs={self.cpus_per_node} State=UNKNOWN")
        lines.append(f"PartitionName=test Nodes={','.join(names)} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False)
            states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
            if len(states) == self.nodes and all(s == "idle" for s in states.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Slurm nodes not idle after {timeout}s: {states or done.stderr}; "
                                   f"logs in {self.root / 'log'}")
            time.sleep(0.5)

    # -- jobs ----------------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ExitCode, ...)."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        return dict(item.split("=", 1) for item in out.split() if "=" in item)

    def wait_job(self, job_id: str, states: tuple[str, ...], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {info.get('JobState')} after {timeout}s, not {states}")
            time.sleep(0.5)

    # -- tear-down -------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged by their pid files."""
        if self.conf.exists():
            self.run("scancel", "--full", "--user=root", check=False)
        pid_files = [self.root / f"slurmd-{self.node_name(k)}.pid" for k in range(self.nodes)]
        pid_files += [self.root / "slurmctld.pid", self.root / "munge" / "munged.pid"]
        for pid_file in pid_files:
            _terminate(pid_file)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _terminate(pid_file: Path, timeout: float = 20) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
