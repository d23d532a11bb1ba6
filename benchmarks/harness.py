"""What the benchmark scripts share: composing the project's Hydra config and timing the
scoring phase of a real sweep, so every script measures the same way."""
from __future__ import annotations

import os
import tempfile
import time

import torch
from omegaconf import DictConfig

from orchestrator.cluster import ray_defaults

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


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a host clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def actor_scaling(overrides: list[str], cells: int, title: str, digits: int = 3) -> None:
    """Score ``cells`` cells of the sweep ``overrides`` describe with 1 and then 2 actors
    on a local Ray of 2 CPUs, printing cells/s for each (the scripts' Ray part)."""
    import ray

    ray_defaults()
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="proxysweep", log_to_driver=False)
    print(f"\n{title} on a local Ray (2 CPUs), load average {os.getloadavg()[0]:.1f}")
    try:
        for n in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                cfg = config([*overrides, f"cells.n={cells}", "cells.seed=11", f"cluster.num_actors={n}",
                              f"out_dir={out}", "reduce=false"])
                wall = timed_scoring(cfg)
                print(f"{n} actor(s): {cells} cells in {wall:.1f} s -> {cells / wall:.{digits}f} cells/s")
    finally:
        ray.shutdown()
