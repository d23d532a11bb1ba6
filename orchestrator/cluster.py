"""Connecting the driver to Ray: an embedded local instance, or an existing cluster."""
from __future__ import annotations

import importlib
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import ray

from orchestrator.files import atomic_create

if TYPE_CHECKING:
    from orchestrator.settings import ClusterSettings

NAMESPACE = "proxysweep"
#: the packages scorer actors import; shipped to clusters joined by address
PACKAGES = ("orchestrator", "proxies", "spaces", "searches", "benchdata")


@dataclass(frozen=True)
class Connection:
    """``owned``: this driver called ``ray.init`` and so must shut it down."""

    owned: bool
    dashboard_url: str | None


AUTH_OFF_WARNING = (
    "proxysweep: warning: Ray token authentication is off (RAY_AUTH_MODE=disabled): anyone "
    "who reaches this cluster's ports can run code as you; unset RAY_AUTH_MODE to turn it back on"
)


def ray_defaults() -> None:
    """No usage reporting to Anyscale. Token authentication is left as Ray sets it: on for
    a local instance (Ray generates the token, ~/.ray/auth_token), and for a cluster
    whatever ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN_PATH`` say, as on every one of its nodes."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def auth_disabled() -> bool:
    """Whether the user turned Ray's token authentication off explicitly."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "disabled"


def private_local_token() -> Path | None:
    """Make sure the token of an embedded local Ray is readable by this user only.

    With token auth on and no token given, Ray reads ``~/.ray/auth_token`` and, if it is
    missing, writes a new one there with the process's umask: usually readable by every
    user of the machine, who could then reach the local instance (127.0.0.1 is shared on a
    login node). So the token file is created here first, mode 0600, in Ray's own format
    (64 hex digits, as ``secrets.token_hex(32)``, ray/_private/authentication); one that
    exists and belongs to this user is narrowed to 0600. ``RAY_AUTH_TOKEN`` given, or auth
    off: nothing to do (None)."""
    if auth_disabled() or os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if not atomic_create(path, secrets.token_hex(32), mode=0o600):
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o600)
    return path


def token_hint() -> str:
    """How a user gets the token the dashboard asks for (empty when auth is off)."""
    if auth_disabled():
        return ""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    where = f"cat {path}" if path else "ray get-auth-token"
    return f"the dashboard asks for Ray's auth token: print it with `{where}`"


def _dashboard_url(context: Any) -> str | None:
    url = getattr(context, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return url


def connect(cluster: ClusterSettings, plugin_paths: Sequence[str] = ()) -> Connection:
    """Use Ray if this process already runs it; else join ``cluster.address`` (or
    ``$RAY_ADDRESS``, as set for a driver started by ``ray job submit``) or start one.

    ``plugin_paths`` (plugins' source folders) go to the workers with the job's runtime
    environment; a Ray this process already runs was started without them, and its local
    workers find the plugins on the driver's ``sys.path``, which Ray passes on."""
    ray_defaults()
    if auth_disabled():
        print(AUTH_OFF_WARNING, file=sys.stderr, flush=True)
    if ray.is_initialized():
        return Connection(owned=False, dashboard_url=None)
    address = cluster.address or os.environ.get("RAY_ADDRESS")
    if address:
        folders = [str(Path(importlib.import_module(name).__file__).parent) for name in PACKAGES]
        context = ray.init(address=str(address), namespace=NAMESPACE,
                           runtime_env={"py_modules": [*folders, *plugin_paths]})
        return Connection(owned=True, dashboard_url=_dashboard_url(context))
    private_local_token()
    context = ray.init(
        address="local",  # always a new instance, even if `ray start` runs on this machine
        namespace=NAMESPACE,
        num_cpus=cluster.num_cpus,
        num_gpus=cluster.num_gpus,
        include_dashboard=cluster.dashboard,
        dashboard_host=cluster.dashboard_host,
        dashboard_port=cluster.dashboard_port,
        runtime_env={"py_modules": list(plugin_paths)} if plugin_paths else None,
    )
    return Connection(owned=True, dashboard_url=_dashboard_url(context))


def disconnect(connection: Connection) -> None:
    """Leave the cluster, stopping the embedded instance if this driver started one."""
    if connection.owned and ray.is_initialized():
        ray.shutdown()
