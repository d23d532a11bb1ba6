"""The Hydra config: ``conf/`` plus the settings of every registered proxy and space.

Proxies and spaces carry their own defaults (``proxies.register``,
``spaces.register_space``); ``register_configs`` puts them in Hydra's ConfigStore as the
``proxy`` and ``space`` groups' ``registered`` option, which ``conf/config.yaml`` selects,
so ``proxy.naswot.batch_size=64`` works as an override and the registries and the config
can never disagree. Search methods' defaults go in the ``search_settings`` group, one option
per method, which each ``conf/search/*.yaml`` puts under ``search.settings``. Plugins named on the command line are imported first, so their
settings are there too.

``compose_config`` builds exactly the config ``python -m orchestrator`` would: the Slurm
launcher, the data checker, the benchmarks and the tests use it.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from orchestrator.errors import SweepError
from orchestrator.plugins import load_plugins, plugin_from_overrides

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: the option of the proxy and space groups that holds every registered entry
REGISTERED = "registered"


def register_configs(overrides: Sequence[str] = ()) -> None:
    """Import the plugins ``overrides`` name, then store every registered proxy's and
    space's defaults in Hydra's ConfigStore (again, if plugins added some)."""
    from hydra.core.config_store import ConfigStore

    from proxies import PROXIES
    from searches import SEARCHES
    from spaces import SPACES

    load_plugins(plugin_from_overrides(overrides))
    store = ConfigStore.instance()
    store.store(group="proxy", name=REGISTERED, node={n: dict(p.defaults) for n, p in sorted(PROXIES.items())})
    store.store(group="space", name=REGISTERED, node={n: dict(s.defaults) for n, s in sorted(SPACES.items())})
    for name, method in SEARCHES.items():  # conf/search/*.yaml: /search_settings@search.settings: <method>
        store.store(group="search_settings", name=name, node=dict(method.defaults))


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``python -m orchestrator OVERRIDES`` runs with; SweepError with one line
    for an override Hydra rejects (unknown key or group, malformed value)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = " ".join(str(exc).split()).split(" Config search path")[0]
        override = getattr(exc, "override", None)  # a parse error names the input, not the override
        if isinstance(override, str) and override not in message:
            message = f"{override}: {message}"
        raise SweepError(f"bad override: {message}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # Hydra's own slips on odd overrides, e.g. a
        message = " ".join(str(exc).split())[:200]            # group given a number (cells=[1,2], cluster=5)
        groups = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in _groups()
                  and not re.fullmatch(r"[A-Za-z_][\w\-/]*", o.partition("=")[2])]
        where = f"; a config group takes the name of one of its options: {', '.join(groups)}" if groups else ""
        raise SweepError(f"bad override: {type(exc).__name__}: {message}{where}") from None


def _groups() -> set[str]:
    """The config groups: conf/'s folders and the registries' groups."""
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()} | {"proxy", "space", "search_settings"}


class OutDirCheck(Callback):
    """Hydra makes ``out_dir`` (and would log into it) before the sweep's own checks run.
    Checked first, an out_dir that cannot be created or written (read-only) or that another
    driver holds stops the run with the sweep's one line and exit status 2, instead of
    Hydra's traceback; the check leaves the place as it found it
    (``conf/config.yaml``: ``hydra.callbacks``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from orchestrator.store import ScoreStore

        out_dir = config.get("out_dir")
        if not isinstance(out_dir, str) or not out_dir.strip():
            return  # load_settings reports it
        store = ScoreStore(Path(out_dir).expanduser().resolve())
        try:
            store.lock()
        except SweepError as exc:
            print(f"proxysweep: error: {exc}", file=sys.stderr)
            sys.exit(2)
        store.abandon()
