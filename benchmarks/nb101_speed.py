"""Speed: NB101 cells per second per proxy on this machine, and a real sweep with 1 actor.

Part 1 (one process, one torch thread): for a fixed sample of cells with truth, the median
seconds per cell of each proxy alone (model build included, as a sweep with only that
proxy pays it), of all requested proxies together through the shared passes, and of the
floor (one forward plus backward of the same model on the gradient proxies' batch).
Part 2: the same proxies as a real sweep on a local Ray with one CPU actor; cells per
second over the scoring phase (actor start-up included).

    python benchmarks/nb101_speed.py --cells 4 --ray-cells 4 [--batch 64] [--data-root ../shared/data]

``--batch`` sets the batch of grad_norm, snip and jacob_cov (default: nb101_all's 256);
naswot keeps its 128.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from orchestrator.cluster import ray_defaults
from orchestrator.plan import Job
from orchestrator.scoring import JobInputs, Worker, cell_seed, score_cell, seed_everything
from orchestrator.settings import load_settings
from orchestrator.sweep import prepare
from spaces import make_space
from benchdata.batches import BatchSpec, draw_batch
from benchdata.images import read_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import config, timed_scoring  # noqa: E402

PROXIES = ["grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"]


def per_proxy(settings, overrides: list[str], cells: int, batch: int) -> None:
    torch.set_num_threads(1)
    prepared = prepare(load_settings(config([*overrides, f"cells.n={cells}", "out_dir=" + tempfile.mkdtemp()])))
    prepared.store.unlock()
    ids, archs = list(prepared.plan.ids), list(prepared.plan.archs)
    space = make_space("nb101", settings.space_settings, settings.data_root)
    x, y = read_images(settings.images["cifar10"], "cifar10")
    batches = {spec: draw_batch(x, y, "cifar10", 0, spec) for spec in settings.batch_specs()}
    job = JobInputs(Job("nb101", "cifar10", 0), 10, (3, 32, 32), batches)
    worker = Worker("bench", torch.device("cpu"), "localhost")
    runs = {p.name: p for p in settings.proxies}
    floor = f"floor fwd+bwd b{batch}"
    times: dict[str, list[float]] = {name: [] for name in [*PROXIES, "all six together", floor]}
    for arch_id, arch in zip(ids, archs):
        for name in PROXIES:
            start = time.perf_counter()
            rows = score_cell(space, job, arch_id, arch, [runs[name]], worker)
            times[name].append(time.perf_counter() - start)
            assert rows[0]["status"] != "error", rows[0]
        start = time.perf_counter()
        score_cell(space, job, arch_id, arch, [runs[n] for n in PROXIES], worker)
        times["all six together"].append(time.perf_counter() - start)
        seed_everything(cell_seed("nb101", 0, arch_id))
        model = space.build(space.parse(arch), 10).train()
        bx, by = batches[BatchSpec(batch, True)]
        start = time.perf_counter()
        F.cross_entropy(model(bx), by).backward()
        times[floor].append(time.perf_counter() - start)
        print(f"  cell {arch_id}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), flush=True)
    alone = sum(statistics.median(times[n]) for n in PROXIES)
    print(f"Part 1: {cells} NB101 cells with truth, CIFAR-10, batch {batch} (naswot 128), one torch thread, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'proxy':<22} {'median s/cell':>13} {'cells/s':>8}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<22} {med:>13.2f} {1 / med:>8.3f}")
    print(f"{'sum of six alone':<22} {alone:>13.2f} {1 / alone:>8.3f}")


def one_actor(overrides: list[str], cells: int) -> None:
    import ray

    ray_defaults()
    ray.init(address="local", num_cpus=1, include_dashboard=False, namespace="proxysweep", log_to_driver=False)
    print(f"\nPart 2: {cells} cells x six proxies as a real sweep, local Ray, 1 CPU actor, "
          f"load average {os.getloadavg()[0]:.1f}")
    try:
        with tempfile.TemporaryDirectory() as out:
            cfg = config([*overrides, f"cells.n={cells}", "cells.seed=11", "sweep.shard_size=2",
                          "cluster.num_actors=1", f"out_dir={out}", "reduce=false"])
            wall = timed_scoring(cfg)
            print(f"1 actor: {cells} cells in {wall:.1f} s -> {cells / wall:.4f} cells/s ({wall / cells:.1f} s/cell)")
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--ray-cells", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", "../shared/data"))
    args = parser.parse_args()
    overrides = ["+sweep=nb101_sample", f"data.root={args.data_root}", "cluster.dashboard=false", "cells.seed=3",
                 "sweep.seeds=[0]", *(f"proxy.{p}.batch_size={args.batch}" for p in ("grad_norm", "snip", "jacob_cov"))]
    settings = load_settings(config(overrides))
    if args.cells:
        per_proxy(settings, overrides, args.cells, args.batch)
    if args.ray_cells:
        one_actor(overrides, args.ray_cells)


if __name__ == "__main__":
    sys.exit(main())
