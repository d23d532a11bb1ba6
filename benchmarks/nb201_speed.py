"""Speed: NB201 cells per second per proxy on this machine, and 1 vs 2 Ray actors.

Part 1 (one process, one torch thread; with --device cuda, on one GPU): for a fixed
sample of cells, the median seconds per cell of each proxy alone on a freshly built model
(as zero-cost-nas runs each measure on a fresh copy; the build is included), of all
requested proxies together through the shared passes, of a family of proxies together
against its most expensive member alone, and of the floor (one forward plus backward of
the same model on the same batch).
Part 2: a sweep of the six default proxies on a real local Ray with 1 and then 2 CPU
actors; cells per second over the scoring phase (actor start-up included).

    python benchmarks/nb201_speed.py --cells 12 --ray-cells 24 [--data-root ../shared/data]
    python benchmarks/nb201_speed.py --proxies grad_norm snip grasp fisher plain synflow \
        synflow_bn l2_norm jacob_cov --family grad_norm snip grasp fisher plain synflow \
        synflow_bn l2_norm jacob_cov --ray-cells 0
    python benchmarks/nb201_speed.py --device cuda --ray-cells 0 --proxies ...  # on a GPU
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from orchestrator.plan import Job
from orchestrator.scoring import JobInputs, Worker, cell_seed, exact_cuda, score_cell, seed_everything
from orchestrator.settings import load_settings
from spaces import make_space
from benchdata.batches import BatchSpec, draw_batch
from benchdata.images import read_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import actor_scaling, config, synchronize  # noqa: E402

DEFAULT_PROXIES = ["grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"]


def per_proxy(settings, proxies: list[str], family: list[str], cells: int, device: torch.device) -> None:
    torch.set_num_threads(1)
    space = make_space("nb201", settings.space_settings, settings.data_root)
    table = space.cells()
    ids = [table.ids[i] for i in range(0, len(table), len(table) // cells)][:cells]
    archs = {table.ids[i]: table.archs[i] for i in range(len(table))}
    x, y = read_images(settings.images["cifar10"], "cifar10")
    batches = {spec: tuple(t.to(device) for t in draw_batch(x, y, "cifar10", 0, spec)) for spec in settings.batch_specs()}
    floor_batch = draw_batch(x, y, "cifar10", 0, BatchSpec(64, True))
    job = JobInputs(Job("nb201", "cifar10", 0), 10, (3, 32, 32), batches)
    worker = Worker("bench", device, "localhost")
    runs = {p.name: p for p in settings.proxies}
    together = f"all {len(proxies)} together"
    family_name = f"family of {len(family)} together"
    floor = "floor fwd+bwd b64"
    times: dict[str, list[float]] = {name: [] for name in [*proxies, together, family_name, floor]}

    def timed(names: list[str], arch_id: str) -> float:
        start = time.perf_counter()
        rows = score_cell(space, job, arch_id, archs[arch_id], [runs[n] for n in names], worker)
        failed = [r for r in rows if r["status"] == "error"]
        assert not failed, failed
        return time.perf_counter() - start  # every score is a Python float: the device is done

    if device.type == "cuda":  # the scorer actors' CUDA settings; start-up stays out of the figures
        exact_cuda()
        timed(proxies, ids[0])

    for arch_id in ids:
        for name in proxies:
            times[name].append(timed([name], arch_id))
        times[together].append(timed(proxies, arch_id))
        if family:
            times[family_name].append(timed(family, arch_id))
        seed_everything(cell_seed("nb201", 0, arch_id))
        model = space.build(space.parse(archs[arch_id]), 10).to(device).train()
        bx, by = (t.to(device) for t in floor_batch)
        synchronize(device)
        start = time.perf_counter()
        F.cross_entropy(model(bx), by).backward()
        synchronize(device)
        times[floor].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items() if values}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "one torch thread"
    print(f"Part 1: {cells} NB201 cells, CIFAR-10, {where}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'proxy':<24} {'median s/cell':>13} {'cells/s':>8}")
    for name, med in medians.items():
        print(f"{name:<24} {med:>13.3f} {1 / med:>8.2f}")
    alone = sum(medians[n] for n in proxies)
    print(f"{'sum of each alone':<24} {alone:>13.3f} {1 / alone:>8.2f}")
    if family:
        costliest = max(family, key=lambda n: medians[n])
        ratio = medians[family_name] / medians[costliest]
        print(f"family together / its costliest member alone ({costliest}): {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=12)
    parser.add_argument("--ray-cells", type=int, default=24, help="0 skips part 2")
    parser.add_argument("--proxies", nargs="+", default=DEFAULT_PROXIES)
    parser.add_argument("--family", nargs="*", default=[], help="proxies to time together against their costliest member")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", "../shared/data"))
    args = parser.parse_args()
    requested = list(dict.fromkeys([*args.proxies, *args.family]))
    overrides = ["+sweep=nb201_smoke", f"data.root={args.data_root}", "cluster.dashboard=false",
                 f"sweep.proxies=[{','.join(requested)}]"]
    settings = load_settings(config(overrides))
    per_proxy(settings, args.proxies, args.family, args.cells, torch.device(args.device))
    if args.ray_cells:
        actor_scaling([*overrides[:3], f"sweep.proxies=[{','.join(DEFAULT_PROXIES)}]", "cells=sample", "sweep.seeds=[0]", "sweep.shard_size=2"], args.ray_cells,
                      f"Part 2: {args.ray_cells} cells x six proxies", digits=3)


if __name__ == "__main__":
    sys.exit(main())
