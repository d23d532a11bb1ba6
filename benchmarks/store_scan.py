"""Listing a sweep's state: how long resuming nb101_all takes to check its shard files.

    python benchmarks/store_scan.py [--cells N] [--out DIR] [--keep] [--data-root ../shared/data]

Builds an output folder shaped like a finished nb101_all (423,624 cells x 3 seeds, 50 cells
per shard: 25,419 shard files of 300 rows, six proxies), each file real Parquet written by
``ScoreStore.write_shard`` with the footer metadata the driver writes (versions, settings,
the shard's description), then measures:

- listing: finding the files under ``scores/``;
- ``ScoreStore.scan`` cold-ish (the files' pages evicted from the page cache with
  ``posix_fadvise(DONTNEED)``; directory entries and inodes stay cached) and warm;
- the resume's planning: ``load_settings`` + ``prepare`` of the same command on the full
  folder (lock, clean-up, scan, plan of the missing pairs: none), against the same on an
  empty folder;
- the peak of Python allocations of the scan (tracemalloc, a separate run) and the
  process's peak RSS.

``--cells N`` takes the first N cells (``cells=range``) for a quick run. Generating the
full folder takes minutes (two processes); ``--out DIR --keep`` keeps it, and a later run
with the same DIR writes only what is missing. The NB101 cell table is enumerated first if
it is not cached (about a minute).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from orchestrator.config import compose_config
from orchestrator.manifest import Manifest
from orchestrator.plan import Shard
from orchestrator.settings import load_settings
from orchestrator.store import ScoreStore, versions
from orchestrator.sweep import prepare

_STATE: dict = {}


def _init(out_dir: str, manifest_json: str, meta: dict[str, str]) -> None:
    data = json.loads(manifest_json)
    _STATE["store"] = ScoreStore(Path(out_dir))
    _STATE["manifest"] = Manifest(data["space"], data["space_settings"], data["proxies"], data["images"])
    _STATE["meta"] = meta


def _write(batch: Sequence[tuple[int, Shard]]) -> int:
    """Write the shards of ``batch`` that are not there yet, with made-up scores."""
    store: ScoreStore = _STATE["store"]
    written = 0
    for index, shard in batch:
        if store.shard_path(shard).exists():
            continue
        rng = np.random.default_rng(index)
        scores = rng.normal(size=len(shard.ids) * len(shard.proxies)).tolist()
        rows = [
            {"space": shard.job.space, "dataset": shard.job.dataset, "seed": shard.job.seed, "arch_id": cell,
             "arch": arch, "proxy": proxy, "score": scores[i * len(shard.proxies) + k], "status": "ok",
             "error": None, "seconds": 0.5, "shared_seconds": 0.25, "worker": "scorer-nb101_all-bench-cpu0",
             "device": "cpu", "host": "bench"}
            for i, (cell, arch) in enumerate(zip(shard.ids, shard.archs)) for k, proxy in enumerate(shard.proxies)
        ]
        store.write_shard(shard, rows, _STATE["manifest"], _STATE["meta"])
        written += 1
    return written


def footer_length(path: Path) -> int:
    """Bytes of a Parquet file's footer (its metadata), from the file's last 8 bytes."""
    with open(path, "rb") as fh:
        fh.seek(-8, os.SEEK_END)
        return int.from_bytes(fh.read(4), "little")


def evict(paths: Sequence[Path]) -> None:
    """Drop the files' pages from the page cache (this process's files only)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed_prepare(overrides: list[str]) -> tuple[float, int]:
    """Seconds of load_settings + prepare, and how many shards it found missing."""
    cfg = compose_config(overrides)
    start = time.perf_counter()
    prepared = prepare(load_settings(cfg))
    seconds = time.perf_counter() - start
    prepared.store.unlock()
    return seconds, len(prepared.pending)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=None, help="the first N cells only (default: all 423,624)")
    parser.add_argument("--out", type=Path, default=None, help="the output folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the output folder")
    parser.add_argument("--workers", type=int, default=2, help="processes writing the shard files")
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", "../shared/data"))
    args = parser.parse_args()

    out = (args.out or Path(tempfile.mkdtemp(prefix="store_scan-"))).resolve()
    overrides = ["+sweep=nb101_all", f"data.root={args.data_root}", f"out_dir={out}"]
    if args.cells:
        overrides += ["cells=range", "cells.start=0", f"cells.stop={args.cells}"]
    print(f"load average {os.getloadavg()[0]:.1f}; folder {out}")
    try:
        # the plan of the whole sweep, and the manifest a real run writes
        start = time.perf_counter()
        prepared = prepare(load_settings(compose_config(overrides)))
        prepared.store.unlock()
        pending = prepared.pending
        print(f"plan: {len(prepared.plan.ids)} cells x {len(prepared.plan.jobs)} seeds, {len(pending)} shards "
              f"missing ({time.perf_counter() - start:.1f} s: cell table, images, and any files already there)")
        meta = {"proxysweep.versions": json.dumps(versions()), "proxysweep.settings": prepared.manifest.to_json()}
        start = time.perf_counter()
        indexed = list(enumerate(pending))
        batches = [indexed[i:i + 200] for i in range(0, len(indexed), 200)]
        with ProcessPoolExecutor(args.workers, initializer=_init,
                                 initargs=(str(out), prepared.manifest.to_json(), meta)) as pool:
            written = sum(pool.map(_write, batches))
        if written:
            print(f"wrote {written} shard files in {time.perf_counter() - start:.0f} s")

        store = ScoreStore(out)
        manifest = Manifest.read(out)
        start = time.perf_counter()
        files = sorted(p for p in store.scores_dir.rglob("*") if p.is_file())
        listing = time.perf_counter() - start
        size = sum(p.stat().st_size for p in files)
        footers = [footer_length(p) for p in files[:200]]
        print(f"{len(files)} shard files, {size / 2**20:.0f} MiB in all, footer {int(np.median(footers))} bytes "
              f"(median), file {size // len(files)} bytes (mean)")
        print(f"listing the files (rglob + stat): {listing:.2f} s")

        evict(files)
        start = time.perf_counter()
        scan = store.scan(manifest, quarantine=False)
        cold = time.perf_counter() - start
        assert len(scan.shards) == len(files) and not scan.quarantined, scan.quarantined[:3]
        start = time.perf_counter()
        store.scan(manifest, quarantine=False)
        warm = time.perf_counter() - start
        print(f"ScoreStore.scan, cold-ish: {cold:.2f} s ({1e3 * cold / len(files):.2f} ms per file)")
        print(f"ScoreStore.scan, warm:     {warm:.2f} s ({1e3 * warm / len(files):.2f} ms per file)")

        resume, missing = timed_prepare(overrides)
        assert missing == 0, missing
        with tempfile.TemporaryDirectory() as empty:
            fresh, _ = timed_prepare([*overrides, f"out_dir={empty}"])
        print(f"resume: load_settings + prepare on the full folder: {resume:.2f} s (0 shards missing); "
              f"on an empty folder: {fresh:.2f} s")

        tracemalloc.start()
        store.scan(manifest, quarantine=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak Python allocations of a scan: {peak / 2**20:.0f} MiB; process peak RSS {rss:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
