"""Run a sweep end to end: check, plan, score on Ray, store, reduce.

Everything a user can get wrong is found by ``prepare`` before Ray starts. Scoring writes
one Parquet file per finished shard; a rerun of the same command scores only the shards
whose files are missing, so a killed or preempted sweep resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from omegaconf import DictConfig, OmegaConf

from orchestrator.cluster import Connection, connect, disconnect
from orchestrator.errors import SweepError
from orchestrator.monitoring import announce_dashboard
from orchestrator.plan import Plan, Shard, fingerprint, make_plan
from orchestrator.pool import ShardWork, Slot, cluster_has_gpus, node_affinity, plan_slots, run_pool
from orchestrator.progress import Progress
from orchestrator.reduce import CONFIG_FILE, Reduction, format_summary, reduce_sweep, summary_rows
from orchestrator.scorer import Scorer
from orchestrator.scoring import Row
from orchestrator.settings import Settings, load_settings
from orchestrator.store import ScoreStore, versions
from spaces import make_space
from spaces.batches import draw_batch
from spaces.images import read_images

log = logging.getLogger("proxysweep")


@dataclass
class Prepared:
    """A checked, planned sweep whose output folder this driver holds."""

    settings: Settings
    plan: Plan
    store: ScoreStore
    pending: list[Shard]
    fingerprint: str

    @property
    def done_cells(self) -> int:
        return self.plan.total_cells - sum(len(s) for s in self.pending)


@dataclass
class SweepResult:
    out_dir: Path
    scored_shards: int
    reduction: Reduction | None


def prepare(settings: Settings) -> Prepared:
    """Plan the sweep and take its output folder; SweepError on any bad input."""
    space = make_space(settings.space, settings.space_settings, settings.data_root)
    try:
        table = space.cells()
        truth_ids = cells_with_truth(space, settings) if settings.cells["select"] == "truth" else None
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    plan = make_plan(settings.space, settings.datasets, settings.seeds, table, settings.cells, settings.shard_size,
                     truth_ids)
    store = ScoreStore(settings.out_dir)
    store.lock()
    try:
        parts = settings.score_fingerprint()
        digest = fingerprint(parts, plan.ids)
        store.check_manifest(digest, parts)
        OmegaConf.save(OmegaConf.create(dict(settings.resolved)), settings.out_dir / CONFIG_FILE)
        store.remove_temporaries()
        pending = []
        for job in plan.jobs:
            finished = store.finished(job)
            if settings.retry_errors:
                finished -= store.with_errors(job)
            pending.extend(s for s in plan.shards(job) if s.index not in finished)
    except BaseException:
        store.unlock()
        raise
    return Prepared(settings, plan, store, pending, digest)


def cells_with_truth(space: Any, settings: Settings) -> set[str]:
    """Ids of the cells with a finite truth value for every dataset of the sweep."""
    ids: set[str] | None = None
    for dataset in settings.datasets:
        truth = space.ground_truth(dataset, settings.truth_column(dataset))
        acc = truth.column("accuracy").to_numpy(zero_copy_only=False)
        have = {i for i, a in zip(truth.column("arch_id").to_pylist(), acc) if np.isfinite(a)}
        ids = have if ids is None else ids & have
    return ids or set()


def job_batches(settings: Settings, pending: list[Shard]) -> dict[tuple[str, int], dict[str, Any]]:
    """Draw every fixed batch the pending shards need (driver side, before Ray starts)."""
    jobs = sorted({(s.job.dataset, s.job.seed) for s in pending})
    images: dict[str, tuple] = {}
    out: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        for dataset, seed in jobs:
            if dataset not in images:
                images[dataset] = read_images(settings.images[dataset], dataset)
            x, y = images[dataset]
            batches = {spec: draw_batch(x, y, dataset, seed, spec) for spec in settings.batch_specs()}
            out[(dataset, seed)] = {"input_shape": tuple(x.shape[1:]), "batches": batches}
    except (OSError, ValueError) as exc:  # a missing or unreadable file, a batch too large
        raise SweepError(f"{exc} (images of {dataset}: {settings.images[dataset]})") from None
    return out


def _failed_rows(settings: Settings):
    def rows(shard: Shard, pos: int, error: str) -> list[Row]:
        return [
            {"space": shard.job.space, "dataset": shard.job.dataset, "seed": shard.job.seed,
             "arch_id": shard.ids[pos], "arch": shard.archs[pos], "proxy": p.name, "score": None,
             "status": "error", "error": error, "seconds": 0.0, "shared_seconds": 0.0,
             "worker": "-", "device": "-", "host": "-"}
            for p in settings.proxies
        ]

    return rows


def _terminate_on_sigterm() -> None:
    """Slurm and Kubernetes stop jobs with SIGTERM: unwind so actors are released."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runs the driver in a thread)
        pass


def score(prepared: Prepared) -> int:
    """Score the pending shards on Ray; returns how many shards were written."""
    settings, store = prepared.settings, prepared.store
    if not prepared.pending:
        return 0
    inputs = job_batches(settings, prepared.pending)
    connection: Connection = connect(settings.cluster)
    written = 0
    try:
        if connection.dashboard_url:
            print(announce_dashboard(connection.dashboard_url), flush=True)
        use_gpus = settings.device == "cuda" or (settings.device == "auto" and cluster_has_gpus())
        if use_gpus and not cluster_has_gpus():
            raise SweepError("device=cuda, but the Ray cluster has no GPUs")
        slots = plan_slots(settings.name, use_gpus, settings.cluster.get("num_actors"))
        if not slots:
            raise SweepError("the Ray cluster offers no CPU or GPU for a scorer actor")
        jobs = {}
        for (dataset, seed), info in inputs.items():
            jobs[(dataset, seed)] = {
                "space": settings.space, "dataset": dataset, "seed": seed,
                "num_classes": make_space(settings.space, settings.space_settings).num_classes[dataset],
                "input_shape": info["input_shape"],
                "batches": [({"size": spec.size, "augment": spec.augment, "index": spec.index}, ray.put(batch))
                            for spec, batch in info["batches"].items()],
            }
        work = [ShardWork(s, jobs[(s.job.dataset, s.job.seed)]) for s in prepared.pending]
        remote_scorer = ray.remote(Scorer)
        proxies = [(p.name, dict(p.params)) for p in settings.proxies]

        def make_actor(slot: Slot) -> Any:
            name = slot.name if slot.restarts == 0 else f"{slot.name}-r{slot.restarts}"
            resources = {"num_gpus": 1, "num_cpus": 0} if slot.kind == "gpu" else {"num_cpus": 1}
            return remote_scorer.options(
                name=name, scheduling_strategy=node_affinity(slot), max_concurrency=1, **resources
            ).remote(name, settings.space, dict(settings.space_settings), proxies, settings.device, slot.threads)

        meta = {
            "proxysweep.fingerprint": prepared.fingerprint,
            "proxysweep.config": json.dumps(settings.resolved, default=str),
            "proxysweep.versions": json.dumps(versions()),
        }
        progress = Progress(prepared.plan.total_cells, already=prepared.done_cells)
        print(f"Scoring {len(prepared.pending)} shard(s) with {len(slots)} {'GPU' if use_gpus else 'CPU'} actor(s)", flush=True)

        def on_shard(item: ShardWork) -> None:
            nonlocal written
            rows = [row for cell_rows in item.rows for row in cell_rows]
            store.write_shard(item.shard, rows, meta)
            written += 1

        run_pool(
            work, slots, make_actor, on_cell=lambda _rows: progress.update(1), on_shard=on_shard,
            failed_rows=_failed_rows(settings), max_cell_attempts=settings.max_cell_attempts,
            max_actor_restarts=int(settings.cluster.get("max_actor_restarts", 3)),
        )
        progress.close()
    finally:
        disconnect(connection)
    return written


def run_sweep(cfg: DictConfig) -> SweepResult:
    """The whole sweep for a composed config (the body of ``python -m orchestrator``)."""
    _terminate_on_sigterm()
    settings = load_settings(cfg)
    prepared = prepare(settings)
    try:
        plan = prepared.plan
        print(
            f"Sweep {settings.name}: {len(plan.ids)} cells x {len(plan.jobs)} job(s) "
            f"({', '.join(settings.datasets)}; seeds {list(settings.seeds)}) x {len(settings.proxies)} proxies; "
            f"{len(prepared.pending)} of {len(plan.jobs) * plan.shards_per_job} shards to score -> {settings.out_dir}",
            flush=True,
        )
        written = score(prepared)
    finally:
        prepared.store.unlock()
    reduction = None
    if settings.reduce:
        reduction = reduce_sweep(settings.out_dir, settings.data_root, settings.resolved)
        print(format_summary(summary_rows(reduction.metrics)))
        print(f"\nscores:  {prepared.store.scores_dir}\nmetrics: {reduction.metrics_path}\nreport:  {reduction.report_path}", flush=True)
    return SweepResult(settings.out_dir, written, reduction)


def main_with_errors(cfg: DictConfig) -> int:
    """Run and turn a SweepError into one line on stderr and exit status 2."""
    try:
        run_sweep(cfg)
    except SweepError as exc:
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        return 2
    return 0
