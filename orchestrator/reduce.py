"""The reducer: scores dataset + ground truth -> metrics.parquet, comparisons.parquet, report.md.

Run by the sweep when scoring ends, or by hand on any sweep output folder::

    python -m orchestrator.reduce outputs/nb201_smoke

It streams ``<out>/scores`` one partition at a time: per (space, dataset), each seed's shard
files are read with ``pyarrow.dataset`` (only the columns needed, a few thousand files at a
time), the rows with truth and a usable score kept as one float vector per (proxy, seed)
over the cells with truth, and the rest folded into the report's status counts. The truth is
the column named per dataset in ``space.<name>.truth``, never guessed. Metrics
(``orchestrator.metrics``) per (space, dataset, proxy, seed), their mean, sample standard
deviation and pooled value over seeds, the configured ensembles (``orchestrator.ensembles``)
beside them, every value with its confidence interval (``orchestrator.resample``,
``orchestrator.stats``), and the paired comparisons of every two proxies
(``orchestrator.compare``). Memory grows with the cells with truth, not with the seeds,
datasets or cells without truth.
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

from orchestrator.compare import COMPARISONS_SCHEMA, compare_partition
from orchestrator.errors import SweepError
from orchestrator.files import atomic_path
from orchestrator.manifest import Manifest
from orchestrator.partition import METRICS_SCHEMA, Partition, partition_metrics, read_partitions
from orchestrator.report import StatusSummary, write_report
from orchestrator.report_html import HTML_FILE, write_html_report
from orchestrator.search_report import search_report_parts
from orchestrator.settings import Settings, load_settings
from orchestrator.store import ScoreStore, StoredShard
from proxies import PROXIES
from benchdata.root import MissingDataError, resolve_root

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.parquet"
COMPARISONS_FILE = "comparisons.parquet"
REPORT_FILE = "report.md"

__all__ = ["METRICS_SCHEMA", "COMPARISONS_SCHEMA", "Reduction", "reduce_sweep"]


@dataclass(frozen=True)
class Reduction:
    metrics: pa.Table
    metrics_path: Path
    report_path: Path
    comparisons: pa.Table = dataclasses.field(default_factory=COMPARISONS_SCHEMA.empty_table)
    comparisons_path: Path | None = None


def compute_metrics(shards: Sequence[StoredShard], settings: Settings, direction: Callable[[str], bool],
                    summary: StatusSummary | None = None) -> tuple[pa.Table, pa.Table, list[Partition]]:
    """metrics.parquet's and comparisons.parquet's tables, one (space, dataset) at a time,
    and the partitions (the oriented scores on the cells with truth, which report.html
    draws); ``direction(proxy)`` says whether higher scores are better; ``summary``
    collects the report's status counts on the way."""
    metric_parts, comparison_parts, partitions = [], [], []
    for partition in read_partitions(shards, settings, direction, summary):
        metric_rows, boots = partition_metrics(partition, settings)
        metric_parts.append(pa.Table.from_pylist(metric_rows, schema=METRICS_SCHEMA))
        comparison_parts.append(compare_partition(partition, settings, boots))
        partitions.append(partition)
    metrics = pa.concat_tables(metric_parts) if metric_parts else METRICS_SCHEMA.empty_table()
    comparisons = pa.concat_tables(comparison_parts) if comparison_parts else COMPARISONS_SCHEMA.empty_table()
    return metrics, comparisons, partitions


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
    manifest, shards = valid_shards(store, quarantine)
    try:
        return manifest, store.read_scores(shards)
    except (OSError, ValueError):
        raise _damaged(store, shards, quarantine) from None


def valid_shards(store: ScoreStore, quarantine: bool) -> tuple[Manifest, list[StoredShard]]:
    """The folder's manifest and valid shard files (by their footers); SweepError if none."""
    manifest = Manifest.read(store.out_dir)
    if manifest is None:
        raise SweepError(f"no sweep.json in {store.out_dir}: not the output folder of a proxysweep sweep")
    shards = store.scan(manifest, quarantine=quarantine).shards
    if not shards:
        raise SweepError(f"no scores under {store.scores_dir}: nothing to reduce")
    return manifest, shards


def _damaged(store: ScoreStore, shards: Sequence[StoredShard], quarantine: bool) -> SweepError:
    """The error for a file whose data is damaged beyond its footer (set aside)."""
    for shard in shards:
        try:
            pq.read_table(shard.path)
        except (OSError, ValueError) as exc:
            where = store.quarantine(shard.path) if quarantine else shard.path
            return SweepError(f"{shard.path} is damaged ({' '.join(str(exc).split())[:200]}); set aside to "
                              f"{where}: rerun the sweep to score its cells again")
    return SweepError("a shard file could not be read")


def _direction(manifest: Manifest) -> Callable[[str], bool]:
    def direction(proxy: str) -> bool:
        return PROXIES[proxy].higher_is_better if proxy in PROXIES else manifest.higher_is_better(proxy)
    return direction


def reduce_sweep(out_dir: Path, settings: Settings | None = None, store: ScoreStore | None = None) -> Reduction:
    """Compute and write ``metrics.parquet``, ``comparisons.parquet``, ``report.md`` and ``report.html`` for
    everything stored in ``out_dir`` (every run's scores), with ``settings`` (default: its
    config.yaml). ``store``: the driver's, already locked; otherwise the folder is locked here."""
    out_dir = Path(out_dir)
    settings = settings or load_config(out_dir)
    own = store is None
    store = store or ScoreStore(out_dir)
    if own:
        store.lock()
    try:
        store.check_intact()  # the driver's folder may have been removed while it scored
        manifest, shards = valid_shards(store, quarantine=True)
        summary = StatusSummary()
        try:
            metrics, comparisons, partitions = compute_metrics(shards, settings, _direction(manifest), summary)
        except (MissingDataError, ValueError) as exc:
            raise SweepError(str(exc)) from None
        except OSError:
            raise _damaged(store, shards, quarantine=True) from None
        metrics_path = out_dir / METRICS_FILE
        with atomic_path(metrics_path) as tmp:
            pq.write_table(metrics, tmp)
        comparisons_path = out_dir / COMPARISONS_FILE
        with atomic_path(comparisons_path) as tmp:
            pq.write_table(comparisons, tmp)
        searched = search_report_parts(out_dir)
        report_path = write_report(out_dir / REPORT_FILE, settings, summary, metrics, comparisons,
                                   searched[0] if searched else ())
        write_html_report(out_dir, settings, metrics, comparisons, partitions, summary,
                          [searched[1]] if searched else ())
    finally:
        if own:
            store.unlock()
    return Reduction(metrics, metrics_path, report_path, comparisons, comparisons_path)


def summary_rows(metrics: pa.Table, keys: Sequence[str] = ("kendall_tau", "spearman", "precision_top_10")) -> list[dict[str, Any]]:
    """Mean and std over seeds of a few metrics, one row per (space, dataset, truth, proxy)."""
    table = metrics.filter(pc.is_in(metrics["aggregate"], pa.array(["mean", "std"])))
    rows: dict[tuple, dict[str, Any]] = {}
    for r in table.to_pylist():
        key = (r["space"], r["dataset"], r["truth"], r["proxy"])
        row = rows.setdefault(key, {"space": key[0], "dataset": key[1], "truth": key[2], "proxy": key[3],
                                    "n_cells": r["n_cells"]})
        if r["metric"] in keys:
            row[f"{r['metric']}_{r['aggregate']}"] = r["value"]
    order = {view: i for i, view in enumerate(dict.fromkeys(k[:3] for k in rows))}  # main truth column first
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1], order[k[:3]], k[3]))]


def format_summary(rows: list[dict[str, Any]], keys: Sequence[str] = ("kendall_tau", "spearman", "precision_top_10")) -> str:
    """A plain-text table of ``summary_rows`` for the terminal."""
    heads = ["space", "dataset", "truth", "proxy", "cells"] + [k.replace("precision_top_", "P@top") + "%" * k.startswith("precision") for k in keys]
    lines = []
    for r in rows:
        cells = [r["space"], r["dataset"], r["truth"], r["proxy"], str(r["n_cells"])]
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
    print(f"\nmetrics: {result.metrics_path}\nreport:  {result.report_path}\nhtml:    {result.report_path.with_name(HTML_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
