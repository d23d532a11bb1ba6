"""Connecting the driver to Ray: an embedded local instance, or an existing cluster."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import ray

NAMESPACE = "proxysweep"
#: the packages scorer actors import; shipped to clusters joined by address
PACKAGES = ("orchestrator", "proxies", "spaces")


@dataclass(frozen=True)
class Connection:
    """``owned``: this driver called ``ray.init`` and so must shut it down."""

    owned: bool
    dashboard_url: str | None


def ray_defaults() -> None:
    """Ray 2.60 turns on token auth and usage stats by default; a local sweep needs neither
    (users who want them set the variables themselves)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _dashboard_url(context: Any) -> str | None:
    url = getattr(context, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return url


def connect(cluster: Mapping[str, Any]) -> Connection:
    """Use Ray if this process already runs it; else join ``cluster.address`` or start one."""
    ray_defaults()
    if ray.is_initialized():
        return Connection(owned=False, dashboard_url=None)
    address = cluster.get("address")
    if address:
        folders = [str(Path(importlib.import_module(name).__file__).parent) for name in PACKAGES]
        context = ray.init(address=str(address), namespace=NAMESPACE, runtime_env={"py_modules": folders})
        return Connection(owned=True, dashboard_url=_dashboard_url(context))
    context = ray.init(
        address="local",  # always a new instance, even if `ray start` runs on this machine
        namespace=NAMESPACE,
        num_cpus=cluster.get("num_cpus"),
        num_gpus=cluster.get("num_gpus"),
        include_dashboard=bool(cluster.get("dashboard", True)),
        dashboard_host=str(cluster.get("dashboard_host", "127.0.0.1")),
        dashboard_port=int(cluster.get("dashboard_port", 8265)),
    )
    return Connection(owned=True, dashboard_url=_dashboard_url(context))


def disconnect(connection: Connection) -> None:
    """Leave the cluster, stopping the embedded instance if this driver started one."""
    if connection.owned and ray.is_initialized():
        ray.shutdown()
