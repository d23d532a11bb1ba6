"""The scorer: a Ray actor holding a GPU or a share of one, or CPU slots with its threads.

It is built from one ``ScorerSpec``, keeps the fixed batches of its jobs on its device
(fetched once per job from the object store) and scores one cell per call, with the
proxies the cell's shard asks for; the driver queues the cells of a shard on it, and tells
it which cells come next (``ahead``) so that its builder process (``orchestrator.builder``)
builds their networks while it scores.

An actor sharing its GPU with others (``gpu_share`` < 1) caps its CUDA memory, so that a
cell that needs too much fails alone instead of taking its neighbours' memory; such a cell
raises ``CellOutOfMemory`` to the pool, which empties the GPU of the other actors' work
(``release``) and sends the cell again with ``alone=True``: the cap is lifted for it, and
if it still runs out its rows say so.
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import ray
import torch

from orchestrator.builder import Builder, BuilderSpec, BuildKey
from orchestrator.monitoring import ScorerMetrics
from orchestrator.payload import JobPayload, ScorerSpec
from orchestrator.placement import ALONE_MEMORY_FRACTION, memory_fraction
from orchestrator.plan import Job
from orchestrator.plugins import load_plugins
from orchestrator.scoring import JobInputs, Row, Worker, cell_seed, exact_cuda, score_cell
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
        self.shares_gpu = 0 < spec.gpu_share < 1
        self.memory_fraction = memory_fraction(spec.gpu_share) if self.shares_gpu else None
        if self.device.type == "cuda":
            exact_cuda()
            if self.memory_fraction is not None:
                torch.cuda.set_per_process_memory_fraction(self.memory_fraction, self.device)
        self.worker = Worker(spec.name, self.device, socket.gethostname())
        self.space = make_space(spec.space, spec.space_settings)
        self.proxies = {p.name: p for p in spec.proxies}
        self._jobs: dict[Job, JobInputs] = {}
        self.metrics = ScorerMetrics(spec.name)
        self.builder = (Builder(BuilderSpec(spec.space, dict(spec.space_settings), spec.plugins, spec.threads),
                                keep=spec.build_ahead + 2)
                        if spec.build_ahead > 0 else None)

    def describe(self) -> dict[str, Any]:
        """Where this actor runs: shown by the driver and the dashboard."""
        return {
            "name": self.worker.name, "host": self.worker.host, "device": str(self.device),
            "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "torch_threads": torch.get_num_threads(), "memory_fraction": self.memory_fraction,
            "builder": self.builder is not None,
        }

    def placement(self) -> tuple[str, tuple[str, ...]]:
        """(node, GPU ids): the actors answering the same share one GPU (the pool's unit
        for retrying a cell alone)."""
        return ray.get_runtime_context().get_node_id(), tuple(str(g) for g in ray.get_gpu_ids())

    def release(self) -> None:
        """Give the GPU's cached memory back; answered once every call queued before it has
        run, which is how the pool knows this actor has stopped using the GPU."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _job(self, payload: JobPayload) -> JobInputs:
        if payload.job not in self._jobs:
            batches = {spec: tuple(t.to(self.device) for t in ray.get(ref)) for spec, ref in payload.batches}
            self._jobs[payload.job] = JobInputs(payload.job, payload.num_classes, payload.input_shape, batches)
        return self._jobs[payload.job]

    def _key(self, payload: JobPayload, arch_id: str, arch: str) -> BuildKey:
        return cell_seed(payload.job.space, payload.job.seed, arch_id), arch, payload.num_classes

    @contextmanager
    def _memory(self, alone: bool) -> Iterator[None]:
        """The whole GPU for a cell scored alone (the pool has emptied it), then the cap again."""
        lift = alone and self.device.type == "cuda" and self.memory_fraction is not None
        if lift:
            torch.cuda.set_per_process_memory_fraction(ALONE_MEMORY_FRACTION, self.device)
        try:
            yield
        finally:
            if lift:
                torch.cuda.empty_cache()
                torch.cuda.set_per_process_memory_fraction(self.memory_fraction, self.device)

    def score_cell(self, payload: JobPayload, arch_id: str, arch: str, proxies: Sequence[str],
                   ahead: Sequence[tuple[str, str]] = (), alone: bool = False) -> list[Row]:
        """The rows of one cell of ``payload``'s job, one per proxy named. ``ahead``: the
        (id, cell string) of the cells that come next, for the builder. ``alone``: the pool
        has emptied this actor's GPU of other work for this cell."""
        start = time.perf_counter()
        built = None
        if self.builder is not None:
            for next_id, next_arch in ahead:
                self.builder.request(self._key(payload, next_id, next_arch))
            built = self.builder.take(self._key(payload, arch_id, arch))
        runs = [self.proxies[name] for name in proxies]
        with self._memory(alone):
            rows = score_cell(self.space, self._job(payload), arch_id, arch, runs, self.worker, built,
                              raise_on_oom=self.shares_gpu and not alone)
        self.metrics.record_cell(payload.job.space, payload.job.dataset, rows, time.perf_counter() - start)
        return rows
