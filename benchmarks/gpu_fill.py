"""Filling the GPU (issue 16): cells/s of NB201 sweeps with several actors per GPU, where a
cell's time goes, and whether the GPU scores what the CPU scores.

The gradient family and naswot (``PROXIES``), CIFAR-10 (the smoke sweep's embedded images,
so no data root is needed), seed 0, shards of 25 as in nb201_all on a GPU (2 on the CPU, so
that every actor gets some of its few cells); the cells are a fixed
sample of 2,000 NB201 cells (numpy seed 16) and each run scores a prefix of it.

Part 1, breakdown: in this process, on ``--breakdown`` cells of the sample, the seconds of
each step of a cell (build on the CPU, transfer to the device, each shared pass, each
proxy's own work, the rest: Python between them); on CUDA also a torch.profiler trace of
the same cells: GPU kernel time against wall time, kernel launches, the costliest
operators on the CPU and on the GPU.
Part 2, throughput: real sweeps on a local Ray. On a GPU (``--device cuda``): 1, 2, 4 and 8
actors per GPU (each building 2 cells ahead), ``--cells-per-actor`` cells per actor with 1,
2 and 4, the whole 2,000-cell sample with 8, with the GPU's utilisation sampled from
nvidia-smi, and the time all 15,625 cells would take. On the CPU: actors x threads per
actor, with and without the builder process. A run is shrunk (a shorter prefix of the
sample) when the rate of the run before says it would not end inside ``--budget`` seconds.
Part 3 (GPU only): the first ``--compare-cells`` cells scored again by CPU actors: Spearman
of each proxy's GPU scores against its CPU scores, and whether every status is equal.

    python benchmarks/gpu_fill.py --device cpu --cells 24            # here: 2 cores
    python benchmarks/gpu_fill.py --device cuda --budget 450          # on a lent GPU
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import torch

from orchestrator.cluster import ray_defaults
from orchestrator.plan import Job
from orchestrator.scoring import JobInputs, build_cell, cell_seed, exact_cuda, run_proxies
from orchestrator.settings import load_settings
from proxies import ScoringContext
from spaces import make_space
from benchdata.batches import draw_batch
from benchdata.images import read_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import config, synchronize, timed_scoring  # noqa: E402

PROXIES = ["grad_norm", "snip", "grasp", "fisher", "plain", "synflow", "synflow_bn", "l2_norm", "jacob_cov", "naswot"]
SAMPLE, SAMPLE_SEED, ALL_CELLS = 2000, 16, 15625
BASE = ["+sweep=nb201_smoke", "cluster.dashboard=false", f"sweep.proxies=[{','.join(PROXIES)}]",
        "sweep.seeds=[0]", "reduce=false"]
#: cells per shard: nb201_all's 25 on a GPU; on the CPU's few cells, 2, so every actor has shards
SHARD_SIZE = {"cuda": 25, "cpu": 2}


def sample_ids(space) -> list[str]:
    """The fixed 2,000-cell sample, in its drawn order (a run takes a prefix)."""
    ids = space.cells().ids
    return [ids[i] for i in np.random.default_rng(SAMPLE_SEED).choice(len(ids), SAMPLE, replace=False)]


def breakdown(settings, ids: list[str], device: torch.device) -> None:
    """Part 1: where a cell's seconds go, the steps of ``score_cell`` timed one by one."""
    space = make_space("nb201", settings.space_settings)
    archs = dict(zip(space.cells().ids, space.cells().archs))
    x, y = read_images(settings.images["cifar10"], "cifar10")
    batches = {s: tuple(t.to(device) for t in draw_batch(x, y, "cifar10", 0, s)) for s in settings.batch_specs()}
    job = JobInputs(Job("nb201", "cifar10", 0), 10, (3, 32, 32), batches)
    steps: dict[str, list[float]] = defaultdict(list)

    def one(arch_id: str) -> None:
        start = time.perf_counter()
        seed = cell_seed("nb201", 0, arch_id)
        built = build_cell(space, archs[arch_id], 10, seed)
        steps["build on the CPU"].append(built.seconds)
        t0 = time.perf_counter()
        model = built.model.to(device).train()
        synchronize(device)
        steps["transfer to the device"].append(time.perf_counter() - t0)
        ctx = ScoringContext(model, job.batches, job.input_shape, job.num_classes, device)
        outcomes = run_proxies(ctx, list(settings.proxies), seed)
        synchronize(device)
        total = time.perf_counter() - start
        passes = sum(ctx.pass_seconds.values())
        by_kind: dict[str, float] = defaultdict(float)
        for key, sec in ctx.pass_seconds.items():
            by_kind[f"shared pass {key[0]}"] += sec
        for kind, sec in by_kind.items():
            steps[kind].append(sec)
        for o in outcomes:
            steps[f"proxy {o.name} (own work)"].append(o.seconds - o.shared_seconds)
        own = sum(o.seconds - o.shared_seconds for o in outcomes)
        steps["rest (Python, restores, seeding)"].append(total - built.seconds - steps["transfer to the device"][-1]
                                                          - passes - own)
        steps["whole cell"].append(total)

    one(ids[-1])  # warm-up (CUDA context, cuDNN): not counted
    steps.clear()
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            wall = time.perf_counter()
            for arch_id in ids:
                one(arch_id)
            wall = time.perf_counter() - wall
    else:
        for arch_id in ids:
            one(arch_id)
    print(f"\nPart 1: where a cell's time goes, {len(ids)} cells, {device_name(device)}, "
          f"load average {os.getloadavg()[0]:.1f} (shared passes are timed from the host: on CUDA they "
          "include waiting for the GPU only where a pass reads a result back)")
    print(f"{'step':<44} {'median s':>9} {'share of the cell':>18}")
    whole = statistics.median(steps["whole cell"])
    for name, values in sorted(steps.items(), key=lambda kv: -statistics.median(kv[1])):
        med = statistics.median(values)
        print(f"{name:<44} {med:>9.4f} {med / whole:>17.1%}")
    if device.type == "cuda":
        events = prof.key_averages()
        device_time = "self_device_time_total" if hasattr(events[0], "self_device_time_total") else "self_cuda_time_total"
        kernel = sum(getattr(e, device_time) for e in events) / 1e6  # microseconds
        launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
        print(f"GPU kernels {kernel:.2f} s of {wall:.2f} s wall ({kernel / wall:.0%} busy with one actor), "
              f"{launches / len(ids):.0f} kernel launches per cell")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        print(prof.key_averages().table(sort_by=device_time, row_limit=8))
        torch.cuda.empty_cache()  # the actors of part 2 share this GPU


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"


class GpuSampler:
    """GPU utilisation (percent) from nvidia-smi every half second while a run lasts."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.values.append(statistics.mean(float(v) for v in out.split()))
            except (OSError, ValueError, subprocess.SubprocessError, statistics.StatisticsError):
                return

    def __enter__(self) -> "GpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def mean(self) -> str:
        return f"{statistics.mean(self.values):.0f}%" if self.values else "n/a"


def sweep(ids: list[str], out: str, folder: str, device: str, cluster: list[str]) -> float:
    """Score ``ids`` in a sweep into ``out``; the wall seconds of its scoring phase."""
    path = Path(folder) / f"cells-{len(ids)}.txt"
    path.write_text("\n".join(ids) + "\n")
    return timed_scoring(config([*BASE, "cells=file", f"cells.path={path}", f"out_dir={out}", f"device={device}",
                                 f"sweep.shard_size={SHARD_SIZE[device]}", *cluster]))


def throughput(ids: list[str], device: str, args, start: float, folder: str) -> str | None:
    """Part 2; returns the output folder of the largest GPU run (for part 3)."""
    if device == "cuda":
        runs = [(f"{k} per GPU", [f"cluster.actors_per_gpu={k}", "cluster.build_ahead=2"],
                 SAMPLE if k == 8 else args.cells_per_actor * k) for k in (1, 2, 4, 8)]
    else:
        runs = [(f"{a} x {t} thread(s), build ahead {b}",
                 [f"cluster.num_actors={a}", f"cluster.threads_per_actor={t}", f"cluster.build_ahead={b}"], args.cells)
                for a, t in ((args.cpus, 1), (1, args.cpus)) for b in (0, 2)]
    print(f"\nPart 2: NB201, {len(PROXIES)} proxies ({', '.join(PROXIES)}), device={device}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'actors':<34} {'cells':>6} {'seconds':>8} {'cells/s':>8} {'GPU util':>9} {'all 15,625 cells':>17}")
    rate, kept = None, None
    for name, cluster, n in runs:
        left = args.budget - (time.perf_counter() - start) - (args.compare_reserve if device == "cuda" else 0)
        if rate is not None and n / rate + 30 > left:
            n = max(25, int((left - 30) * rate))
            if left < 60:
                print(f"{name:<34} skipped: {left:.0f} s of the budget left")
                continue
        out = tempfile.mkdtemp(dir=folder)
        with GpuSampler() if device == "cuda" else _Nothing() as sampler:
            wall = sweep(ids[:n], out, folder, device, cluster)
        rate = n / wall
        util = sampler.mean() if device == "cuda" else "-"
        print(f"{name:<34} {n:>6} {wall:>8.1f} {rate:>8.2f} {util:>9} {ALL_CELLS / rate / 60:>13.1f} min", flush=True)
        kept = out
    return kept


class _Nothing:
    def __enter__(self) -> "_Nothing":
        return self

    def __exit__(self, *_exc) -> None:
        return None


def scores(out: str, ids: set[str]) -> dict[tuple[str, str], tuple[str, float | None]]:
    table = pads.dataset(str(Path(out) / "scores"), format="parquet").to_table(
        columns=["arch_id", "proxy", "status", "score"]).to_pylist()
    return {(r["arch_id"], r["proxy"]): (r["status"], r["score"]) for r in table if r["arch_id"] in ids}


def compare(gpu_out: str, ids: list[str], args, folder: str) -> None:
    """Part 3: the same cells on CPU actors, against the GPU's scores."""
    from scipy.stats import spearmanr

    out = tempfile.mkdtemp(dir=folder)
    wall = sweep(ids, out, folder, "cpu", ["cluster.build_ahead=0"])
    gpu, cpu = scores(gpu_out, set(ids)), scores(out, set(ids))
    print(f"\nPart 3: {len(ids)} cells scored again on {args.cpus} CPU actors ({wall:.0f} s): GPU against CPU")
    print(f"{'proxy':<12} {'Spearman':>9} {'statuses equal':>15} {'max relative difference':>24}")
    for proxy in PROXIES:
        keys = [(c, proxy) for c in ids if (c, proxy) in gpu and (c, proxy) in cpu]
        same = all(gpu[k][0] == cpu[k][0] for k in keys) and len(keys) == len(ids)
        both = [(gpu[k][1], cpu[k][1]) for k in keys if gpu[k][1] is not None and cpu[k][1] is not None
                and np.isfinite(gpu[k][1]) and np.isfinite(cpu[k][1])]
        g, c = np.array([b[0] for b in both]), np.array([b[1] for b in both])
        rho = spearmanr(g, c).statistic if len(both) > 2 else float("nan")
        rel = float(np.max(np.abs(g - c) / np.maximum(np.abs(c), 1e-12))) if both else float("nan")
        print(f"{proxy:<12} {rho:>9.5f} {str(same):>15} {rel:>24.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--cells", type=int, default=24, help="CPU: cells per throughput run")
    parser.add_argument("--cells-per-actor", type=int, default=120,
                        help="GPU: cells of the runs of 1, 2 and 4 actors per GPU, per actor (8: all 2,000)")
    parser.add_argument("--breakdown", type=int, default=5, help="cells timed step by step (0: skip part 1)")
    parser.add_argument("--compare-cells", type=int, default=48, help="GPU: cells scored again on the CPU (0: skip)")
    parser.add_argument("--compare-reserve", type=float, default=90, help="GPU: seconds of the budget kept for part 3")
    parser.add_argument("--budget", type=float, default=450, help="seconds the whole script may take")
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    args = parser.parse_args()
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda":
        exact_cuda()
    settings = load_settings(config([*BASE, "out_dir=unused"]), check_files=False)
    space = make_space("nb201", settings.space_settings)
    ids = sample_ids(space)
    if args.breakdown:
        torch.set_num_threads(1)  # as one actor
        breakdown(settings, ids[:args.breakdown], device)
    import ray

    ray_defaults()
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    ray.init(address="local", num_cpus=args.cpus, num_gpus=gpus, include_dashboard=False, namespace="proxysweep",
             log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            kept = throughput(ids, args.device, args, start, folder)
            left = args.budget - (time.perf_counter() - start)
            if device.type == "cuda" and args.compare_cells and kept is not None:
                n = args.compare_cells if left > 60 else max(0, args.cpus * int((left - 30) / 20))
                if n:
                    compare(kept, ids[:n], args, folder)
                else:
                    print(f"\nPart 3 skipped: {left:.0f} s of the budget left")
    finally:
        ray.shutdown()
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
