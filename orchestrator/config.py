"""The Hydra config: ``conf/`` plus the settings of every registered proxy and space.

Proxies and spaces carry their own defaults (``proxies.register``,
``spaces.register_space``); ``register_configs`` puts them in Hydra's ConfigStore as the
``proxy`` and ``space`` groups' ``registered`` option, which ``conf/config.yaml`` selects,
so ``proxy.naswot.batch_size=64`` works as an override and the registries and the config
can never disagree. Plugins named on the command line are imported first, so their
settings are there too.

``compose_config`` builds exactly the config ``python -m orchestrator`` would: the Slurm
launcher, the data checker, the benchmarks and the tests use it.
"""
from __future__ import annotations

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
    from spaces import SPACES

    load_plugins(plugin_from_overrides(overrides))
    store = ConfigStore.instance()
    store.store(group="proxy", name=REGISTERED, node={n: dict(p.defaults) for n, p in sorted(PROXIES.items())})
    store.store(group="space", name=REGISTERED, node={n: dict(s.defaults) for n, s in sorted(SPACES.items())})


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
        raise SweepError(f"bad override: {message}") from None


class OutDirCheck(Callback):
    """Hydra writes its record (``.hydra/``) and its log into ``out_dir`` before the sweep's
    own checks run. Checked first, an out_dir that cannot be created or written (read-only)
    or that another driver holds stops the run with the sweep's one line and exit status 2,
    instead of Hydra's traceback, or of Hydra's record of a refused run written over the
    running driver's (``conf/config.yaml``: ``hydra.callbacks``)."""

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
        store.unlock()
