"""The human report of a sweep: one Markdown file with a table per (space, dataset)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.ensembles import Ensemble, describe
from orchestrator.files import atomic_write

if TYPE_CHECKING:
    from orchestrator.settings import Settings

COLUMNS = (
    ("kendall_tau", "Kendall τ"),
    ("spearman", "Spearman ρ"),
    ("pearson", "Pearson r"),
    ("precision_top_10", "P@top10%"),
    ("precision_bottom_10", "P@bottom10%"),
    ("best_rank_top_10", "best rank in top10%"),
    ("worst_rank_top_10", "worst rank in top10%"),
    ("kendall_top_10", "Kendall τ in top10%"),
    ("pairwise_accuracy", "pairwise acc."),
)


def _cell(mean: float | None, std: float | None, integer: bool) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    text = f"{mean:.0f}" if integer else f"{mean:.3f}"
    if std is not None and np.isfinite(std):
        text += f" ± {std:.0f}" if integer else f" ± {std:.3f}"
    return text


def _table(metrics: pa.Table, space: str, dataset: str) -> list[str]:
    part = metrics.filter(pc.and_(pc.equal(metrics["space"], space), pc.equal(metrics["dataset"], dataset)))
    values: dict[tuple[str, str, str], float] = {}
    cells: dict[str, int] = {}
    seeds: dict[str, set] = {}
    for r in part.to_pylist():
        if r["aggregate"] in ("mean", "std"):
            values[(r["proxy"], r["metric"], r["aggregate"])] = r["value"]
            cells[r["proxy"]] = r["n_cells"]
        else:  # a vote ensemble has no kendall_tau: count the seeds of any metric
            seeds.setdefault(r["proxy"], set()).add(r["seed"])
    proxies = sorted(cells, key=lambda p: -abs(values.get((p, "spearman", "mean"), 0.0) or 0.0))
    lines = ["| proxy | cells | seeds | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|---:|---:|" + "---:|" * len(COLUMNS)]
    for p in proxies:
        row = [_cell(values.get((p, m, "mean")), values.get((p, m, "std")), m.startswith(("best", "worst")))
               for m, _ in COLUMNS]
        lines.append(f"| {p} | {cells[p]} | {len(seeds.get(p, ()))} | " + " | ".join(row) + " |")
    return lines


def _status_lines(scores: pa.Table) -> list[str]:
    lines = ["| proxy | ok | nonfinite | error | median seconds (alone) |", "|---|---:|---:|---:|---:|"]
    for proxy in sorted(set(scores["proxy"].to_pylist())):
        part = scores.filter(pc.equal(scores["proxy"], proxy))
        status = part["status"].to_pylist()
        secs = np.median(part["seconds"].to_numpy()) if part.num_rows else float("nan")
        lines.append(f"| {proxy} | {status.count('ok')} | {status.count('nonfinite')} | "
                     f"{status.count('error')} | {secs:.3f} |")
    return lines


def _errors(scores: pa.Table, limit: int = 10) -> list[str]:
    bad = scores.filter(pc.not_equal(scores["status"], "ok"))
    if bad.num_rows == 0:
        return []
    lines = ["", "## Failed cells (first {})".format(min(limit, bad.num_rows)), "",
             "| dataset | seed | cell | proxy | status | error |", "|---|---:|---|---|---|---|"]
    for r in bad.slice(0, limit).to_pylist():
        err = (r["error"] or "").replace("|", "\\|")[:200]
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['arch_id']} | {r['proxy']} | {r['status']} | {err} |")
    return lines


def _ensemble_lines(ensembles: Sequence[Ensemble], scores: pa.Table) -> list[str]:
    if not ensembles:
        return []
    scored = set(scores["proxy"].to_pylist())
    return ["", "## Ensembles", "",
            "Computed from the stored scores on the cells every member scored. *pairwise acc.*: "
            "share of ordered pairs of cells with different accuracies put in the right order "
            "(a proxy's tie counts as a vote for the second cell), the measure "
            "zero-cost-nas reports for its vote.", ""] + [f"- {describe(e, scored)}" for e in ensembles]


def write_report(path: Path, settings: "Settings", scores: pa.Table, metrics: pa.Table) -> Path:
    """Write ``report.md`` (atomically) and return its path."""
    lines = [
        f"# proxysweep report: {settings.name}",
        "",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} from {scores.num_rows} score rows. "
        "Values are mean ± sample standard deviation over seeds; scores of lower-is-better "
        "proxies are negated first, so positive correlations mean the proxy ranks well. "
        "Top-K sets include every cell tied at the cut-off; rank 1 is the most accurate cell.",
    ]
    pairs = sorted(set(zip(metrics["space"].to_pylist(), metrics["dataset"].to_pylist(), metrics["truth"].to_pylist())))
    for space, dataset, truth in pairs:
        lines += ["", f"## {space} / {dataset} (truth: `{truth}`)", ""] + _table(metrics, space, dataset)
    lines += _ensemble_lines(settings.ensembles, scores)
    lines += ["", "## Status and time per proxy", ""] + _status_lines(scores) + _errors(scores)
    return atomic_write(path, "\n".join(lines) + "\n")
