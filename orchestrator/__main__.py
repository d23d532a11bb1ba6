"""``python -m orchestrator +sweep=NAME [overrides]``: run a sweep described by Hydra configs.

Under Hydra's multirun (``-m``), each job writes to its own ``out_dir``, named by its
overrides under ``hydra.sweep.dir`` (unless ``out_dir`` is among the overrides), and a job
that fails is reported by Hydra once the others have run.
"""
from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from orchestrator.config import register_configs
from orchestrator.errors import SweepError
from orchestrator.sweep import main_with_errors, run_sweep


def _multirun_job(cfg: DictConfig) -> bool:
    """True under multirun; then ``out_dir`` becomes the job's own folder unless it was set."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return False
    if not any(o.lstrip("+~").split("=", 1)[0] == "out_dir" for o in hydra_cfg.overrides.task):
        with open_dict(cfg):
            cfg.out_dir = hydra_cfg.runtime.output_dir
    return True


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    if _multirun_job(cfg):
        run_sweep(cfg)  # an error is this job's; Hydra runs the others, then reports it
        return
    code = main_with_errors(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    try:
        register_configs(sys.argv[1:])
    except SweepError as exc:
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        sys.exit(2)
    main()
