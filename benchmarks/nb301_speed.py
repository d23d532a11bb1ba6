"""Speed: NB301 cells per second per proxy on this machine, and what the fidelity sweep costs.

One process, one torch thread (with --device cuda, one GPU): for the first ``--cells`` truth
cells of NASLib's sample, on the space's default network (C=32, 8 cells), the median seconds
per cell of each proxy alone on a freshly built model (the build included), of all of them
together through the shared passes, and of the floor (one forward plus backward of a batch
of 64). From the together figure it prints what ``+sweep=nb301_fidelity`` (725 cells) takes
with one and with two CPU actors. Optionally (``--ray-cells``), the six default proxies on a
real local Ray with 1 and 2 CPU actors.

    python benchmarks/nb301_speed.py --cells 3 [--data-root ../shared/data]
    python benchmarks/nb301_speed.py --cells 3 --proxies grad_norm snip synflow --ray-cells 4
    python benchmarks/nb301_speed.py --device cuda --cells 10   # on a GPU
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

from benchdata.batches import BatchSpec, draw_batch
from benchdata.images import read_images
from orchestrator.plan import Job
from orchestrator.scoring import JobInputs, Worker, cell_seed, exact_cuda, score_cell, seed_everything
from orchestrator.settings import load_settings
from spaces import make_space

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import actor_scaling, config, synchronize  # noqa: E402

DEFAULT_PROXIES = ["grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"]
FIDELITY_CELLS = 725


def per_proxy(settings, proxies: list[str], cells: int, device: torch.device) -> float:
    """Prints the per-proxy table; returns the median seconds per cell of all together."""
    torch.set_num_threads(1)
    space = make_space("nb301", settings.space_settings, settings.data_root)
    table = space.cells()
    ids = list(table.ids[:cells])
    x, y = read_images(settings.images["cifar10"], "cifar10")
    batches = {spec: tuple(t.to(device) for t in draw_batch(x, y, "cifar10", 0, spec)) for spec in settings.batch_specs()}
    floor_batch = draw_batch(x, y, "cifar10", 0, BatchSpec(64, True))
    job = JobInputs(Job("nb301", "cifar10", 0), 10, (3, 32, 32), batches)
    worker = Worker("bench", device, "localhost")
    runs = {p.name: p for p in settings.proxies}
    together = f"all {len(proxies)} together"
    floor = "floor fwd+bwd b64"
    times: dict[str, list[float]] = {name: [] for name in [*proxies, together, floor]}

    def timed(names: list[str], arch_id: str) -> float:
        start = time.perf_counter()
        rows = score_cell(space, job, arch_id, arch_id, [runs[n] for n in names], worker)
        failed = [r for r in rows if r["status"] == "error"]
        assert not failed, failed
        return time.perf_counter() - start

    if device.type == "cuda":
        exact_cuda()
        timed(proxies, ids[0])
    for arch_id in ids:
        for name in proxies:
            times[name].append(timed([name], arch_id))
        times[together].append(timed(proxies, arch_id))
        seed_everything(cell_seed("nb301", 0, arch_id))
        model = space.build(space.parse(arch_id), 10).to(device).train()
        bx, by = (t.to(device) for t in floor_batch)
        synchronize(device)
        start = time.perf_counter()
        F.cross_entropy(model(bx), by).backward()
        synchronize(device)
        times[floor].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "one torch thread"
    print(f"{cells} NB301 truth cells (C={space.channels}, {space.layers} cells), CIFAR-10, {where}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'proxy':<24} {'median s/cell':>13} {'cells/s':>8}")
    for name, med in medians.items():
        print(f"{name:<24} {med:>13.3f} {1 / med:>8.3f}")
    alone = sum(medians[n] for n in proxies)
    print(f"{'sum of each alone':<24} {alone:>13.3f} {1 / alone:>8.3f}")
    return medians[together]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--ray-cells", type=int, default=0, help="0 (the default) skips the Ray part")
    parser.add_argument("--proxies", nargs="+", default=None, help="default: every proxy of nb301_fidelity")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", "../shared/data"))
    args = parser.parse_args()
    overrides = ["+sweep=nb301_fidelity", f"data.root={args.data_root}", "cluster.dashboard=false"]
    if args.proxies:
        overrides.append(f"sweep.proxies=[{','.join(args.proxies)}]")
    settings = load_settings(config(overrides))
    proxies = [p.name for p in settings.proxies]
    together = per_proxy(settings, proxies, args.cells, torch.device(args.device))
    hours = FIDELITY_CELLS * together / 3600
    print(f"\n+sweep=nb301_fidelity with these proxies: {FIDELITY_CELLS} cells x {together:.1f} s = {hours:.1f} h "
          f"with one actor, about {hours / 2:.1f} h with two (one per core)")
    if args.ray_cells:
        actor_scaling(["+sweep=nb301_sample", f"data.root={args.data_root}", "cluster.dashboard=false",
                f"sweep.proxies=[{','.join(DEFAULT_PROXIES)}]", "sweep.shard_size=1"], args.ray_cells,
                      f"{args.ray_cells} random cells x six proxies", digits=4)


if __name__ == "__main__":
    sys.exit(main())
