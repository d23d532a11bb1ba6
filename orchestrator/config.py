"""Composing proxysweep's Hydra config outside ``python -m orchestrator``: the Slurm
launcher, the data checker, the benchmarks and the tests build exactly the config the
command line would, through this one function."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from orchestrator.errors import SweepError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``python -m orchestrator OVERRIDES`` runs with; SweepError with one line
    for an override Hydra rejects (unknown key or group, malformed value)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = " ".join(str(exc).split()).split(" Config search path")[0]
        raise SweepError(f"bad override: {message}") from None
