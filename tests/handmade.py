"""Hand-made output folders: shards of rows written through the store itself, with a
manifest naming the proxies, for tests of the reducer and the loaders."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from omegaconf import OmegaConf

from orchestrator.manifest import Manifest
from orchestrator.plan import Job, Shard
from orchestrator.store import ScoreStore

if TYPE_CHECKING:
    from orchestrator.sweep import Prepared


def row(job: Job, arch_id: str, proxy: str, score: float | None, status: str = "ok", arch: str = "x") -> dict:
    return {"space": job.space, "dataset": job.dataset, "seed": job.seed, "arch_id": arch_id, "arch": arch,
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


def store_pending(prepared: Prepared, count: int | None = None, score: float = 1.0) -> None:
    """Write the first ``count`` (None: every) shard ``prepared`` left to score, each row
    ``score``, as if a sweep had scored them (through the store, against the folder's
    manifest)."""
    store = ScoreStore(prepared.settings.out_dir)
    for shard in prepared.pending[:count]:
        rows = [row(shard.job, c, p, score, arch=a) for c, a in zip(shard.ids, shard.archs) for p in shard.proxies]
        store.write_shard(shard, rows, prepared.manifest, {})
