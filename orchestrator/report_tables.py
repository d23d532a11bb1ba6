"""report.html's tables: metrics.parquet's values with their intervals, as sortable HTML.

Works with both layouts of metrics.parquet: with ``pooled`` rows carrying an interval
(``ci_low``, ``ci_high``, ``ci_level``, ``ci_method``) their value and interval are shown;
without them (or a column missing), the mean over seeds ± the standard deviation over seeds.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa

from orchestrator.report import fmt

#: metric families in the order of the ranking table's columns, and their headings
FAMILIES = (
    ("kendall_tau", "Kendall τ"), ("spearman", "Spearman ρ"), ("pearson", "Pearson r"),
    ("pairwise_accuracy", "pairwise acc."), ("precision_top_", "P@top {}%"), ("precision_bottom_", "P@bottom {}%"),
    ("best_rank_top_", "best rank, top {}%"), ("worst_rank_top_", "worst rank, top {}%"),
    ("kendall_top_", "τ in top {}%"),
)
OPTIONAL = ("ci_low", "ci_high", "ci_level", "ci_method", "n_boot", "note")


@dataclass(frozen=True)
class Stat:
    """One metric of one proxy: its value, interval (nan if none) or else sd over seeds."""

    value: float
    low: float = math.nan
    high: float = math.nan
    spread: float = math.nan
    n_cells: int | None = None

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


@dataclass
class DatasetStats:
    """Every proxy's metrics on one (space, dataset, truth column)."""

    truth: str
    stats: dict[tuple[str, str], Stat]  # (proxy, metric) -> Stat
    seeds: dict[str, set[int]]
    intervals: set[str]  # how the intervals were made, in words

    @property
    def proxies(self) -> list[str]:
        return sorted({p for p, _ in self.stats} | set(self.seeds))

    @property
    def metric_names(self) -> list[str]:
        return sorted({m for _, m in self.stats}, key=metric_order)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def metric_order(name: str) -> tuple[int, float, str]:
    for i, (prefix, _) in enumerate(FAMILIES):
        if name == prefix:
            return i, 0.0, name
        if prefix.endswith("_") and name.startswith(prefix):
            try:
                return i, float(name[len(prefix):]), name
            except ValueError:
                break
    return len(FAMILIES), 0.0, name


def heading(name: str) -> str:
    i, k, _ = metric_order(name)
    return FAMILIES[i][1].format(f"{k:g}") if i < len(FAMILIES) else name


def read_stats(metrics: pa.Table) -> dict[tuple[str, str, str], DatasetStats]:
    """metrics.parquet by (space, dataset, truth column): pooled value and interval where
    there is one, else the mean and sd over seeds."""
    rows = metrics.select([c for c in metrics.column_names if c in
                           ("space", "dataset", "truth", "proxy", "seed", "aggregate", "metric", "value", "n_cells",
                            *OPTIONAL)]).to_pylist()
    found: dict[tuple[str, str, str], DatasetStats] = {}
    by_key: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        view = (r["space"], r["dataset"], r["truth"])
        where = found.setdefault(view, DatasetStats(r["truth"], {}, {}, set()))
        if r["aggregate"] == "seed" and r["seed"] is not None:
            where.seeds.setdefault(r["proxy"], set()).add(int(r["seed"]))
        by_key.setdefault((view, r["proxy"], r["metric"]), {})[r["aggregate"]] = r
    for (view, proxy, metric), aggs in by_key.items():
        where = found[view]
        if "pooled" in aggs:
            r = aggs["pooled"]
            stat = Stat(_num(r["value"]), _num(r.get("ci_low")), _num(r.get("ci_high")), n_cells=r["n_cells"])
            if stat.has_interval:
                level, method = r.get("ci_level"), r.get("ci_method")
                where.intervals.add(" ".join(x for x in (f"{level:.0%}" if level else "", method or "") if x))
        elif "mean" in aggs:
            std = aggs.get("std", {}).get("value")
            stat = Stat(_num(aggs["mean"]["value"]), spread=_num(std), n_cells=aggs["mean"]["n_cells"])
        else:
            continue
        where.stats[(proxy, metric)] = stat
    return found


def slug(*parts: str) -> str:
    """An HTML id from names (anything but letters, digits, - and _ becomes -)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-")


def stat_cell(stat: Stat | None, integer: bool = False) -> str:
    """A <td> with the value, its interval (or ± sd) under it, and the value to sort by."""
    if stat is None or not math.isfinite(stat.value):
        return '<td class="num" data-sort="">–</td>'
    extra = ""
    if stat.has_interval:
        extra = f'<span class="ci">[{fmt(stat.low, integer)}, {fmt(stat.high, integer)}]</span>'
    elif math.isfinite(stat.spread):
        extra = f'<span class="ci">± {fmt(stat.spread, integer)}</span>'
    return f'<td class="num" data-sort="{stat.value!r}">{fmt(stat.value, integer)}{extra}</td>'


def table(table_id: str, heads: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    """A sortable table: ``heads`` are plain text, ``rows`` ready <td> cells; ``classes``
    per row (e.g. "pareto")."""
    head = "".join(f'<th scope="col" title="sort by {html.escape(h)}">{html.escape(h)}</th>' for h in heads)
    body = "".join(f'<tr class="{c}">' + "".join(r) + "</tr>" for r, c in zip(rows, list(classes) + [""] * len(rows)))
    return (f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def text_cell(text: str) -> str:
    return f'<td data-sort="{html.escape(text)}">{html.escape(text)}</td>'


def num_cell(value: float | None, integer: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return '<td class="num" data-sort="">–</td>'
    return f'<td class="num" data-sort="{float(value)!r}">{fmt(value, integer)}</td>'


def ranking_table(table_id: str, stats: DatasetStats, seconds: dict[str, float]) -> str:
    """One row per proxy or ensemble, one column per metric; rows by |Spearman| first."""
    names = stats.metric_names
    proxies = sorted(stats.proxies, key=lambda p: -abs(getattr(stats.stats.get((p, "spearman")), "value", 0.0) or 0.0))
    rows = []
    for p in proxies:
        cells = max((s.n_cells or 0 for (q, _), s in stats.stats.items() if q == p), default=0)
        rows.append([text_cell(p), num_cell(cells, True), num_cell(len(stats.seeds.get(p, ())), True),
                     num_cell(seconds.get(p))] +
                    [stat_cell(stats.stats.get((p, m)), m.startswith(("best_rank", "worst_rank"))) for m in names])
    return table(table_id, ["proxy", "cells", "seeds", "median s/cell"] + [heading(m) for m in names], rows)


def comparison_table(table_id: str, comparisons: pa.Table) -> str:
    """Pooled pairwise differences (proxy_a - proxy_b) with their intervals and p-values."""
    rows = []
    for r in comparisons.to_pylist():
        diff = Stat(_num(r.get("difference")), _num(r.get("ci_low")), _num(r.get("ci_high")))
        rows.append([text_cell(r["proxy_a"]), text_cell(r["proxy_b"]), text_cell(r["metric"]), stat_cell(diff),
                     num_cell(_num(r.get("p_value"))), num_cell(_num(r.get("p_holm"))),
                     num_cell(r.get("n_cells"), True)])
    return table(table_id, ["proxy a", "proxy b", "metric", "difference a − b", "p", "p (Holm)", "cells"], rows)
