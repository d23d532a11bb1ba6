"""Hand-made output folders: shards of rows written through the store itself, with a
manifest naming the proxies, for tests of the reducer and the loaders."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from orchestrator.manifest import Manifest
from orchestrator.plan import Job, Shard
from orchestrator.store import ScoreStore


def row(job: Job, arch_id: str, proxy: str, score: float | None, status: str = "ok") -> dict:
    return {"space": job.space, "dataset": job.dataset, "seed": job.seed, "arch_id": arch_id, "arch": "x",
            "proxy": proxy, "score": score, "status": status, "error": None if status == "ok" else "boom",
            "seconds": 1.0, "shared_seconds": 0.5, "worker": "w", "device": "cpu", "host": "h"}


def manifest(space: str, directions: dict[str, bool], datasets: Sequence[str] = ("cifar10",)) -> Manifest:
    return Manifest(
        space, {}, {p: {"params": {}, "higher_is_better": up, "uses_images": False} for p, up in directions.items()},
        {d: {"name": "hand", "sha256": "0"} for d in datasets},
    )


def write_folder(out_dir: Path, made: Manifest, rows: Sequence[dict], config: dict) -> None:
    """Write ``rows`` as one shard per (job, proxy) (every row of a shard one cell), the
    manifest and config.yaml, as a sweep would leave them."""
    made.write(out_dir)
    OmegaConf.save(OmegaConf.create(config), out_dir / "config.yaml")
    store = ScoreStore(out_dir)
    groups: dict[tuple[Job, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((Job(r["space"], r["dataset"], r["seed"]), r["proxy"]), []).append(r)
    for (job, proxy), part in groups.items():
        shard = Shard(job, tuple(r["arch_id"] for r in part), tuple(r["arch"] for r in part), (proxy,))
        store.write_shard(shard, part, made, {})
