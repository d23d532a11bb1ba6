"""Monitoring through the Ray dashboard, as a user sees it.

A separate ``ray start --head`` (with its dashboard, on loopback, on free ports) plays the
cluster; a real sweep driver joins it by address as a subprocess. While the sweep runs,
the dashboard's own HTTP API must list the scorer actors under their names, and the
node's Prometheus endpoint must export the sweep's custom metrics.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow.dataset as pads
import pytest
from conftest import DATA_ROOT, REPO
from netutil import free_ports, http_get, http_json, poll, prometheus_samples

from orchestrator.monitoring import dashboard_banner

RAY = Path(sys.executable).with_name("ray")
#: Ray settings for the head and the driver: no token auth or usage stats (see NOTES),
#: a single node kept on loopback, metrics exported every second instead of every 10 s
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_metrics_report_interval_ms": "1000",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}


@dataclass(frozen=True)
class Head:
    gcs: str
    dashboard: str
    metrics: str


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    """A real Ray head with its dashboard, started and stopped by this test (by its pid,
    never with ``ray stop``, which would stop every Ray on the machine)."""
    gcs, dashboard, metrics, agent, client = free_ports(5)
    temp = tempfile.mkdtemp(prefix="ps5d-")  # short: Ray's socket paths have a length limit
    log = open(Path(temp) / "ray-start.log", "w")
    proc = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--metrics-export-port={metrics}",
         f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
         "--num-cpus=2", "--object-store-memory=200000000", f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV}, start_new_session=True,
    )
    head = Head(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}", f"http://127.0.0.1:{metrics}/metrics")
    try:
        poll(lambda: http_json(f"{head.dashboard}/api/version").get("ray_version"), timeout=180,
             what="Ray dashboard", alive=lambda: proc.poll() is None)
        yield head
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def alive_scorers(head: Head) -> set[str]:
    reply = http_json(f"{head.dashboard}/api/v0/actors?limit=1000")
    return {a["name"] for a in reply["data"]["result"]["result"]
            if a.get("state") == "ALIVE" and a.get("name", "").startswith("scorer-nb201_smoke-")}


class _Grace:
    """True while a process runs and for ``seconds`` after it ended."""

    def __init__(self, proc: subprocess.Popen, seconds: float) -> None:
        self.proc, self.seconds, self.ended_at = proc, seconds, None

    def open(self) -> bool:
        if self.proc.poll() is None:
            return True
        self.ended_at = self.ended_at or time.monotonic()
        return time.monotonic() - self.ended_at < self.seconds


def total(text: str, name: str, **labels: str) -> float:
    return sum(v for tags, v in prometheus_samples(text, name) if all(tags.get(k) == x for k, x in labels.items()))


@pytest.mark.slow
def test_named_actors_and_custom_metrics_while_a_sweep_runs(ray_head: Head, tmp_path: Path) -> None:
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "+sweep=nb201_smoke", "cells.n=16", "cells.seed=5",
             "sweep.seeds=[0]", "sweep.proxies=[synflow,params]", "sweep.shard_size=2", "reduce=false",
             f"data.root={DATA_ROOT}", f"out_dir={tmp_path / 'out'}", f"cluster.address={ray_head.gcs}"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV},
        )
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-")
    expected = {f"scorer-nb201_smoke-{host}-127.0.0.1-cpu{k}" for k in (0, 1)}
    running = lambda: driver.poll() is None  # noqa: E731
    try:
        # the dashboard lists both named actors while they work
        assert poll(lambda: alive_scorers(ray_head) == expected, timeout=240, every=0.3,
                    what=f"actors {sorted(expected)} in the dashboard", alive=running)
        # and the node exports the custom metrics, per proxy (collected over scrapes: the
        # first ones may come before every actor has reported)
        seen: dict[str, float] = {}
        wanted = {
            "cells": ("ray_proxysweep_cells_scored_total", {}),
            "synflow ok": ("ray_proxysweep_proxy_results_total", {"proxy": "synflow", "status": "ok"}),
            "params seconds": ("ray_proxysweep_proxy_seconds_count", {"proxy": "params"}),
            "cell seconds": ("ray_proxysweep_cell_seconds_count", {}),
        }

        def scrape() -> str | None:
            text = http_get(ray_head.metrics)
            for key, (name, labels) in wanted.items():
                value = total(text, name, **labels)
                if value > 0:
                    seen[key] = max(seen.get(key, 0.0), value)
            return text if set(seen) == set(wanted) else None

        grace = _Grace(driver, seconds=5.0)  # the last values are still exported after the actors end
        try:
            text = poll(scrape, timeout=180, every=0.5, alive=grace.open, what="proxysweep metrics")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; seen: {seen}; driver output:\n{log.read_text()[-3000:]}") from None
        assert driver.wait(timeout=300) == 0, log.read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    printed = log.read_text()
    assert dashboard_banner(ray_head.dashboard, socket.gethostname(), "127.0.0.1") in printed
    actors = {tags["actor"] for tags, _ in prometheus_samples(text, "ray_proxysweep_cells_scored_total")}
    assert actors <= expected
    assert total(text, "ray_proxysweep_proxy_errors_total") == 0
    buckets = [tags for tags, _ in prometheus_samples(text, "ray_proxysweep_cell_seconds_bucket")]
    assert {"space": "nb201", "dataset": "cifar10"}.items() <= buckets[0].items()
    # the names the dashboard shows are the workers recorded in the results
    rows = pads.dataset(str(tmp_path / "out" / "scores"), format="parquet").to_table().to_pylist()
    assert len(rows) == 16 * 2
    assert {r["worker"] for r in rows} == expected


def test_dashboard_banner_names_a_reachable_address_and_the_tunnel() -> None:
    line = dashboard_banner("0.0.0.0:8265", "gpu-node-07", "10.0.0.7")
    assert line.startswith("Ray dashboard: http://10.0.0.7:8265 on gpu-node-07")
    assert "ssh -N -L 8265:10.0.0.7:8265 gpu-node-07" in line
    line = dashboard_banner("http://127.0.0.1:9000", "head", "10.0.0.1")
    assert line.startswith("Ray dashboard: http://127.0.0.1:9000 on head")
    assert "ssh -N -L 9000:127.0.0.1:9000 head" in line
