"""What the benchmark scripts share: composing the project's Hydra config and timing the
scoring phase of a real sweep, so every script measures the same way."""
from __future__ import annotations

import time

from omegaconf import DictConfig

from orchestrator.config import compose_config
from orchestrator.settings import load_settings
from orchestrator.sweep import prepare, score



def config(overrides: list[str]) -> DictConfig:
    """The config ``python -m orchestrator`` would build from these overrides."""
    return compose_config(overrides)


def timed_scoring(cfg: DictConfig) -> float:
    """Plan the sweep of ``cfg`` (not timed), score it on the connected Ray and return the
    wall seconds of the scoring phase, actor start-up included."""
    prepared = prepare(load_settings(cfg))
    start = time.perf_counter()
    try:
        score(prepared)
    finally:
        prepared.store.unlock()
    return time.perf_counter() - start
