"""Speed: NB201 cells per second per proxy on this machine, and 1 vs 2 Ray actors.

Part 1 (one process, one torch thread): for a fixed sample of cells, the median seconds
per cell of each proxy alone (model build included, as a sweep with only that proxy pays
it), of all requested proxies together through the shared passes, and of the floor (one
forward plus backward of the same model on the same batch).
Part 2: the same sweep on a real local Ray with 1 and then 2 CPU actors; cells per second
over the scoring phase (actor start-up included).

    python benchmarks/nb201_speed.py --cells 12 --ray-cells 24 [--data-root ../shared/data]
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
from hydra import compose, initialize_config_dir

from orchestrator.cluster import ray_defaults
from orchestrator.scoring import JobInputs, Worker, cell_seed, score_cell, seed_everything
from orchestrator.settings import load_settings
from orchestrator.sweep import prepare, score
from spaces import make_space
from spaces.batches import BatchSpec, draw_batch
from spaces.images import read_images

CONF = Path(__file__).resolve().parents[1] / "conf"
PROXIES = ["grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"]


def config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=overrides)


def per_proxy(settings, cells: int) -> None:
    torch.set_num_threads(1)
    space = make_space("nb201", settings.space_settings, settings.data_root)
    table = space.cells()
    ids = [table.ids[i] for i in range(0, len(table), len(table) // cells)][:cells]
    archs = {table.ids[i]: table.archs[i] for i in range(len(table))}
    x, y = read_images(settings.images["cifar10"], "cifar10")
    batches = {spec: draw_batch(x, y, "cifar10", 0, spec) for spec in settings.batch_specs()}
    job = JobInputs("nb201", "cifar10", 0, 10, (3, 32, 32), batches)
    worker = Worker("bench", torch.device("cpu"), "localhost")
    params = {p.name: dict(p.params) for p in settings.proxies}
    times: dict[str, list[float]] = {name: [] for name in [*PROXIES, "all six together", "floor fwd+bwd b64"]}
    for arch_id in ids:
        for name in PROXIES:
            start = time.perf_counter()
            score_cell(space, job, arch_id, archs[arch_id], [(name, params[name])], worker)
            times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        score_cell(space, job, arch_id, archs[arch_id], [(n, params[n]) for n in PROXIES], worker)
        times["all six together"].append(time.perf_counter() - start)
        seed_everything(cell_seed("nb201", 0, arch_id))
        model = space.build(space.parse(archs[arch_id]), 10).train()
        bx, by = batches[BatchSpec(64, True)]
        start = time.perf_counter()
        F.cross_entropy(model(bx), by).backward()
        times["floor fwd+bwd b64"].append(time.perf_counter() - start)
    alone = sum(statistics.median(times[n]) for n in PROXIES)
    print(f"Part 1: {cells} NB201 cells, CIFAR-10, one torch thread, load average {os.getloadavg()[0]:.1f}")
    print(f"{'proxy':<20} {'median s/cell':>13} {'cells/s':>8}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<20} {med:>13.3f} {1 / med:>8.2f}")
    print(f"{'sum of six alone':<20} {alone:>13.3f} {1 / alone:>8.2f}")


def actors(settings_overrides: list[str], cells: int) -> None:
    import ray

    ray_defaults()
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="proxysweep", log_to_driver=False)
    print(f"\nPart 2: {cells} cells x six proxies on a local Ray (2 CPUs), load average {os.getloadavg()[0]:.1f}")
    try:
        for n in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                cfg = config([*settings_overrides, "cells=sample", f"cells.n={cells}", "cells.seed=11",
                              "sweep.seeds=[0]", "sweep.shard_size=2", f"cluster.num_actors={n}", f"out_dir={out}", "reduce=false"])
                prepared = prepare(load_settings(cfg))
                start = time.perf_counter()
                try:
                    score(prepared)
                finally:
                    prepared.store.unlock()
                wall = time.perf_counter() - start
                print(f"{n} actor(s): {cells} cells in {wall:.1f} s -> {cells / wall:.3f} cells/s")
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=12)
    parser.add_argument("--ray-cells", type=int, default=24)
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", "../shared/data"))
    args = parser.parse_args()
    overrides = ["+sweep=nb201_smoke", f"data.root={args.data_root}", "cluster.dashboard=false"]
    settings = load_settings(config(overrides))
    per_proxy(settings, args.cells)
    actors(overrides, args.ray_cells)


if __name__ == "__main__":
    sys.exit(main())
