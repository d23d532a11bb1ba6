"""The reducer: scores dataset + ground truth -> metrics.parquet and report.md.

Run by the sweep when scoring ends, or by hand on any sweep output folder::

    python -m orchestrator.reduce outputs/nb201_smoke

It reads ``<out>/scores`` with ``pyarrow.dataset``, joins the space's ground truth (the
column named per dataset in ``space.<name>.truth``, never guessed), and computes every
metric of ``orchestrator.metrics`` per (space, dataset, proxy, seed), then their mean and
sample standard deviation over seeds; the configured ensembles of proxies
(``orchestrator.ensembles``) are computed from the same scores and reported beside them.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import OmegaConf

from orchestrator.ensembles import ensemble_seed_rows, over_seeds
from orchestrator.errors import SweepError
from orchestrator.files import atomic_path
from orchestrator.manifest import Manifest
from orchestrator.metrics import ranking_metrics
from orchestrator.report import write_report
from orchestrator.report_html import write_html_report
from orchestrator.settings import Settings, load_settings
from orchestrator.store import ScoreStore
from proxies import PROXIES
from spaces.data_root import MissingDataError, resolve_root

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.parquet"
REPORT_FILE = "report.md"

METRICS_SCHEMA = pa.schema(
    [
        ("space", pa.string()), ("dataset", pa.string()), ("truth", pa.string()),
        ("proxy", pa.string()),
        pa.field("seed", pa.int64(), nullable=True),
        ("aggregate", pa.string()),  # "seed" (one seed's value), "mean" or "std" over seeds
        ("metric", pa.string()), ("value", pa.float64()), ("n_cells", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Reduction:
    metrics: pa.Table
    metrics_path: Path
    report_path: Path


def _truth_arrays(space_obj: Any, dataset: str, column: str) -> dict[str, float]:
    truth = space_obj.ground_truth(dataset, column)
    ids = truth.column("arch_id").to_pylist()
    acc = truth.column("accuracy").to_numpy(zero_copy_only=False)
    return {i: a for i, a in zip(ids, acc) if np.isfinite(a)}


def compute_metrics(scores: pa.Table, settings: Settings, direction: Callable[[str], bool]) -> pa.Table:
    """Long table of metrics for every (space, dataset, proxy, seed) and over seeds;
    ``direction(proxy)`` says whether higher scores are better."""
    top_k, kendall_k = settings.metrics.top_k_percent, settings.metrics.kendall_top_percent
    # ok rows, and infinite scores: they rank (NASWOT's log-determinant of a singular
    # kernel is -inf, the worst score, as in the reference); nan has no rank and is left out
    usable = pc.or_(pc.equal(scores["status"], "ok"), pc.and_(pc.equal(scores["status"], "nonfinite"),
                                                             pc.is_inf(scores["score"])))
    ok = scores.filter(usable)

    def sign(proxy: str) -> float:
        return 1.0 if direction(proxy) else -1.0

    out: list[dict[str, Any]] = []
    for space, dataset in sorted(set(zip(scores["space"].to_pylist(), scores["dataset"].to_pylist()))):
        column = settings.truth_column(dataset)
        truth = _truth_arrays(settings.search_space, dataset, column)
        part = ok.filter(pc.and_(pc.equal(ok["space"], space), pc.equal(ok["dataset"], dataset)))
        for proxy in sorted(set(scores.filter(pc.equal(scores["space"], space))["proxy"].to_pylist())):
            per_seed: dict[str, list[float]] = {}
            counts = []
            by_proxy = part.filter(pc.equal(part["proxy"], proxy))
            for seed in sorted(set(by_proxy["seed"].to_pylist())):
                rows = by_proxy.filter(pc.equal(by_proxy["seed"], seed))
                pairs = [(s, truth[i]) for i, s in zip(rows["arch_id"].to_pylist(), rows["score"].to_pylist()) if i in truth]
                if len(pairs) < 2:
                    continue
                s, a = np.array(pairs, dtype=np.float64).T
                values = ranking_metrics(sign(proxy) * s, a, top_k, kendall_k)
                counts.append(len(pairs))
                for name, value in values.items():
                    out.append(dict(space=space, dataset=dataset, truth=column, proxy=proxy, seed=seed,
                                    aggregate="seed", metric=name, value=value, n_cells=len(pairs)))
                    per_seed.setdefault(name, []).append(value)
            for name, values in per_seed.items():
                arr = np.asarray(values, dtype=np.float64)
                std = float(np.std(arr, ddof=1)) if len(arr) > 1 else float("nan")
                for agg, value in (("mean", float(np.mean(arr))), ("std", std)):
                    out.append(dict(space=space, dataset=dataset, truth=column, proxy=proxy, seed=None,
                                    aggregate=agg, metric=name, value=value, n_cells=min(counts)))
        # ensembles (orchestrator/ensembles.py), from the same usable scores
        where = dict(space=space, dataset=dataset, truth=column)
        seed_rows = ensemble_seed_rows(part, truth, settings.ensembles, where, sign, top_k, kendall_k)
        out.extend(seed_rows + over_seeds(seed_rows))
    return pa.Table.from_pylist(out, schema=METRICS_SCHEMA)


def load_config(out_dir: Path) -> Settings:
    """The settings of the last run into ``out_dir`` (its ``config.yaml``)."""
    path = out_dir / CONFIG_FILE
    if not path.exists():
        raise SweepError(f"{path} not found: is {out_dir} the output folder of a proxysweep sweep?")
    return load_settings(OmegaConf.load(path), check_files=False)


def stored_scores(store: ScoreStore, quarantine: bool) -> tuple[Manifest, pa.Table]:
    """Every valid stored row of the folder and its manifest; SweepError if there is none.
    A file whose data turns out damaged beyond its footer is set aside (with
    ``quarantine``) and named, so that the sweep scores it again."""
    manifest = Manifest.read(store.out_dir)
    if manifest is None:
        raise SweepError(f"no sweep.json in {store.out_dir}: not the output folder of a proxysweep sweep")
    shards = store.scan(manifest, quarantine=quarantine).shards
    try:
        scores = store.read_scores(shards)
    except (OSError, ValueError):
        for shard in shards:
            try:
                pq.read_table(shard.path)
            except (OSError, ValueError) as exc:
                where = store.quarantine(shard.path) if quarantine else shard.path
                raise SweepError(f"{shard.path} is damaged ({' '.join(str(exc).split())[:200]}); set aside to "
                                 f"{where}: rerun the sweep to score its cells again") from None
        raise
    if scores.num_rows == 0:
        raise SweepError(f"no scores under {store.scores_dir}: nothing to reduce")
    return manifest, scores


def reduce_sweep(out_dir: Path, settings: Settings | None = None, store: ScoreStore | None = None) -> Reduction:
    """Compute and write ``metrics.parquet`` and ``report.md`` for everything stored in
    ``out_dir`` (every run's scores), with ``settings`` (default: its config.yaml).
    ``store``: the driver's, already locked; otherwise the folder is locked here."""
    out_dir = Path(out_dir)
    settings = settings or load_config(out_dir)
    own = store is None
    store = store or ScoreStore(out_dir)
    if own:
        store.lock()
    try:
        store.check_intact()  # the driver's folder may have been removed while it scored
        manifest, scores = stored_scores(store, quarantine=True)

        def direction(proxy: str) -> bool:
            return PROXIES[proxy].higher_is_better if proxy in PROXIES else manifest.higher_is_better(proxy)

        try:
            metrics = compute_metrics(scores, settings, direction)
        except (MissingDataError, ValueError) as exc:
            raise SweepError(str(exc)) from None
        metrics_path = out_dir / METRICS_FILE
        with atomic_path(metrics_path) as tmp:
            pq.write_table(metrics, tmp)
        report_path = write_report(out_dir / REPORT_FILE, settings, scores, metrics)
        write_html_report(out_dir, metrics, None, scores, settings, direction=direction)
    finally:
        if own:
            store.unlock()
    return Reduction(metrics, metrics_path, report_path)


def summary_rows(metrics: pa.Table, keys: Sequence[str] = ("kendall_tau", "spearman", "precision_top_10")) -> list[dict[str, Any]]:
    """Mean and std over seeds of a few metrics, one row per (space, dataset, proxy)."""
    table = metrics.filter(pc.is_in(metrics["aggregate"], pa.array(["mean", "std"])))
    rows: dict[tuple, dict[str, Any]] = {}
    for r in table.to_pylist():
        key = (r["space"], r["dataset"], r["proxy"])
        row = rows.setdefault(key, {"space": key[0], "dataset": key[1], "proxy": key[2], "n_cells": r["n_cells"]})
        if r["metric"] in keys:
            row[f"{r['metric']}_{r['aggregate']}"] = r["value"]
    return [rows[k] for k in sorted(rows)]


def format_summary(rows: list[dict[str, Any]], keys: Sequence[str] = ("kendall_tau", "spearman", "precision_top_10")) -> str:
    """A plain-text table of ``summary_rows`` for the terminal."""
    heads = ["space", "dataset", "proxy", "cells"] + [k.replace("precision_top_", "P@top") + "%" * k.startswith("precision") for k in keys]
    lines = []
    for r in rows:
        cells = [r["space"], r["dataset"], r["proxy"], str(r["n_cells"])]
        for k in keys:
            mean, std = r.get(f"{k}_mean", float("nan")), r.get(f"{k}_std", float("nan"))
            if not np.isfinite(mean):  # e.g. a vote ensemble, which has only a pairwise accuracy
                cells.append("–")
                continue
            cells.append(f"{mean:+.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else ""))
        lines.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(heads, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*heads), fmt.format(*("-" * w for w in widths))] + [fmt.format(*c) for c in lines])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.reduce", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="a sweep's output folder (holds scores/ and config.yaml)")
    parser.add_argument("--data-root", type=Path, default=None, help="where the truth tables are (default: the sweep's data.root)")
    args = parser.parse_args(argv)
    try:
        settings = load_config(args.out_dir)
        if args.data_root:
            settings = dataclasses.replace(settings, data_root=resolve_root(args.data_root))
        result = reduce_sweep(args.out_dir, settings)
    except SweepError as exc:
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary_rows(result.metrics)))
    print(f"\nmetrics: {result.metrics_path}\nreport:  {result.report_path}\nhtml:    {result.report_path.with_name('report.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
