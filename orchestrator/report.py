"""The human report of a sweep: one Markdown file with tables per (space, dataset): the
mean ± std over seeds, the pooled values with their intervals (a wide view of
metrics.parquet), and which proxies are separable from the best one (comparisons.parquet)."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

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


def fmt(value: float | None, integer: bool = False) -> str:
    """A metric as both reports print it: 3 decimals (ranks: none), "–" when undefined."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.0f}" if integer else f"{value:.3f}"


def _cell(mean: float | None, std: float | None, integer: bool) -> str:
    text = fmt(mean, integer)
    if text != "–" and std is not None and np.isfinite(std):
        text += f" ± {fmt(std, integer)}"
    return text


View = tuple[str, str, str]  # (space, dataset, truth column): one table of the report


def view_of(table: pa.Table, view: View) -> pa.Table:
    """The rows of ``table`` (metrics or comparisons) computed against one view's truth."""
    space, dataset, truth = view
    return table.filter(pc.and_(pc.and_(pc.equal(table["space"], space), pc.equal(table["dataset"], dataset)),
                                pc.equal(table["truth"], truth)))


def _table(metrics: pa.Table, view: View) -> list[str]:
    part = view_of(metrics, view)
    values: dict[tuple[str, str, str], float] = {}
    cells: dict[str, int] = {}
    seeds: dict[str, set] = {}
    for r in part.to_pylist():
        if r["aggregate"] in ("mean", "std"):
            values[(r["proxy"], r["metric"], r["aggregate"])] = r["value"]
            cells[r["proxy"]] = r["n_cells"]
        elif r["aggregate"] == "seed":  # a vote ensemble has no kendall_tau: count the seeds of any metric
            seeds.setdefault(r["proxy"], set()).add(r["seed"])
    proxies = sorted(cells, key=lambda p: -abs(values.get((p, "spearman", "mean"), 0.0) or 0.0))
    lines = ["| proxy | cells | seeds | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|---:|---:|" + "---:|" * len(COLUMNS)]
    for p in proxies:
        row = [_cell(values.get((p, m, "mean")), values.get((p, m, "std")), m.startswith(("best", "worst")))
               for m, _ in COLUMNS]
        lines.append(f"| {p} | {cells[p]} | {len(seeds.get(p, ()))} | " + " | ".join(row) + " |")
    return lines


class StatusSummary:
    """What the report says about the score rows, gathered while the reducer streams them:
    rows per (proxy, status), every row's seconds (float32, for the median), the first
    failed rows."""

    def __init__(self, limit: int = 10) -> None:
        self.rows = 0
        self.status: dict[str, Counter] = {}
        self.seconds: dict[str, list[np.ndarray]] = {}
        self.failures: list[dict[str, Any]] = []
        self.bad = 0
        self.limit = limit

    def add(self, table: pa.Table, dataset: str, seed: int) -> None:
        """Count the rows of ``table`` (columns proxy, status, seconds, error, arch_id)."""
        self.rows += table.num_rows
        counts = table.group_by(["proxy", "status"]).aggregate([([], "count_all")])
        for proxy, status, count in zip(*(counts[c].to_pylist() for c in ("proxy", "status", "count_all"))):
            self.status.setdefault(proxy, Counter())[status] += count
        codes = pc.dictionary_encode(table["proxy"]).combine_chunks()
        index = codes.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[order], np.arange(len(codes.dictionary) + 1))
        seconds = table["seconds"].to_numpy().astype(np.float32)[order]
        for k, proxy in enumerate(codes.dictionary.to_pylist()):
            self.seconds.setdefault(proxy, []).append(seconds[bounds[k]:bounds[k + 1]])
        bad = table.filter(pc.not_equal(table["status"], "ok"))
        self.bad += bad.num_rows
        for r in bad.slice(0, max(0, self.limit - len(self.failures))).to_pylist():
            self.failures.append(dict(r, dataset=dataset, seed=seed))

    def proxies(self) -> set[str]:
        return set(self.status)

    def median_seconds(self) -> dict[str, float]:
        """Proxy -> median seconds per row, over every row of the sweep."""
        return {p: float(np.median(np.concatenate(parts))) if parts else float("nan")
                for p, parts in self.seconds.items()}


def _status_lines(summary: StatusSummary) -> list[str]:
    lines = ["| proxy | ok | nonfinite | error | median seconds (alone) |", "|---|---:|---:|---:|---:|"]
    seconds = summary.median_seconds()
    for proxy in sorted(summary.status):
        status = summary.status[proxy]
        secs = seconds.get(proxy, float("nan"))
        lines.append(f"| {proxy} | {status['ok']} | {status['nonfinite']} | {status['error']} | {secs:.3f} |")
    return lines


def _errors(summary: StatusSummary) -> list[str]:
    if not summary.failures:
        return []
    lines = ["", "## Failed cells (first {})".format(len(summary.failures)), "",
             "| dataset | seed | cell | proxy | status | error |", "|---|---:|---|---|---|---|"]
    for r in summary.failures:
        err = (r["error"] or "").replace("|", "\\|")[:200]
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['arch_id']} | {r['proxy']} | {r['status']} | {err} |")
    return lines


def _ensemble_lines(ensembles: Sequence[Ensemble], scored: set[str]) -> list[str]:
    if not ensembles:
        return []
    return ["", "## Ensembles", "",
            "Computed from the stored scores on the cells every member scored. *pairwise acc.*: "
            "share of ordered pairs of cells with different accuracies put in the right order "
            "(a proxy's tie counts as a vote for the second cell), the measure "
            "zero-cost-nas reports for its vote.", ""] + [f"- {describe(e, scored)}" for e in ensembles]


INTERVAL_COLUMNS = (
    ("kendall_tau", "Kendall τ"), ("spearman", "Spearman ρ"), ("pearson", "Pearson r"),
    ("precision_top_10", "P@top10%"), ("pairwise_accuracy", "pairwise acc."),
)


def _interval_table(metrics: pa.Table, view: View) -> list[str]:
    """The pooled rows of one view, one column per metric: value [low, high]."""
    part = view_of(metrics, view)
    part = part.filter(pc.equal(part["aggregate"], "pooled"))
    cells: dict[tuple[str, str], dict[str, Any]] = {(r["proxy"], r["metric"]): r for r in part.to_pylist()}
    proxies = sorted({p for p, _m in cells}, key=lambda p: -abs(_value(cells.get((p, "spearman")))))
    methods = sorted({r["ci_method"] for r in cells.values() if r["ci_method"]})
    lines = ["| proxy | " + " | ".join(h for _, h in INTERVAL_COLUMNS) + " |", "|---|" + "---:|" * len(INTERVAL_COLUMNS)]
    for p in proxies:
        row = []
        for m, _ in INTERVAL_COLUMNS:
            r = cells.get((p, m))
            if r is None or r["value"] is None or not np.isfinite(r["value"]):
                row.append("–")
            elif r["ci_low"] is None:
                row.append(f"{r['value']:.3f}")
            else:
                row.append(f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        lines.append(f"| {p} | " + " | ".join(row) + " |")
    level = next((r["ci_level"] for r in cells.values() if r["ci_level"]), None)
    if level:
        lines += ["", f"Pooled over seeds (the seeds' mean); {level:.0%} intervals by {', '.join(methods)}."]
    return lines


def _value(row: dict[str, Any] | None) -> float:
    if row is None or row["value"] is None or not np.isfinite(row["value"]):
        return 0.0
    return float(row["value"])


def separability(metrics: pa.Table, comparisons: pa.Table, view: View,
                 metric: str = "spearman") -> tuple[str, list[str]]:
    """Which proxies are separable from the best one (by pooled ``metric``), and which not:
    a sentence introducing the list, and one line per other proxy (report.md and
    report.html say the same)."""
    if comparisons.num_rows == 0:
        return "", []
    comp = [r for r in view_of(comparisons, view).to_pylist() if r["metric"] == metric and r.get("seed") is None]
    if not comp:
        return "", []
    names = {r["proxy_a"] for r in comp} | {r["proxy_b"] for r in comp}
    pooled = view_of(metrics, view)
    pooled = pooled.filter(pc.and_(pc.equal(pooled["aggregate"], "pooled"), pc.equal(pooled["metric"], metric)))
    value = {r["proxy"]: r["value"] for r in pooled.to_pylist() if r["proxy"] in names and r["value"] is not None
             and np.isfinite(r["value"])}
    if not value:
        return "", []
    best = max(value, key=lambda p: value[p])
    level = metrics["ci_level"].drop_null()[0].as_py() if metrics["ci_level"].null_count < metrics.num_rows else 0.95
    intro = (f"Paired comparisons with the best proxy by {metric} ({best}): difference "
             f"{best} − other [{level:.0%} interval], two-sided p, Holm-adjusted over the "
             f"{len(comp)} pairs ({comp[0]['method']}, on the cells both scored):")
    lines = []
    for r in sorted(comp, key=lambda r: -abs(r["difference"])):
        if best not in (r["proxy_a"], r["proxy_b"]):
            continue
        sign = 1 if r["proxy_a"] == best else -1
        other = r["proxy_b"] if sign == 1 else r["proxy_a"]
        d, lo, hi = (sign * r["difference"], *sorted((sign * r["ci_low"], sign * r["ci_high"])))
        verdict = "separable" if r["p_holm"] is not None and r["p_holm"] < 1 - level else "not separable"
        lines.append(f"{best} vs {other}: {d:+.2f} [{lo:.2f}, {hi:.2f}], p = {r['p_value']:.3g} "
                     f"(Holm {r['p_holm']:.3g}): {verdict}")
    return intro, lines


def views(metrics: pa.Table) -> list[View]:
    """Every (space, dataset, truth column) of metrics.parquet, in the space's truth order
    per dataset (the main column first)."""
    seen: dict[View, None] = {}
    for key in zip(metrics["space"].to_pylist(), metrics["dataset"].to_pylist(), metrics["truth"].to_pylist()):
        seen.setdefault(key, None)
    return sorted(seen, key=lambda v: (v[0], v[1]))  # stable: truth columns keep their order


def write_report(path: Path, settings: "Settings", summary: StatusSummary, metrics: pa.Table,
                 comparisons: pa.Table | None = None, extra_lines: Sequence[str] = ()) -> Path:
    """Write ``report.md`` (atomically) and return its path; ``extra_lines`` (the search
    section) go at the end."""
    lines = [
        f"# proxysweep report: {settings.name}",
        "",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} from {summary.rows} score rows. "
        "Values are mean ± sample standard deviation over seeds; scores of lower-is-better "
        "proxies are negated first, so positive correlations mean the proxy ranks well. "
        "Top-K sets include every cell tied at the cut-off; rank 1 is the most accurate cell.",
    ]
    comparisons = comparisons if comparisons is not None else pa.table({})
    for view in views(metrics):
        space, dataset, truth = view
        lines += ["", f"## {space} / {dataset} (truth: `{truth}`)", ""] + _table(metrics, view)
        lines += ["", "### Pooled over seeds, with intervals", ""] + _interval_table(metrics, view)
        intro, verdicts = separability(metrics, comparisons, view)
        if intro:
            lines += ["", intro, ""] + [f"- {v}" for v in verdicts]
    lines += _ensemble_lines(settings.ensembles, summary.proxies())
    lines += ["", "## Status and time per proxy", ""] + _status_lines(summary) + _errors(summary)
    lines += list(extra_lines)
    return atomic_write(path, "\n".join(lines) + "\n")
