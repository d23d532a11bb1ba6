"""``python -m orchestrator +sweep=NAME [overrides]``: run a sweep described by Hydra configs;
``python -m orchestrator +search=NAME [overrides]``: run a search with proxies (``conf/search/``).

Under Hydra's multirun (``-m``), each job writes to its own ``out_dir``, named by its
overrides under ``hydra.sweep.dir`` (unless ``out_dir`` is among the overrides), and a job
that fails is reported by Hydra once the others have run.

A plain run (overrides only, no Hydra flags) is composed once before Hydra's own entry
point, so that an override Hydra rejects is one ``proxysweep: error:`` line with exit
status 2 like every other bad input, not Hydra's several lines (or its traceback, for a
config group given a number). Hydra's record of the run (``.hydra/``) is written once the
sweep's inputs are checked (``conf/config.yaml`` turns Hydra's own off), so a run stopped
by bad input writes nothing into ``out_dir``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from orchestrator.config import compose_config, register_configs
from orchestrator.errors import SweepError
from orchestrator.files import atomic_write
from orchestrator.sweep import main_with_errors, run_job


def _multirun_job(cfg: DictConfig) -> bool:
    """True under multirun; then ``out_dir`` becomes the job's own folder unless it was set."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return False
    if not any(o.lstrip("+~").split("=", 1)[0] == "out_dir" for o in hydra_cfg.overrides.task):
        with open_dict(cfg):
            cfg.out_dir = hydra_cfg.runtime.output_dir
    return True


def hydra_record(cfg: DictConfig) -> Callable[[Path], None]:
    """Writes Hydra's record of this run into ``<out_dir>/.hydra``: the composed config,
    Hydra's own and the overrides, as Hydra writes them (``hydra.output_subdir``)."""
    hydra_cfg = HydraConfig.instance().cfg
    task = OmegaConf.to_yaml(cfg)

    def write(out_dir: Path) -> None:
        folder = Path(out_dir) / ".hydra"
        atomic_write(folder / "config.yaml", task)
        atomic_write(folder / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
        atomic_write(folder / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))

    return write


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    record = hydra_record(cfg)
    if _multirun_job(cfg):
        run_job(cfg, record)  # an error is this job's; Hydra runs the others, then reports it
        return
    code = main_with_errors(cfg, record)
    if code:
        sys.exit(code)


def check_overrides(argv: Sequence[str]) -> None:
    """SweepError (one line) for a plugin that does not import or, in a plain run, an
    override Hydra would reject. With Hydra's flags (``-m``, ``--cfg``, ``--help``...)
    Hydra reads the command line itself and reports as it does."""
    if any(arg.startswith("-") for arg in argv):
        register_configs(argv)
    else:
        compose_config(argv)  # registers the configs too


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:])
    except SweepError as exc:
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        sys.exit(2)
    main()
