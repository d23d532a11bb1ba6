"""``python -m orchestrator +sweep=NAME [overrides]``: run a sweep described by Hydra configs."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from orchestrator.sweep import main_with_errors


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    code = main_with_errors(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
