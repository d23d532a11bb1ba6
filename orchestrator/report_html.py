"""report.html: the sweep's results as one self-contained page, beside report.md.

Everything is inside the file (figures as data: PNGs, the style, a few lines of script that
sort the tables), so it opens anywhere with no network. Sections, each with an id to link
to: ``ranking`` (metrics with intervals, sortable), ``scatter`` (proxy rank against
accuracy rank per proxy), ``heatmap`` (Spearman between proxies: which are redundant),
``frontier`` (|rho| against median seconds per cell, the Pareto front marked), ``topk``
(precision at top K% for K from 1% to 50%), ``failures`` (status and time per proxy) and
``search``, which later features fill through ``extra_sections``.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator import report_figures as figures
from orchestrator.files import atomic_write
from orchestrator.report import separability, view_of
from orchestrator.report_data import CURVE_PERCENTS, Scored, mean_curve, pareto_front, proxy_correlations, rank_pairs, scored_from
from orchestrator.report_tables import (DatasetStats, comparison_table, num_cell, ranking_table, read_stats, slug,
                                        stat_cell, table, text_cell)

if TYPE_CHECKING:
    from orchestrator.partition import Partition
    from orchestrator.report import StatusSummary
    from orchestrator.settings import Settings

HTML_FILE = "report.html"
#: at most this many points per proxy in a scatter (a seeded subsample beyond)
SCATTER_POINTS = 2000
#: the K (%) the top-K section's table lists
TABLE_PERCENTS = (1, 2, 5, 10, 20, 50)
FAILED_ROWS = 10


@dataclass(frozen=True)
class Section:
    """A section a later feature adds to the page (search simulations will): ``body`` is
    trusted HTML. One with id ``search`` takes the place of the empty search section."""

    id: str
    title: str
    body: str


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1320px;padding:0 20px 40px;color:#1b1f24}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #d0d7de;padding:8px 0;z-index:1}
nav a{margin-right:14px}
h2{border-bottom:2px solid #1f4e79;padding-bottom:3px;margin-top:32px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top}
th{background:#f0f3f6;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;white-space:nowrap}
.ci{display:block;color:#57606a;font-size:11px}
tr.pareto td:first-child{font-weight:bold;color:#d9480f}
figure{margin:10px 0 22px}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption,.note{color:#57606a;font-size:12.5px;max-width:1000px}
pre{white-space:pre-wrap;font-size:12px}
"""

#: sorts a table by the clicked column (numbers by data-sort, blanks last); marks each
#: table data-sortable="ready" once wired, which the browser test reads
SCRIPT = """
(function () {
  function key(row, col) {
    var cell = row.cells[col], raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent; }
    if (raw === "") { return null; }
    var num = Number(raw);
    return isNaN(num) ? raw.toLowerCase() : num;
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : a > b ? 1 : 0; }
    return typeof a === "number" ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending", body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var a = key(r, col), b = key(s, col);
          if (a === null || b === null) { return (a === null) - (b === null); }
          return up ? compare(a, b) : compare(b, a);
        });
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    table.setAttribute("data-sortable", "ready");
  });
})();
"""


def _figure(kind: str, name: str, data: bytes, alt: str, caption: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure class="plot" data-figure="{kind}" id="fig-{kind}-{name}">'
            f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _title(space: str, dataset: str, truth: str) -> str:
    return f"<h3>{html.escape(space)} / {html.escape(dataset)} (truth: <code>{html.escape(truth)}</code>)</h3>"


def _scatter(scored: Scored, name: str) -> str:
    seed = min(s for runs in scored.runs.values() for s in runs)
    panels = []
    for proxy, runs in scored.runs.items():
        cells, values = runs.get(seed) or runs[min(runs)]
        if len(cells) >= 2:
            panels.append((proxy, *rank_pairs(cells, values, scored.accuracy, SCATTER_POINTS)))
    if not panels:
        return '<p class="note">No proxy has two usable cells here.</p>'
    sub = any(n > SCATTER_POINTS for *_, n in panels)
    caption = (f"Per proxy, seed {seed} (a proxy without it: its lowest seed): each cell's rank by the proxy's "
               "oriented score against its rank by accuracy (1 = best, ties share their mean rank); ρ in the title is "
               "Spearman's over all the seed's cells. "
               + (f"Panels with more than {SCATTER_POINTS} cells show a random subsample of {SCATTER_POINTS} "
                  "(numpy default_rng(0)); the ranks and ρ are over all cells. " if sub else "")
               + "The dashed line is a perfect ranking.")
    return _figure("scatter", name, figures.scatter_grid(panels), "proxy rank against accuracy rank", html.escape(caption))


def _heatmap(scored: Scored, name: str) -> str:
    proxies, matrix, common = proxy_correlations(scored)
    if len(proxies) < 2 or not common:
        return '<p class="note">Needs at least two proxies with three or more cells in common.</p>'
    counts = ", ".join(f"seed {s}: {n}" for s, n in common.items())
    caption = (f"Spearman ρ between the proxies' oriented scores, per seed over the cells every proxy of the seed "
               f"scored (common cells: {counts}; a proxy with fewer than 3 usable cells in a seed is left out of "
               f"it), then averaged over the {len(common)} seed(s). "
               "Values near +1: the two proxies rank cells alike (one is redundant); near 0: they carry different "
               "information.")
    return _figure("heatmap", name, figures.heatmap(proxies, matrix), "correlation between proxies", html.escape(caption))


def _frontier(scored: Scored, stats: DatasetStats | None, name: str) -> str:
    rows = []
    for proxy in sorted(scored.runs):
        stat = stats.stats.get((proxy, "spearman")) if stats else None
        if stat is None or not math.isfinite(stat.value):
            continue
        low, high = (stat.low, stat.high) if stat.has_interval else (stat.value - stat.spread, stat.value + stat.spread)
        if stat.value < 0:  # |rho|: the interval flips with it
            low, high = -high, -low
        rows.append((proxy, scored.seconds.get(proxy, math.nan), abs(stat.value), low, high, stat))
    if not rows:
        return '<p class="note">No proxy has a Spearman ρ here.</p>'
    names = [r[0] for r in rows]
    seconds, rho, low, high = (np.array([r[i] for r in rows], dtype=np.float64) for i in (1, 2, 3, 4))
    front = pareto_front(rho, seconds)
    pooled = sorted(stats.intervals) if stats else []
    label = "pooled, interval" if pooled else "mean ± sd over seeds"
    how = f"pooled over seeds, {', '.join(pooled)} interval" if pooled else "mean over seeds ± sd over seeds"
    caption = (f"|Spearman ρ| ({how}) against the median seconds a proxy takes per cell alone (all its rows: every dataset and seed). Orange: the Pareto "
               "front, proxies no other proxy beats on both (at least as high |ρ| for at most the cost, better in one). "
               "Ensembles are left out: their cost is not one proxy's.")
    out = _figure("frontier", name, figures.frontier(names, seconds, rho, low, high, front, label), "cost-quality frontier",
                  html.escape(caption))
    cells = [[text_cell(n), num_cell(s), stat_cell(r[5]), text_cell("yes" if f else "")]
             for n, s, r, f in zip(names, seconds, rows, front)]
    return out + table(f"frontier-{name}", ["proxy", "median s/cell", "Spearman ρ", "Pareto front"], cells,
                       ["pareto" if f else "" for f in front])


def _topk(scored: Scored, name: str) -> str:
    curves = {p: mean_curve(runs, scored.accuracy) for p, runs in scored.runs.items()}
    curves = {p: c for p, c in curves.items() if np.isfinite(c).any()}
    if not curves:
        return '<p class="note">No proxy has two usable cells here.</p>'
    caption = ("Share of the proxy's top K% of cells that is in the truly best K%, for K = 1% … 50%, mean over seeds; "
               "top sets hold every cell tied at the cut-off, as in metrics.parquet. Dashed: a random choice.")
    out = _figure("topk", name, figures.topk_curves(CURVE_PERCENTS, curves), "top-K precision curves", html.escape(caption))
    at = [int(np.flatnonzero(CURVE_PERCENTS == k)[0]) for k in TABLE_PERCENTS]
    cells = [[text_cell(p)] + [num_cell(float(c[i])) for i in at] for p, c in curves.items()]
    return out + table(f"topk-{name}", ["proxy"] + [f"P@top {k}%" for k in TABLE_PERCENTS], cells)


def _failures(summary: StatusSummary) -> str:
    """Counts by status and the median seconds per cell of each proxy, then the first
    failures, as report.md lists them."""
    seconds = summary.median_seconds()
    rows = [[text_cell(proxy)] + [num_cell(summary.status[proxy][s], True) for s in ("ok", "nonfinite", "error")]
            + [num_cell(seconds.get(proxy))] for proxy in sorted(summary.status)]
    out = table("status", ["proxy", "ok", "nonfinite", "error", "median s/cell"], rows)
    if summary.failures:
        failed = [[text_cell(str(r[c])) for c in ("dataset", "seed", "arch_id", "proxy", "status")]
                  + [text_cell((r["error"] or "")[:300])] for r in summary.failures[:FAILED_ROWS]]
        out += f"<h3>Failed cells (first {len(failed)} of {summary.bad})</h3>" + table(
            "failed", ["dataset", "seed", "cell", "proxy", "status", "error"], failed)
    return out


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{html.escape(sid)}"><h2>{html.escape(title)}</h2>{body}</section>'


def build_page(title: str, sections: Sequence[tuple[str, str, str]], intro: str) -> str:
    """The page around (id, title, body) sections, with its style, navigation and script."""
    nav = "".join(f'<a href="#{html.escape(sid)}">{html.escape(t)}</a>' for sid, t, _ in sections)
    body = "".join(_section(*s) for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p class="note">{intro}</p><nav>{nav}</nav>{body}'
            f"<script>{SCRIPT}</script></body></html>\n")


def write_html_report(out_dir: Path, settings: Settings, metrics: pa.Table, comparisons: pa.Table | None,
                      partitions: Sequence[Partition], summary: StatusSummary,
                      extra_sections: Sequence[Section] = ()) -> Path:
    """Write ``<out_dir>/report.html`` (atomically) and return its path, from the reducer's
    tables, its partitions (the oriented scores on the cells with truth) and its status
    summary; ``extra_sections`` are appended, one with id ``search`` filling the search
    section."""
    stats = read_stats(metrics)
    seconds_per_cell = summary.median_seconds()
    parts: dict[str, list[str]] = {k: [] for k in ("scatter", "heatmap", "frontier", "topk")}
    seconds: dict[tuple[str, str, str], dict[str, float]] = {}
    for scored in (scored_from(p, seconds_per_cell) for p in partitions):
        where = (scored.space, scored.dataset, scored.truth)
        name = slug(*where)
        seconds[where] = scored.seconds
        head = _title(*where)
        if not scored.runs:
            for k in parts:
                parts[k].append(head + '<p class="note">No usable scores.</p>')
            continue
        parts["scatter"].append(head + _scatter(scored, name))
        parts["heatmap"].append(head + _heatmap(scored, name))
        parts["frontier"].append(head + _frontier(scored, stats.get(where), name))
        parts["topk"].append(head + _topk(scored, name))

    ranking = []
    for view, st in stats.items():  # metrics.parquet's order: the main truth column first
        ranking.append(_title(*view) + ranking_table(f"ranking-{slug(*view)}", st, seconds.get(view, {})))
        if comparisons is not None and comparisons.num_rows:
            mine = view_of(comparisons, view)
            if "seed" in mine.column_names:
                mine = mine.filter(pc.is_null(mine["seed"]))
            intro, verdicts = separability(metrics, comparisons, view)
            if intro:
                ranking.append(f'<p class="note">{html.escape(intro)}</p><ul class="verdicts">' +
                               "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>")
            if mine.num_rows:
                ranking.append("<h4>Pairwise differences, pooled over seeds</h4>" +
                               comparison_table(f"comparisons-{slug(*view)}", mine))
    how = sorted({i for st in stats.values() for i in st.intervals})
    ranking_note = (f"Pooled over seeds with {', '.join(how)} intervals in brackets." if how
                    else "Mean over seeds ± sample standard deviation over seeds.")
    ranking_intro = (f'<p class="note">{html.escape(ranking_note)} Scores of lower-is-better proxies are negated '
                     "first, so a positive correlation means the proxy ranks well. Click a column heading to sort.</p>")

    sections = [
        ("ranking", "Ranking", ranking_intro + "".join(ranking)),
        ("scatter", "Proxy rank against accuracy rank", "".join(parts["scatter"])),
        ("heatmap", "Correlation between proxies", "".join(parts["heatmap"])),
        ("frontier", "Cost and quality", "".join(parts["frontier"])),
        ("topk", "Top-K precision", "".join(parts["topk"])),
        ("failures", "Status and time per proxy", _failures(summary)),
    ]
    extra = list(extra_sections)
    if not any(s.id == "search" for s in extra):
        sections.append(("search", "Search simulations", '<p class="note">No search simulations in this sweep: '
                         "this section holds their results when a sweep runs them.</p>"))
    sections += [(s.id, s.title, s.body) for s in extra]
    intro = html.escape(f"Generated {dt.datetime.now().isoformat(timespec='seconds')} from {summary.rows} score "
                        f"rows of {settings.space}. The same numbers as report.md and metrics.parquet.")
    page = build_page(f"proxysweep report: {settings.name}", sections, intro)
    return atomic_write(Path(out_dir) / HTML_FILE, page)
