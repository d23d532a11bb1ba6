"""The scorer: a Ray actor pinned to one GPU, or to one CPU slot with one torch thread.

It is built from one ``ScorerSpec``, keeps the fixed batches of its jobs on its device
(fetched once per job from the object store) and scores one cell per call, with the
proxies the cell's shard asks for; the driver queues the cells of a shard on it.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Sequence

import ray
import torch

from orchestrator.monitoring import ScorerMetrics
from orchestrator.payload import JobPayload, ScorerSpec
from orchestrator.plan import Job
from orchestrator.plugins import load_plugins
from orchestrator.scoring import JobInputs, Row, Worker, exact_cuda, score_cell
from spaces.registry import make_space


class Scorer:
    """Scores cells; created by the pool as a named Ray actor."""

    def __init__(self, spec: ScorerSpec) -> None:
        load_plugins(spec.plugins)  # their proxies and spaces register in this process too
        torch.set_num_threads(max(1, spec.threads))
        device = spec.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
        self.device = torch.device("cuda:0" if device == "cuda" else "cpu")
        if self.device.type == "cuda":
            exact_cuda()
        self.worker = Worker(spec.name, self.device, socket.gethostname())
        self.space = make_space(spec.space, spec.space_settings)
        self.proxies = {p.name: p for p in spec.proxies}
        self._jobs: dict[Job, JobInputs] = {}
        self.metrics = ScorerMetrics(spec.name)

    def describe(self) -> dict[str, Any]:
        """Where this actor runs: shown by the driver and the dashboard."""
        return {
            "name": self.worker.name, "host": self.worker.host, "device": str(self.device),
            "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "torch_threads": torch.get_num_threads(),
        }

    def _job(self, payload: JobPayload) -> JobInputs:
        if payload.job not in self._jobs:
            batches = {spec: tuple(t.to(self.device) for t in ray.get(ref)) for spec, ref in payload.batches}
            self._jobs[payload.job] = JobInputs(payload.job, payload.num_classes, payload.input_shape, batches)
        return self._jobs[payload.job]

    def score_cell(self, payload: JobPayload, arch_id: str, arch: str, proxies: Sequence[str]) -> list[Row]:
        """The rows of one cell of ``payload``'s job, one per proxy named."""
        start = time.perf_counter()
        runs = [self.proxies[name] for name in proxies]
        rows = score_cell(self.space, self._job(payload), arch_id, arch, runs, self.worker)
        self.metrics.record_cell(payload.job.space, payload.job.dataset, rows, time.perf_counter() - start)
        return rows
