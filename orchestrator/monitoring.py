"""What a sweep shows in the Ray dashboard and to Prometheus.

Scorer actors count their work with ``ray.util.metrics``; Ray exports those metrics from
every node's metrics port (Prometheus text, names prefixed ``ray_``), where the dashboard's
Metrics view and any Prometheus that scrapes the cluster find them:

- ``proxysweep_cells_scored`` (counter): cells scored, by space, dataset and actor;
- ``proxysweep_cell_seconds`` (histogram): wall time of one cell, all its proxies together;
- ``proxysweep_proxy_seconds`` (histogram): what one proxy costs on one cell, by proxy;
- ``proxysweep_proxy_results`` (counter): rows written, by proxy and status (ok, nonfinite, error);
- ``proxysweep_proxy_errors`` (counter): error rows, by proxy.

The driver records none: in Ray 2.60 a driver that holds a metric and exits on SIGTERM
aborts in some runs (2 of 4 measured; status 134), and the driver's progress line already tells
how far a sweep is (the sum of ``proxysweep_cells_scored`` over actors does too).
Metrics never stop a sweep: if recording fails, the failure is logged once and recording
stops in that actor.
"""
from __future__ import annotations

import logging
import socket
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: histogram buckets in seconds: a cheap proxy on a GPU up to a large network on a CPU
SECONDS_BUCKETS = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0]


class _Recorder:
    """Base: runs recording code and turns the first failure into a log line, then silence."""

    def __init__(self) -> None:
        self._enabled = True

    def _safely(self, record: Any, *args: Any) -> None:
        if not self._enabled:
            return
        try:
            record(*args)
        except Exception as exc:  # metrics are an aid; scoring must go on without them
            self._enabled = False
            log.warning("recording proxysweep metrics failed, metrics are off for this process: %s", exc)


class ScorerMetrics(_Recorder):
    """Per-actor counters and timings, recorded after each cell."""

    def __init__(self, actor: str) -> None:
        super().__init__()
        self.actor = actor
        self._safely(self._create)

    def _create(self) -> None:
        from ray.util.metrics import Counter, Histogram

        cell_tags = ("space", "dataset", "actor")
        proxy_tags = ("space", "dataset", "proxy")
        self._cells = Counter("proxysweep_cells_scored", "cells scored", tag_keys=cell_tags)
        self._cell_seconds = Histogram(
            "proxysweep_cell_seconds", "wall seconds to score one cell with every requested proxy",
            boundaries=SECONDS_BUCKETS, tag_keys=cell_tags)
        self._proxy_seconds = Histogram(
            "proxysweep_proxy_seconds", "seconds one proxy costs on one cell, shared passes included",
            boundaries=SECONDS_BUCKETS, tag_keys=proxy_tags)
        self._results = Counter("proxysweep_proxy_results", "score rows by proxy and status",
                                tag_keys=(*proxy_tags, "status"))
        self._errors = Counter("proxysweep_proxy_errors", "error rows by proxy", tag_keys=proxy_tags)

    def record_cell(self, space: str, dataset: str, rows: Iterable[Mapping[str, Any]], seconds: float) -> None:
        """Count one scored cell and its rows (one per proxy)."""
        self._safely(self._record, space, dataset, list(rows), seconds)

    def _record(self, space: str, dataset: str, rows: list[Mapping[str, Any]], seconds: float) -> None:
        cell = {"space": space, "dataset": dataset, "actor": self.actor}
        self._cells.inc(1, tags=cell)
        self._cell_seconds.observe(seconds, tags=cell)
        for row in rows:
            tags = {"space": space, "dataset": dataset, "proxy": str(row["proxy"])}
            self._results.inc(1, tags={**tags, "status": str(row["status"])})
            if row["status"] == "error":
                self._errors.inc(1, tags=tags)
            if row.get("seconds") is not None:
                self._proxy_seconds.observe(float(row["seconds"]), tags=tags)


def head_node() -> tuple[str, str] | None:
    """(host name, IP) of the Ray head node, where the dashboard runs; None if unknown."""
    try:
        import ray

        for node in ray.nodes():
            if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
                return node.get("NodeManagerHostname") or node["NodeManagerAddress"], node["NodeManagerAddress"]
    except Exception:  # e.g. a Ray client driver: fall back to this machine
        pass
    return None


def dashboard_banner(url: str, head_host: str, head_ip: str) -> str:
    """The line printed when a sweep starts: the dashboard's URL as seen on the head node,
    and the SSH command that forwards it to the user's machine."""
    if not url.startswith("http"):
        url = f"http://{url}"
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 8265
    if host in ("0.0.0.0", "::"):  # bound to every interface: name the head's address
        host = head_ip
    return (f"Ray dashboard: {parts.scheme}://{host}:{port} on {head_host} "
            f"(from another machine: ssh -N -L {port}:{host}:{port} {head_host}, then open http://localhost:{port})")


def announce_dashboard(url: str) -> str:
    """``dashboard_banner`` for the cluster this driver is connected to, and where to find
    the token its dashboard asks for."""
    from orchestrator.cluster import token_hint

    head = head_node() or (socket.gethostname(), "127.0.0.1")
    hint = token_hint()
    return dashboard_banner(url, *head) + (f"\n  {hint}" if hint else "")
