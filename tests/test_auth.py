"""Ray token authentication on a real two-node Ray cluster, set up as the launchers do.

A head (``ray start --head``, with its dashboard) and a second node (``ray start --address``)
run on loopback with ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` naming a 0600 file;
this module starts them once and stops them by pid (never ``ray stop``, which would stop
every Ray on the machine). Then, as a user or an intruder on the network sees it:

- a client or a node without the right token is refused (wrong token, no token, token mode
  off), while one with it connects;
- the dashboard's REST API answers 401 without the token, 403 with a wrong one, 200 with
  ``Authorization: Bearer <token>``;
- a real sweep driver given the token runs to the end, with actors on both nodes;
- ``RAY_AUTH_MODE=disabled`` is possible for the driver, with a warning;
- the driver's embedded local Ray keeps its token file private (0600) and refuses a client
  without it.

Addresses: with more than one node on a host Ray rewrites 127.0.0.1 to the machine's
routable address (shared/NOTES.md), so the head is at 127.0.0.2 and the second node at
127.0.0.3, as the Slurm test's nodes are; the dashboard is bound to 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow.dataset as pads
import pytest
from conftest import DATA_ROOT, REPO
from netutil import free_ports, http_json, poll

from orchestrator.cluster import AUTH_OFF_WARNING, connect

RAY = Path(sys.executable).with_name("ray")
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"
#: every Ray setting of the nodes and of clients, except the token itself; multi-node Ray is
#: allowed on one host (the Slurm script sets the same)
BASE_ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")},
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}
#: the server's answer to a request without the right token
REFUSED = "Authentication token is missing or incorrect"


@dataclass(frozen=True)
class Cluster:
    gcs: str
    dashboard: str
    token: str
    token_file: Path
    temp: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process that holds the token, as the launchers give it."""
        return {**BASE_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_file), **extra}


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([str(RAY), "start", "--block", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """`ray start --block` stops its node's processes on SIGTERM; its group is killed if not."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def get(url: str, **headers: str) -> tuple[int, str]:
    """HTTP status and body of a GET, errors included."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get_json(url: str, token: str) -> Any:
    """A dashboard API reply, asked with the token (ValueError unless 200, so poll retries)."""
    status, body = get(url, Authorization=f"Bearer {token}")
    if status != 200:
        raise ValueError(f"{url}: HTTP {status}: {body[:200]}")
    return json.loads(body)


def alive_nodes(cluster: Cluster) -> set[str]:
    reply = get_json(f"{cluster.dashboard}/api/v0/nodes", cluster.token)
    return {n["node_ip"] for n in reply["data"]["result"]["result"] if n["state"] == "ALIVE"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    temp = Path(tempfile.mkdtemp(prefix="psau-"))  # short: Ray's socket paths have a length limit
    token = secrets.token_hex(32)  # the format `ray get-auth-token --generate` writes
    token_file = temp / "token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    gcs, dashboard, client, agent_head, agent_node = free_ports(5)
    c = Cluster(f"{HEAD_IP}:{gcs}", f"http://127.0.0.1:{dashboard}", token, token_file, temp)
    common = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]
    procs = [start(["--head", f"--node-ip-address={HEAD_IP}", f"--port={gcs}", "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={agent_head}",
                    f"--ray-client-server-port={client}", f"--temp-dir={temp / 'h'}", *common],
                   c.env(), temp / "head.log")]
    try:
        poll(lambda: get_json(f"{c.dashboard}/api/version", token), timeout=180,
             what="the Ray head's dashboard", alive=lambda: procs[0].poll() is None)
        procs.append(start([f"--address={c.gcs}", f"--node-ip-address={NODE_IP}",
                            f"--dashboard-agent-listen-port={agent_node}", f"--temp-dir={temp / 'n'}", *common],
                           c.env(), temp / "node.log"))
        poll(lambda: alive_nodes(c) == {HEAD_IP, NODE_IP}, timeout=120, what="the second Ray node",
             alive=lambda: all(p.poll() is None for p in procs))
        yield c
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def test_the_dashboard_rest_api_needs_the_token(cluster: Cluster) -> None:
    for path in ("/api/version", "/api/jobs/"):
        url = cluster.dashboard + path
        assert get(url)[0] == 401, path
        assert get(url, Authorization=f"Bearer {secrets.token_hex(32)}")[0] == 403, path
        assert get(url, Authorization=f"Bearer {cluster.token}")[0] == 200, path
    # what the web UI asks first, before it shows the token prompt
    assert http_json(f"{cluster.dashboard}/api/authentication_mode") == {"authentication_mode": "token"}


CONNECT = "import ray, sys; ray.init(address=sys.argv[1]); print('connected to', len(ray.nodes()), 'nodes')"


def test_clients_and_nodes_without_the_token_are_refused(cluster: Cluster, tmp_path: Path) -> None:
    """Each attempt runs at once in its own process (Ray retries a refused connection for
    20 s; RAY_gcs_server_port_wait_time_s=2 shortens that: the refusal itself is the
    server's, and its message says so). HOME is empty, so no ~/.ray/auth_token is found."""
    home = tmp_path / "home"
    home.mkdir()
    anonymous = {**BASE_ENV, "HOME": str(home), "RAY_gcs_server_port_wait_time_s": "2"}
    python = [sys.executable, "-c", CONNECT, cluster.gcs]
    (agent,) = free_ports(1)
    attempts = {
        "with the token": (python, cluster.env()),
        "a wrong token": (python, {**anonymous, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}),
        "token mode, no token": (python, {**anonymous, "RAY_AUTH_MODE": "token"}),
        "mode unset, no token": (python, anonymous),
        "auth disabled": (python, {**anonymous, "RAY_AUTH_MODE": "disabled"}),
        "a node with a wrong token": (  # --block: were it let in, it is stopped with its group below
            [str(RAY), "start", "--block", f"--address={cluster.gcs}", "--node-ip-address=127.0.0.4", "--num-cpus=1",
             f"--dashboard-agent-listen-port={agent}", f"--temp-dir={cluster.temp / 'x'}", "--disable-usage-stats"],
            {**anonymous, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}),
    }
    procs = {name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
             for name, (cmd, env) in attempts.items()}
    results = {}
    try:
        for name, proc in procs.items():
            try:
                out, _ = proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                out = "(still running after 90 s)"
            results[name] = (proc.returncode, out)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    rc, out = results.pop("with the token")
    assert rc == 0 and "connected to 2 nodes" in out, out
    rc, out = results.pop("token mode, no token")  # refused before it sends anything
    assert rc != 0 and "no authentication token was found" in out, out
    for name, (rc, out) in results.items():
        assert rc != 0 and REFUSED in out, (name, out[-3000:])
    assert alive_nodes(cluster) == {HEAD_IP, NODE_IP}  # the refused node did not join


@pytest.mark.slow
def test_a_sweep_with_the_token_runs_to_the_end_on_both_nodes(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "+sweep=nb201_smoke", "cells.n=6", "sweep.seeds=[0]",
         "sweep.proxies=[synflow,params]", "sweep.shard_size=2", f"data.root={DATA_ROOT}", f"out_dir={out}",
         f"cluster.address={cluster.gcs}"],
        cwd=REPO, env=cluster.env(), capture_output=True, text=True, timeout=600,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-4000:]
    rows = pads.dataset(str(out / "scores"), format="parquet").to_table().to_pylist()
    assert sorted((r["proxy"], r["status"]) for r in rows) == [("params", "ok")] * 6 + [("synflow", "ok")] * 6
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-")
    assert {r["worker"] for r in rows} == {f"scorer-nb201_smoke-{host}-{ip}-cpu0" for ip in (HEAD_IP, NODE_IP)}
    assert (out / "metrics.parquet").exists()
    # the driver says where the token is, and never prints it
    assert f"cat {cluster.token_file}" in printed and cluster.token not in printed, printed[-4000:]
    assert AUTH_OFF_WARNING not in printed


@pytest.mark.slow
def test_ray_job_submit_runs_a_sweep_that_joins_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """``ray job submit`` (with the token) starts the driver on the head with RAY_ADDRESS
    set: it joins this cluster (actors on its two nodes) instead of starting its own Ray."""
    out = tmp_path / "out"
    done = subprocess.run(
        [str(RAY), "job", "submit", "--address", cluster.dashboard, "--", sys.executable, "-m", "orchestrator",
         "+sweep=nb201_smoke", "cells=ids", "cells.ids=[7,42,99,1000]", "sweep.seeds=[0]", "sweep.proxies=[params]",
         "sweep.shard_size=1", f"out_dir={out}"],
        cwd=REPO, env=cluster.env(), capture_output=True, text=True, timeout=600,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-4000:]
    assert "succeeded" in printed
    rows = pads.dataset(str(out / "scores"), format="parquet").to_table().to_pylist()
    assert sorted(r["arch_id"] for r in rows) == ["1000", "42", "7", "99"]
    assert {r["worker"].split("-")[-2] for r in rows} <= {HEAD_IP, NODE_IP}


def test_turning_auth_off_is_an_explicit_choice_with_a_warning(
        ray_session: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The driver's connect() warns when RAY_AUTH_MODE=disabled, and only then (here it
    finds the tests' local Ray already running in this process, so it connects at once)."""
    for mode, warned in (("disabled", True), ("DISABLED", True), ("token", False), (None, False)):
        if mode is None:
            monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
        else:
            monkeypatch.setenv("RAY_AUTH_MODE", mode)
        connect({})
        assert (AUTH_OFF_WARNING in capsys.readouterr().err) == warned, mode


#: a driver that starts the embedded local Ray as ``python -m orchestrator`` does, prints
#: its GCS address and holds it until its standard input closes
LOCAL_DRIVER = """
import sys, ray
from orchestrator.cluster import connect, disconnect
from orchestrator.settings import ClusterSettings
connection = connect(ClusterSettings(num_cpus=1, dashboard=False))
print("gcs", ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
disconnect(connection)
"""


def test_an_open_token_file_is_narrowed_and_a_missing_one_made_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the driver does before it starts its local Ray (``private_local_token``): a
    token file left readable by others (0644) is narrowed to 0600, keeping its token; a
    missing one is created 0600 with a fresh token in Ray's format; a token given in the
    environment, or auth turned off, leaves the files alone."""
    from orchestrator.cluster import private_local_token

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    token_file = tmp_path / ".ray" / "auth_token"
    token_file.parent.mkdir()
    token_file.write_text("kept")
    token_file.chmod(0o644)
    assert private_local_token() == token_file
    assert token_file.stat().st_mode & 0o777 == 0o600 and token_file.read_text() == "kept"
    other = tmp_path / "elsewhere" / "token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(other))
    assert private_local_token() == other
    assert other.stat().st_mode & 0o777 == 0o600 and re.fullmatch(r"[0-9a-f]{64}", other.read_text())
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    assert private_local_token() is None
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert private_local_token() is None


def test_the_embedded_local_ray_keeps_its_token_private(tmp_path: Path) -> None:
    """The driver's own local Ray (no address) runs with token auth, and its token file,
    ~/.ray/auth_token, is readable by its user only: created 0600 before Ray would write it
    with the umask (022 here). A client without the token is refused by the local instance;
    one that reads the file connects."""
    home, stranger = tmp_path / "home", tmp_path / "stranger"
    stranger.mkdir()
    token_file = home / ".ray" / "auth_token"
    local = {**BASE_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    driver = subprocess.Popen([sys.executable, "-c", LOCAL_DRIVER], cwd=REPO, env={**local, "HOME": str(home)},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True, preexec_fn=lambda: os.umask(0o022))
    try:
        line = driver.stdout.readline()
        while line and not line.startswith("gcs "):
            line = driver.stdout.readline()
        assert line, "the driver stopped before its Ray started"
        gcs = line.split()[1]
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert re.fullmatch(r"[0-9a-f]{64}", token_file.read_text())
        # a client names the mode (Ray's default for a client is off) and finds the token in its
        # ~/.ray; another user's client finds none there and is refused by the server
        attempts = {home: ("connected to 1 nodes", {"RAY_AUTH_MODE": "token"}),
                    stranger: (REFUSED, {"RAY_gcs_server_port_wait_time_s": "2"})}
        for where, (expected, extra) in attempts.items():
            done = subprocess.run([sys.executable, "-c", CONNECT, gcs], env={**local, **extra, "HOME": str(where)},
                                  capture_output=True, text=True, timeout=120)
            assert expected in done.stdout + done.stderr, (where, (done.stdout + done.stderr)[-3000:])
    finally:
        driver.stdin.close()
        try:
            driver.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
