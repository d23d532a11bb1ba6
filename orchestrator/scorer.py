"""The scorer: a Ray actor pinned to one GPU, or to one CPU slot with one torch thread.

It keeps the fixed batches of its jobs on its device and streams back the rows of each
cell of a shard as soon as they are ready (a Ray streaming generator), so the driver shows
progress per cell and, if the actor dies, knows exactly which cells are still to do.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Iterator, Mapping, Sequence

import ray
import torch

from orchestrator.plan import Shard
from orchestrator.scoring import JobInputs, Row, Worker, score_cell
from spaces import make_space
from spaces.batches import BatchSpec


class Scorer:
    """Scores shards of cells; created by the pool as a named Ray actor."""

    def __init__(
        self,
        name: str,
        space: str,
        space_settings: Mapping[str, Any],
        proxies: Sequence[tuple[str, Mapping[str, Any]]],
        device: str,
        threads: int,
    ) -> None:
        torch.set_num_threads(max(1, threads))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
        self.device = torch.device("cuda:0" if device == "cuda" else "cpu")
        if self.device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.worker = Worker(name, self.device, socket.gethostname())
        self.space = make_space(space, space_settings)
        self.proxies = list(proxies)
        self._jobs: dict[tuple, JobInputs] = {}

    def describe(self) -> dict[str, Any]:
        """Where this actor runs: shown by the driver and the dashboard."""
        return {
            "name": self.worker.name, "host": self.worker.host, "device": str(self.device),
            "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "torch_threads": torch.get_num_threads(),
        }

    def _job(self, info: Mapping[str, Any]) -> JobInputs:
        key = (info["space"], info["dataset"], info["seed"])
        if key not in self._jobs:
            batches = {
                BatchSpec(**spec): tuple(t.to(self.device) for t in ray.get(ref))
                for spec, ref in info["batches"]
            }
            self._jobs[key] = JobInputs(
                info["space"], info["dataset"], info["seed"], info["num_classes"],
                tuple(info["input_shape"]), batches,
            )
        return self._jobs[key]

    def score(self, shard: Shard, job: Mapping[str, Any], start: int = 0) -> Iterator[list[Row]]:
        """Yield the rows of cells ``start..`` of ``shard``, one list per cell, in order."""
        inputs = self._job(job)
        for arch_id, arch in zip(shard.ids[start:], shard.archs[start:]):
            yield score_cell(self.space, inputs, arch_id, arch, self.proxies, self.worker)
