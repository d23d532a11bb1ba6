"""Where the scorer actors go: how many per GPU or per CPU, their resources and threads.

A GPU scores one NB201 cell's passes in a few tens of milliseconds, but one actor spends
most of a cell on the CPU (Python, kernel launches, building the network), so one actor
per GPU leaves it mostly idle. Several actors share each GPU instead (Ray's fractional
GPUs: each holds ``1/actors_per_gpu`` of one, and Ray sets its ``CUDA_VISIBLE_DEVICES`` to
that GPU), each with a builder process (``orchestrator.builder``), and each caps its CUDA
memory at ``memory_fraction`` of the GPU so that a cell that needs too much fails in its
own actor; the pool then retries that cell alone on the GPU (``orchestrator.pool``).

Without GPUs (or with ``device=cpu``) each actor holds ``threads_per_actor`` CPUs and runs
that many torch threads; one thread per actor scores the most cells per second on a
busy node (benchmarks/README.md, "Filling the GPU").
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from orchestrator.settings import ClusterSettings

log = logging.getLogger(__name__)

#: the most actors the automatic rule puts on one GPU: past 8, NB201 cells/s stop rising
#: on an H100-class GPU while each actor still costs a CUDA context and a builder process
AUTO_MAX_ACTORS_PER_GPU = 8
#: GPU memory the automatic rule reserves per actor: the most any shipped sweep's cell
#: needs (NB101 at batch 256 with grasp's double backward, a few GiB) with room to spare
AUTO_GIB_PER_ACTOR = 10
#: CPUs the automatic rule reserves per actor: one for the actor, one for its builder
AUTO_CPUS_PER_ACTOR = 2
#: the part of a GPU's memory the actors sharing it may take together; the rest is for
#: what PyTorch's allocator does not count (each process's CUDA context and cuDNN
#: workspaces, about 0.5 GiB per actor)
SHARED_MEMORY = 0.9
#: what an actor may take while the pool has emptied its GPU for one cell
ALONE_MEMORY_FRACTION = SHARED_MEMORY
#: the GPU share the memory probe holds for a moment
PROBE_GPU_SHARE = 0.01
PROBE_TIMEOUT = 120.0
#: cells built ahead by a GPU actor's builder when ``cluster.build_ahead`` is null
GPU_BUILD_AHEAD = 2


@dataclass
class Slot:
    """A place for one actor: a node and a device kind; the actor in it may be replaced.

    ``gpu_share``: the fraction of a GPU its actor holds (0 for a CPU slot). ``placement``:
    the actor's answer to ``Scorer.placement`` (an object reference), and ``group`` that
    answer once read: the slots of one group share one GPU."""

    name: str
    node_id: str
    host: str
    kind: str  # "gpu" or "cpu"
    threads: int
    restarts: int = 0
    actor: Any = None
    gpu_share: float = 0.0
    build_ahead: int = 0
    placement: Any = None
    group: Any = None

    @property
    def shares_gpu(self) -> bool:
        return self.kind == "gpu" and 0 < self.gpu_share < 1

    def resources(self) -> dict[str, float]:
        """The Ray resources of its actor: a GPU share (CPUs unaccounted, as the builder
        and Python threads are), or ``threads`` CPUs."""
        if self.kind == "gpu":
            return {"num_gpus": self.gpu_share, "num_cpus": 0}
        return {"num_cpus": self.threads}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "node"


def auto_actors_per_gpu(cpus_per_gpu: float, gpu_memory_bytes: int | None) -> int:
    """``min(8, CPUs per GPU // 2, GPU memory in GiB // 10)``, at least 1; 1 when the GPU's
    memory is unknown (no CUDA where the probe ran, e.g. GPUs declared to Ray that the
    node does not have: such actors score on the CPU)."""
    if gpu_memory_bytes is None:
        return 1
    by_memory = int(gpu_memory_bytes // 2**30) // AUTO_GIB_PER_ACTOR
    return max(1, min(AUTO_MAX_ACTORS_PER_GPU, int(cpus_per_gpu) // AUTO_CPUS_PER_ACTOR, by_memory))


def memory_fraction(gpu_share: float) -> float:
    """The CUDA memory cap of an actor holding ``gpu_share`` of a GPU, as a fraction of
    the GPU's memory (``torch.cuda.set_per_process_memory_fraction``)."""
    return SHARED_MEMORY * gpu_share


def _probe_gpu_memory() -> int | None:
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))


def gpu_memory(node_ids: list[str]) -> dict[str, int | None]:
    """Each node's GPU memory in bytes (its smallest GPU), read by a task holding a sliver
    of one of its GPUs; None where there is no CUDA or the probe did not answer."""
    probe = ray.remote(_probe_gpu_memory)
    refs = {node: probe.options(num_cpus=0, num_gpus=PROBE_GPU_SHARE,
                                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
            for node in node_ids}
    out: dict[str, int | None] = {}
    for node, ref in refs.items():
        try:
            out[node] = ray.get(ref, timeout=PROBE_TIMEOUT)
        except Exception as exc:  # a busy or broken GPU node: fall back to one actor per GPU
            log.warning("could not read the GPU memory of node %s (%s); one actor per GPU there", node, exc)
            ray.cancel(ref, force=True)
            out[node] = None
    return out


def plan_slots(sweep_name: str, use_gpus: bool, cluster: ClusterSettings) -> list[Slot]:
    """Slots on the live nodes, round-robin across nodes, at most ``cluster.num_actors``:
    ``actors_per_gpu`` per GPU, or one per ``threads_per_actor`` CPUs."""
    nodes = [n for n in sorted(ray.nodes(), key=lambda n: n["NodeManagerAddress"]) if n.get("Alive")]
    memory: dict[str, int | None] = {}
    if use_gpus and cluster.actors_per_gpu is None:
        memory = gpu_memory([n["NodeID"] for n in nodes if n.get("Resources", {}).get("GPU", 0) >= 1])
    per_node: list[list[Slot]] = []
    for node in nodes:
        res = node.get("Resources", {})
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 0))
        host = _safe(node.get("NodeManagerHostname") or node["NodeManagerAddress"])
        prefix = f"scorer-{_safe(sweep_name)}-{host}-{_safe(node['NodeManagerAddress'])}"
        if use_gpus:
            if gpus == 0:
                per_node.append([])
                continue
            per_gpu = cluster.actors_per_gpu or auto_actors_per_gpu(cpus / gpus, memory.get(node["NodeID"]))
            threads = cluster.threads_per_actor or max(1, cpus // (gpus * per_gpu))
            ahead = GPU_BUILD_AHEAD if cluster.build_ahead is None else cluster.build_ahead
            per_node.append([
                Slot(f"{prefix}-gpu{k}", node["NodeID"], host, "gpu", threads, gpu_share=1 / per_gpu,
                     build_ahead=ahead)
                for k in range(gpus * per_gpu)
            ])
        else:
            threads = cluster.threads_per_actor or 1
            ahead = cluster.build_ahead or 0
            per_node.append([Slot(f"{prefix}-cpu{k}", node["NodeID"], host, "cpu", threads, build_ahead=ahead)
                             for k in range(cpus // threads)])
    slots = [s for group in _round_robin(per_node) for s in group]
    return slots[:cluster.num_actors] if cluster.num_actors else slots


def _round_robin(groups: list[list[Slot]]) -> list[list[Slot]]:
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.append([g[i] for g in groups if i < len(g)])
    return out


def describe_slots(slots: list[Slot]) -> str:
    """E.g. "8 GPU actor(s) (4 per GPU, 2 torch thread(s) each, building 2 cells ahead)"."""
    first = slots[0]
    what = (f"{len(slots)} GPU actor(s) ({round(1 / first.gpu_share)} per GPU, " if first.kind == "gpu"
            else f"{len(slots)} CPU actor(s) (")
    ahead = f"building {first.build_ahead} cell(s) ahead" if first.build_ahead else "no builder process"
    return f"{what}{first.threads} torch thread(s) each, {ahead})"


def cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0


def node_affinity(slot: Slot) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=slot.node_id, soft=True)
