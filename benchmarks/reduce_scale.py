"""Reducing nb101_all: seconds and peak memory of ``python -m orchestrator.reduce`` (issue 13).

    python benchmarks/reduce_scale.py --out /tmp/reduce_full --keep [--data-root ../shared/data]
    python benchmarks/reduce_scale.py --cells 20000            # quick: the first 20,000 cells
    python benchmarks/reduce_scale.py --out DIR --reduce-only  # time the reducer on a kept folder
    python benchmarks/reduce_scale.py --out DIR --reduce-only --code /path/to/old/checkout

Builds an output folder shaped like a finished nb101_all with 13 proxies: 423,624 cells x
13 proxies x 3 seeds = 16.5 M score rows in 25,419 shard files of 50 cells, written by
``ScoreStore.write_shard`` with the footer metadata the driver writes, beside the
``sweep.json`` and ``config.yaml`` that ``prepare`` writes for the same command (the way
``benchmarks/store_scan.py`` builds its folder). The 30,001 cells of the data root's
``nb101_sample_accuracy.parquet`` have truth; each proxy's score of a cell is its standardised
``val_acc_108`` times a proxy-specific strength plus seeded noise (so every correlation is
meaningful and differs between proxies), other cells get noise alone; ``params`` is rounded
to make ties. The reducer then runs in a child process (``python -m orchestrator.reduce``),
timed by wall clock, its peak memory read from ``resource.getrusage(RUSAGE_CHILDREN)``
(``ru_maxrss`` of the largest child: the reducer, as the generator runs in other processes
before it). ``--code`` runs the reducer of another checkout (the "before" figure).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_scan import _init  # noqa: E402  (the same writer state as the store benchmark)
from store_scan import _STATE  # noqa: E402

from orchestrator.config import compose_config  # noqa: E402
from orchestrator.plan import Shard  # noqa: E402
from orchestrator.settings import load_settings  # noqa: E402
from orchestrator.store import ScoreStore, versions  # noqa: E402
from orchestrator.sweep import prepare  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: 13 registered proxies and the strength of their (made-up) link to the truth
PROXIES = {"grad_norm": 0.25, "snip": 0.2, "grasp": 0.45, "fisher": 0.3, "plain": -0.1, "synflow": 0.5,
           "synflow_bn": 0.1, "l2_norm": 0.35, "jacob_cov": 0.45, "naswot": 0.55, "params": 0.6, "flops": 0.58,
           "zen": 0.4}


def _truth(data_root: str) -> dict[str, float]:
    table = pq.read_table(Path(data_root) / "nb101_sample_accuracy.parquet", columns=["hash", "val_acc_108"])
    acc = np.asarray(table["val_acc_108"].to_numpy(zero_copy_only=False), dtype=np.float64)
    z = (acc - acc.mean()) / acc.std()
    return dict(zip(table["hash"].to_pylist(), z.tolist()))


def _write(batch: Sequence[tuple[int, Shard]]) -> int:
    """Write the shards of ``batch`` that are not there yet, scores correlated with truth."""
    store: ScoreStore = _STATE["store"]
    truth: dict[str, float] = _STATE["truth"]
    written = 0
    for index, shard in batch:
        if store.shard_path(shard).exists():
            continue
        rng = np.random.default_rng(index)
        rows = []
        for cell, arch in zip(shard.ids, shard.archs):
            z = truth.get(cell)
            for proxy in shard.proxies:
                strength = PROXIES[proxy]
                score = (strength * z if z is not None else 0.0) + float(rng.normal()) * np.sqrt(1 - strength**2)
                if proxy == "params":
                    score = round(score, 1)  # ties, as a parameter count has them
                rows.append({"space": shard.job.space, "dataset": shard.job.dataset, "seed": shard.job.seed,
                             "arch_id": cell, "arch": arch, "proxy": proxy, "score": score, "status": "ok",
                             "error": None, "seconds": 0.5, "shared_seconds": 0.25,
                             "worker": "scorer-nb101_all-bench-cpu0", "device": "cpu", "host": "bench"})
        store.write_shard(shard, rows, _STATE["manifest"], _STATE["meta"])
        written += 1
    return written


def _init_with_truth(out_dir: str, manifest_json: str, meta: dict[str, str], data_root: str) -> None:
    _init(out_dir, manifest_json, meta)
    _STATE["truth"] = _truth(data_root)


def build(out: Path, data_root: str, cells: int | None, workers: int) -> None:
    """The folder as a finished sweep leaves it (only what is missing is written)."""
    overrides = ["+sweep=nb101_all", f"data.root={data_root}", f"out_dir={out}",
                 f"sweep.proxies=[{','.join(PROXIES)}]"]
    if cells:
        overrides += ["cells=range", "cells.start=0", f"cells.stop={cells}"]
    start = time.perf_counter()
    prepared = prepare(load_settings(compose_config(overrides)))  # writes sweep.json and config.yaml
    prepared.store.unlock()
    pending = prepared.pending
    print(f"plan: {len(prepared.plan.ids)} cells x {len(prepared.plan.jobs)} seeds x {len(PROXIES)} proxies, "
          f"{len(pending)} shards to write ({time.perf_counter() - start:.1f} s)", flush=True)
    meta = {"proxysweep.versions": json.dumps(versions()), "proxysweep.settings": prepared.manifest.to_json()}
    start = time.perf_counter()
    indexed = list(enumerate(pending))
    batches = [indexed[i:i + 200] for i in range(0, len(indexed), 200)]
    with ProcessPoolExecutor(workers, initializer=_init_with_truth,
                             initargs=(str(out), prepared.manifest.to_json(), meta, data_root)) as pool:
        written = sum(pool.map(_write, batches))
    if written:
        print(f"wrote {written} shard files in {time.perf_counter() - start:.0f} s", flush=True)


def reduce_timed(out: Path, code: Path, data_root: str) -> tuple[float, float, int]:
    """Seconds, peak RSS in MiB and exit status of ``python -m orchestrator.reduce`` (from ``code``)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "orchestrator.reduce", str(out), "--data-root", data_root],
                          cwd=code, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-4000:], sep="\n")
    else:
        print("\n".join(done.stdout.splitlines()[:20]))
    return seconds, peak, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=None, help="the first N cells only (default: all 423,624)")
    parser.add_argument("--out", type=Path, default=None, help="the output folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the output folder")
    parser.add_argument("--reduce-only", action="store_true", help="time the reducer on --out as it is")
    parser.add_argument("--build-only", action="store_true", help="write the folder, do not reduce")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose reducer runs (default: this one)")
    parser.add_argument("--workers", type=int, default=2, help="processes writing the shard files")
    parser.add_argument("--data-root", default=os.environ.get("PROXYSWEEP_DATA", str(REPO.parent / "shared" / "data")))
    args = parser.parse_args()
    data_root = str(Path(args.data_root).resolve())
    out = (args.out or Path(tempfile.mkdtemp(prefix="reduce_scale-"))).resolve()
    print(f"load average {os.getloadavg()[0]:.1f}; folder {out}", flush=True)
    try:
        if not args.reduce_only:
            build(out, data_root, args.cells, args.workers)
        if args.build_only:
            return 0
        seconds, peak, rc = reduce_timed(out, args.code.resolve(), data_root)
        print(f"python -m orchestrator.reduce ({args.code.resolve()}): {seconds:.1f} s, peak RSS {peak:.0f} MiB, "
              f"exit {rc}; load average {os.getloadavg()[0]:.1f}")
        return rc
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
