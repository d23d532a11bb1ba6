"""Run a sweep end to end: check, plan, score on Ray, store, reduce.

Everything a user can get wrong is found by ``prepare`` before Ray starts. Scoring writes
one Parquet file per finished shard; a rerun of the same command scores only the (cell,
proxy) pairs that no valid file holds, so a killed or preempted sweep resumes where it
stopped, and a sweep extended by proxies, seeds, datasets or cells scores only what is new.
"""
from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow.parquet as pq
import ray
from omegaconf import DictConfig, OmegaConf

from orchestrator.cluster import Connection, connect, disconnect
from orchestrator.errors import SweepError
from orchestrator.files import atomic_write
from orchestrator.manifest import Manifest, StoredContent, image_digest, merge
from orchestrator.monitoring import announce_dashboard
from orchestrator.payload import JobPayload, ScorerSpec
from orchestrator.plan import Job, Plan, Shard, make_plan, space_cells
from orchestrator.plugins import shipped_paths
from orchestrator.placement import Slot, cluster_has_gpus, describe_slots, node_affinity, plan_slots
from orchestrator.pool import ShardWork, run_pool
from orchestrator.progress import Progress
from orchestrator.reduce import CONFIG_FILE, Reduction, format_summary, reduce_sweep, summary_rows
from orchestrator.report_html import HTML_FILE
from orchestrator.scorer import Scorer
from orchestrator.scoring import Row
from orchestrator.settings import Settings, load_settings
from orchestrator.store import ScoreStore, StoredShard, covered, versions
from proxies.context import require_batches
from benchdata.batches import draw_batch
from benchdata.images import read_images


@dataclass
class JobImages:
    """A job's fixed batches, drawn on the driver before Ray starts."""

    input_shape: tuple[int, ...]
    batches: dict[Any, Any]


@dataclass
class Prepared:
    """A checked, planned sweep whose output folder this driver holds."""

    settings: Settings
    plan: Plan
    store: ScoreStore
    manifest: Manifest
    pending: list[Shard]
    inputs: dict[tuple[str, int], JobImages]

    @property
    def pending_cells(self) -> int:
        return len({(s.job, c) for s in self.pending for c in s.ids})


@dataclass
class SweepResult:
    out_dir: Path
    scored_shards: int
    reduction: Reduction | None


def cells_with_truth(settings: Settings) -> set[str]:
    """Ids of the cells with a finite value in every truth column of every dataset of the
    sweep (each column is read, so a bad one stops the sweep here)."""
    ids: set[str] | None = None
    for dataset in settings.datasets:
        for column in settings.truth_columns(dataset):
            truth = settings.search_space.ground_truth(dataset, column)
            acc = truth.column("accuracy").to_numpy(zero_copy_only=False)
            have = {i for i, a in zip(truth.column("arch_id").to_pylist(), acc) if np.isfinite(a)}
            ids = have if ids is None else ids & have
    return ids or set()


def plan_sweep(settings: Settings) -> Plan:
    """The request: jobs x selected cells x proxies; SweepError on a bad selection."""
    try:
        # the truth columns are read for every selection: a bad one must stop the sweep
        # now, not the reducer after the scoring
        truth_ids = cells_with_truth(settings)
        if settings.cells.select == "truth" and not truth_ids:  # before the cell table, which may take a minute
            raise SweepError("no cell of the space has ground truth: every value of "
                             + ", ".join(f"{d}: {'/'.join(settings.truth_columns(d))}" for d in settings.datasets)
                             + " is missing or not finite")
        table, selection = space_cells(settings.search_space, settings.cells)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    return make_plan(settings.space, settings.datasets, settings.seeds, [p.name for p in settings.proxies],
                     table, selection, settings.shard_size, truth_ids if settings.cells.select == "truth" else None)


def job_images(settings: Settings, pending: list[Shard]) -> tuple[dict[tuple[str, int], JobImages], dict[str, dict]]:
    """Draw every fixed batch the pending shards need (driver side, before Ray starts), and
    the digest of each dataset's images read for them."""
    jobs = sorted({(s.job.dataset, s.job.seed) for s in pending})
    images: dict[str, tuple] = {}
    digests: dict[str, dict] = {}
    out: dict[tuple[str, int], JobImages] = {}
    path = None
    try:
        for dataset, seed in jobs:
            if dataset not in images:
                path = settings.images[dataset]
                images[dataset] = read_images(path, dataset)
                digests[dataset] = {"name": settings.image_names[dataset], "sha256": image_digest(*images[dataset])}
            x, y = images[dataset]
            for run in settings.proxies:  # before any batch is listed: a huge num_batches fails at once
                if run.proxy.uses_images:
                    require_batches(run.name, run.params, len(x), dataset)
            batches = {spec: draw_batch(x, y, dataset, seed, spec) for spec in settings.batch_specs()}
            out[(dataset, seed)] = JobImages(tuple(x.shape[1:]), batches)
    except (OSError, ValueError, EOFError) as exc:  # a missing or unreadable file, a batch too large
        detail = " ".join(str(exc).split())
        raise SweepError(f"{detail} (images of {dataset}: {path})") from None
    return out, digests


def _retry_shard(stored: StoredShard) -> Shard:
    """A stored shard to score again as it is (same cells, proxies and so file name)."""
    table = pq.read_table(stored.path, columns=["arch_id", "arch"])
    archs = dict(zip(table["arch_id"].to_pylist(), table["arch"].to_pylist()))
    return Shard(stored.job, stored.ids, tuple(archs[c] for c in stored.ids), stored.proxies)


def wanted_manifest(settings: Settings, digests: dict[str, dict]) -> Manifest:
    """The manifest entries this run's scores depend on."""
    proxies = {p.name: {"params": dict(p.params), "higher_is_better": p.proxy.higher_is_better,
                        "uses_images": p.proxy.uses_images} for p in settings.proxies}
    return Manifest(settings.space, settings.space_score_settings(), proxies, dict(digests))


def prepare(settings: Settings) -> Prepared:
    """Plan the sweep against what its folder holds, and take the folder; SweepError on
    any bad input, before Ray starts."""
    plan = plan_sweep(settings)
    store = ScoreStore(settings.out_dir)
    store.lock()
    try:
        store.remove_temporaries()
        if (store.scores_dir / f"space={settings.space}").exists():
            raise SweepError(f"{settings.out_dir} was written by an older proxysweep (scores/space=... folders); "
                             "use another out_dir")
        stored = Manifest.read(settings.out_dir)
        if stored is None and store.scores_dir.is_dir() and any(p.is_file() for p in store.scores_dir.rglob("*")):
            raise SweepError(f"{store.scores_dir} holds files but {settings.out_dir / 'sweep.json'} is missing, so "
                             "they cannot be checked: restore it, or use another out_dir")
        scan = store.scan(stored)
        for where, why in scan.quarantined:
            print(f"proxysweep: set aside {where} ({why}); its cells are scored again", file=sys.stderr, flush=True)
        # shards holding error rows are scored again as they are (the new file replaces the
        # old one: same cells, same proxies, same name); the missing pairs come in addition
        retry = store.with_errors([s for s in scan.shards if s.job in plan.jobs]) if settings.retry_errors else []
        pending = [_retry_shard(s) for s in retry]
        for job in plan.jobs:
            pending += plan.missing(job, covered(scan.shards, job))
        inputs, digests = job_images(settings, pending)
        manifest = merge(stored, wanted_manifest(settings, digests), StoredContent.of(scan.shards, stored),
                         settings.image_names)
        if manifest != stored:
            manifest.write(settings.out_dir)
        atomic_write(settings.out_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(dict(settings.resolved))))
    except OSError as exc:
        store.abandon()
        raise SweepError(f"cannot write to out_dir {settings.out_dir}: {exc.strerror or exc}") from None
    except BaseException:
        store.abandon()  # bad input leaves no trace: the lock file and the folders it needed go
        raise
    return Prepared(settings, plan, store, manifest, pending, inputs)


def _failed_rows(shard: Shard, pos: int, error: str) -> list[Row]:
    return [
        {"space": shard.job.space, "dataset": shard.job.dataset, "seed": shard.job.seed,
         "arch_id": shard.ids[pos], "arch": shard.archs[pos], "proxy": p, "score": None,
         "status": "error", "error": error, "seconds": 0.0, "shared_seconds": 0.0,
         "worker": "-", "device": "-", "host": "-"}
        for p in shard.proxies
    ]


def _terminate_on_sigterm() -> None:
    """Slurm and Kubernetes stop jobs with SIGTERM: unwind so actors are released."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runs the driver in a thread)
        pass


def _payloads(prepared: Prepared) -> dict[tuple[str, int], JobPayload]:
    settings = prepared.settings
    out = {}
    for (dataset, seed), images in prepared.inputs.items():
        out[(dataset, seed)] = JobPayload(
            Job(settings.space, dataset, seed), settings.search_space.num_classes[dataset], images.input_shape,
            tuple((spec, ray.put(batch)) for spec, batch in images.batches.items()),
        )
    return out


def score(prepared: Prepared) -> int:
    """Score the pending shards on Ray; returns how many shards were written."""
    settings, store = prepared.settings, prepared.store
    if not prepared.pending:
        return 0
    connection: Connection = connect(settings.cluster, shipped_paths(settings.plugins))
    written = 0
    try:
        if connection.dashboard_url:
            print(announce_dashboard(connection.dashboard_url), flush=True)
        use_gpus = settings.device == "cuda" or (settings.device == "auto" and cluster_has_gpus())
        if use_gpus and not cluster_has_gpus():
            raise SweepError("device=cuda, but the Ray cluster has no GPUs")
        slots = plan_slots(settings.name, use_gpus, settings.cluster)
        if not slots:
            raise SweepError("the Ray cluster offers no CPU or GPU for a scorer actor")
        payloads = _payloads(prepared)
        work = [ShardWork(s, payloads[(s.job.dataset, s.job.seed)]) for s in prepared.pending]
        remote_scorer = ray.remote(Scorer)

        def make_actor(slot: Slot) -> Any:
            name = slot.name if slot.restarts == 0 else f"{slot.name}-r{slot.restarts}"
            spec = ScorerSpec(name, settings.space, dict(settings.space_settings), settings.proxies,
                              settings.device, slot.threads, settings.plugins, slot.gpu_share, slot.build_ahead)
            return remote_scorer.options(
                name=name, scheduling_strategy=node_affinity(slot), max_concurrency=1, **slot.resources()
            ).remote(spec)

        meta = {"proxysweep.versions": json.dumps(versions()),
                "proxysweep.settings": prepared.manifest.to_json()}
        progress = Progress(prepared.plan.total_cells, already=prepared.plan.total_cells - prepared.pending_cells)
        print(f"Scoring {len(prepared.pending)} shard(s) with {describe_slots(slots)}", flush=True)

        def on_shard(item: ShardWork) -> None:
            nonlocal written
            store.check_intact()
            path = store.shard_path(item.shard)
            try:
                store.write_shard(item.shard, [row for cell_rows in item.rows for row in cell_rows],
                                  prepared.manifest, meta)
            except OSError as exc:
                store.check_intact()  # a folder removed meanwhile is the reason to give
                raise SweepError(f"cannot write {path}: {exc.strerror or exc}; the {written} shard(s) written "
                                 "this run are kept: fix that, then rerun the same command to resume") from None
            written += 1

        run_pool(
            work, slots, make_actor, on_cell=lambda _rows: progress.update(1), on_shard=on_shard,
            failed_rows=_failed_rows, max_cell_attempts=settings.max_cell_attempts,
            max_actor_restarts=settings.cluster.max_actor_restarts,
        )
        progress.close()
    finally:
        disconnect(connection)
    return written


def run_sweep(cfg: DictConfig, on_prepared: Callable[[Path], None] | None = None) -> SweepResult:
    """The whole sweep for a composed config (the body of ``python -m orchestrator``);
    ``on_prepared(out_dir)`` runs once the inputs are checked and the folder is taken."""
    return run_settings(load_settings(cfg), on_prepared)


def run_settings(settings: Settings, on_prepared: Callable[[Path], None] | None = None) -> SweepResult:
    """The whole sweep for settings parsed once (``run_sweep``, or a search that scores the
    cells it reads with its own settings, other cells and seeds)."""
    _terminate_on_sigterm()
    prepared = prepare(settings)
    reduction = None
    try:
        if on_prepared is not None:
            on_prepared(settings.out_dir)
        plan = prepared.plan
        print(
            f"Sweep {settings.name}: {len(plan.ids)} cells x {len(plan.jobs)} job(s) "
            f"({', '.join(settings.datasets)}; seeds {list(settings.seeds)}) x {len(settings.proxies)} proxies; "
            f"{sum(s.rows for s in prepared.pending)} of {plan.total_cells * len(settings.proxies)} scores to compute "
            f"-> {settings.out_dir}",
            flush=True,
        )
        written = score(prepared)
        if settings.reduce:
            reduction = reduce_sweep(settings.out_dir, settings, prepared.store)
    finally:
        prepared.store.unlock()
    if reduction is not None:
        print(format_summary(summary_rows(reduction.metrics)))
        print(f"\nscores:  {prepared.store.scores_dir}\nmetrics: {reduction.metrics_path}\nreport:  {reduction.report_path}"
              f"\nhtml:    {reduction.report_path.with_name(HTML_FILE)}", flush=True)
    return SweepResult(settings.out_dir, written, reduction)


def run_job(cfg: DictConfig, on_prepared: Callable[[Path], None] | None = None) -> Any:
    """The job a composed config asks for: a search (``+search=NAME``) or a sweep."""
    if cfg.get("search") is not None:
        from orchestrator.search import run_search

        return run_search(cfg, on_prepared)
    return run_sweep(cfg, on_prepared)


def main_with_errors(cfg: DictConfig, on_prepared: Callable[[Path], None] | None = None) -> int:
    """Run and turn a SweepError into one line on stderr and exit status 2."""
    try:
        run_job(cfg, on_prepared)
    except SweepError as exc:
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        return 2
    return 0
