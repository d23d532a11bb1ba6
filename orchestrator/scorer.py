"""The scorer: a Ray actor pinned to one GPU, or to one CPU slot with one torch thread.

It keeps the fixed batches of its jobs on its device (fetched once per job from the object
store) and scores one cell per call; the driver queues the cells of a shard on it.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping, Sequence

import ray
import torch

from orchestrator.monitoring import ScorerMetrics
from orchestrator.scoring import JobInputs, Row, Worker, exact_cuda, score_cell
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
            exact_cuda()
        self.worker = Worker(name, self.device, socket.gethostname())
        self.space = make_space(space, space_settings)
        self.proxies = list(proxies)
        self._jobs: dict[tuple, JobInputs] = {}
        self.metrics = ScorerMetrics(name)

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

    def score_cell(self, job: Mapping[str, Any], arch_id: str, arch: str) -> list[Row]:
        """The rows of one cell of ``job``, one per requested proxy."""
        start = time.perf_counter()
        rows = score_cell(self.space, self._job(job), arch_id, arch, self.proxies, self.worker)
        self.metrics.record_cell(job["space"], job["dataset"], rows, time.perf_counter() - start)
        return rows
