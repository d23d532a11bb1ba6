"""Planning nb101_all: time and memory to check, plan and shard 423,624 cells x 3 seeds.

    python benchmarks/nb101_plan.py [--data-root ../shared/data] [Hydra overrides...]

Uses the cached cell table (enumerate it first, e.g. with a sweep or
``python -m spaces.nb101.enumeration``). Times ``load_settings`` + ``prepare`` (cell table
read, selection, the store's listing, the shards of every job's missing pairs, the images
read and the fixed batches drawn, sweep.json written) into a fresh output folder, then repeats the planning under tracemalloc for the peak of Python
allocations, and prints what the plan holds.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc

from orchestrator.config import compose_config
from orchestrator.settings import load_settings
from orchestrator.sweep import prepare


def plan_once(overrides: list[str]):
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config([*overrides, f"out_dir={out}"])
        start = time.perf_counter()
        prepared = prepare(load_settings(cfg))
        seconds = time.perf_counter() - start
        prepared.store.unlock()
    return prepared, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", "../shared/data"))
    args, extra = parser.parse_known_args()
    overrides = ["+sweep=nb101_all", f"data.root={args.data_root}", *extra]
    print(f"load average {os.getloadavg()[0]:.1f}")
    plan_once(overrides)  # warm: imports, file cache
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    prepared, seconds = plan_once(overrides)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    plan_once(overrides)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    plan = prepared.plan
    print(f"plan of nb101_all: {len(plan.ids)} cells x {len(plan.jobs)} jobs = {plan.total_cells} cell-jobs, "
          f"{len(prepared.pending)} shards of {plan.shard_size}")
    print(f"check + plan: {seconds:.2f} s")
    print(f"peak Python allocations while planning: {peak / 2**20:.0f} MiB "
          f"(process peak RSS {rss_before:.0f} MiB before, {rss_after:.0f} MiB after)")
    print(f"a shard holds {type(plan.ids[0]).__name__} ids and spec strings, e.g. "
          f"{prepared.pending[0].ids[0]} {prepared.pending[0].archs[0]}")


if __name__ == "__main__":
    sys.exit(main())
