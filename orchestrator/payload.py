"""What crosses from the driver to the scorer actors: one typed object each way in.

``ScorerSpec`` builds an actor (its space, the sweep's proxies with their checked
settings, its device, the plugins to import); ``JobPayload`` is what every cell of one job
shares (the head size, the input shape and the fixed batches, as object references the
actor fetches once). The driver builds them from the settings; the actor never sees the
raw config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from orchestrator.plan import Job
from orchestrator.settings import ProxyRun
from benchdata.batches import BatchSpec


@dataclass(frozen=True)
class ScorerSpec:
    """How to build one scorer actor."""

    name: str
    space: str
    space_settings: Mapping[str, Any]
    proxies: tuple[ProxyRun, ...]
    device: str
    threads: int
    plugins: tuple[str, ...] = ()
    #: the fraction of a GPU this actor holds (1/actors_per_gpu), 0 for a CPU actor; below
    #: 1 its CUDA memory is capped (``orchestrator.placement.memory_fraction``) and a cell
    #: that runs out is handed back to the pool to be retried alone on the GPU
    gpu_share: float = 0.0
    #: cells whose networks its builder process builds ahead (0: no builder process)
    build_ahead: int = 0


@dataclass(frozen=True)
class JobPayload:
    """What every cell of a job needs: ``batches`` maps each fixed batch to the object
    reference of its (images, labels) tensors."""

    job: Job
    num_classes: int
    input_shape: tuple[int, ...]
    batches: tuple[tuple[BatchSpec, Any], ...]
