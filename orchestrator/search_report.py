"""The search section of the report: per (method, proxy, dataset, variant, budget), the
mean +- std over runs of the found cell's accuracy in every report column, beside the
published figure (``searches.published``), and the best-so-far curves of searches that
query truth (report.html).
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from orchestrator.report_figures import search_curves
from orchestrator.report_html import HTML_FILE, Section, build_page
from orchestrator.report_tables import num_cell, table, text_cell
from orchestrator.files import atomic_write
from orchestrator.search_store import BASE_FIELDS, TAIL_FIELDS, read_results, result_files
from searches.published import published

if TYPE_CHECKING:
    from orchestrator.search_settings import SearchSettings
    from orchestrator.settings import Settings

#: the proxy column of a variant that read no proxy
BASELINE = "(no proxy)"
KEYS = ["method", "settings_key", "proxy", "dataset", "variant", "budget"]
_FIXED = {f.name for f in BASE_FIELDS + TAIL_FIELDS}


def truth_columns(results: pa.Table) -> list[str]:
    """The report's accuracy columns of a results table."""
    return [c for c in results.column_names if c not in _FIXED]


def baselines_once(frame: pd.DataFrame) -> pd.DataFrame:
    """A variant that read no proxy (oracle, random cell, plain evolution) drew the same
    cells in every proxy's run of a seed (``searches.base``): one baseline, kept once, with
    the proxy ``(no proxy)``."""
    frame = frame.copy()
    baseline = frame["proxy_evaluations"] == 0
    frame.loc[baseline, "proxy"] = BASELINE
    return frame[~baseline | ~frame.duplicated(KEYS + ["seed"])]


def summarize(results: pa.Table) -> pd.DataFrame:
    """One row per (method, settings, proxy, dataset, variant, budget), the variants that
    read no proxy once per (method, settings, dataset): runs, failed runs,
    mean and std (over runs, ddof 1) of each accuracy column, mean cost, and the published
    figure where there is one."""
    frame = baselines_once(results.to_pandas())
    columns = truth_columns(results)
    errors = frame[frame["status"] == "error"].groupby(["method", "settings_key", "proxy", "dataset"]).size()
    ok = frame[frame["status"] == "ok"]
    rows = []
    for key, group in ok.groupby(KEYS, sort=True, dropna=False):
        row: dict[str, Any] = dict(zip(KEYS, key))
        row["budget"] = int(row["budget"])
        row["runs"] = len(group)
        row["failed_runs"] = int(errors.get(tuple(key[:4]), 0))
        for c in columns:
            values = group[c].dropna().to_numpy(dtype=np.float64)
            row[f"{c}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{c}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        for c in ("proxy_evaluations", "truth_queries", "seconds"):
            row[c] = float(group[c].mean())
        hit = published(row["method"], row["variant"], row["budget"], row["proxy"], row["dataset"])
        for c in columns:
            mean, std = hit.values.get(c, (math.nan, None)) if hit else (math.nan, None)
            row[f"{c}_published"] = mean
            row[f"{c}_published_std"] = math.nan if std is None else std
        row["source"] = hit.source if hit else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.2f} ± {std:.2f}" if math.isfinite(std) else f"{mean:.2f}"


def markdown_lines(summary: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """report.md's search section."""
    lines = ["", "## Searches", "",
             "Accuracy (%) of the cell each search found, mean ± std over runs; published figures in brackets.", ""]
    heads = ["method", "proxy", "searched on", "variant", "budget", "runs", *columns, "proxy evals", "truth queries",
             "s/run"]
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in summary.to_dict("records"):
        cells = []
        for c in columns:
            mine = _pm(r[f"{c}_mean"], r[f"{c}_std"])
            pub = r[f"{c}_published"]
            cells.append(mine + (f" [{_pm(pub, r[f'{c}_published_std'])}]" if math.isfinite(pub) else ""))
        failed = f" ({r['failed_runs']} failed)" if r["failed_runs"] else ""
        lines.append("| " + " | ".join([r["method"], r["proxy"], r["dataset"], r["variant"], str(r["budget"]),
                                        f"{r['runs']}{failed}", *cells, f"{r['proxy_evaluations']:.0f}",
                                        f"{r['truth_queries']:.0f}", f"{r['seconds']:.2f}"]) + " |")
    sources = sorted({s for s in summary["source"] if s})
    if sources:
        lines += ["", "Published: " + "; ".join(sources) + "."]
    return lines


def _curves_figure(results: pa.Table) -> str:
    """The best-so-far curves of every (method, proxy, dataset, variant) that queried truth."""
    frame = baselines_once(results.to_pandas())
    frame = frame[(frame["status"] == "ok") & frame["curve"].map(lambda c: c is not None and len(c) > 0)]
    figures = []
    for (method, key, dataset), group in frame.groupby(["method", "settings_key", "dataset"], sort=True):
        curves = {}
        for (proxy, variant), runs in group.groupby(["proxy", "variant"], sort=True):
            length = min(len(c) for c in runs["curve"])
            stack = np.vstack([np.asarray(c[:length], dtype=np.float64) for c in runs["curve"]])
            curves[variant if proxy == BASELINE else f"{variant} ({proxy})"] = (stack.mean(0), np.percentile(stack, 25, 0), np.percentile(stack, 75, 0))
        data = base64.b64encode(search_curves(curves, "best queried accuracy (%)")).decode()
        title = f"{method} on {dataset}: best accuracy found against truth queries (mean; band: 25th–75th percentile)"
        figures.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{html.escape(title)} [{html.escape(key)}]</figcaption></figure>")
    return "".join(figures)


def html_section(summary: pd.DataFrame, results: pa.Table) -> Section:
    """report.html's search section: the sortable summary table and the curves."""
    columns = truth_columns(results)
    heads = ["method", "proxy", "searched on", "variant", "budget", "runs"]
    for c in columns:
        heads += [f"{c} mean", f"{c} std", f"{c} published"]
    heads += ["proxy evals", "truth queries", "s/run"]
    rows = []
    for r in summary.to_dict("records"):
        cells = [text_cell(r["method"]), text_cell(r["proxy"]), text_cell(r["dataset"]), text_cell(r["variant"]),
                 num_cell(r["budget"], True), num_cell(r["runs"], True)]
        for c in columns:
            cells += [num_cell(r[f"{c}_mean"]), num_cell(r[f"{c}_std"]), num_cell(r[f"{c}_published"])]
        cells += [num_cell(r["proxy_evaluations"]), num_cell(r["truth_queries"]), num_cell(r["seconds"])]
        rows.append(cells)
    sources = sorted({s for s in summary["source"] if s})
    note = ('<p class="note">Accuracy (%) of the cell each search found, mean and std over runs, beside the '
            "published figure. Click a column heading to sort."
            + (f" Published: {html.escape('; '.join(sources))}." if sources else "") + "</p>")
    return Section("search", "Searches", note + table("search-summary", heads, rows) + _curves_figure(results))


def search_report_parts(out_dir: Path) -> tuple[list[str], Section] | None:
    """The search section for report.md and report.html, if the folder holds searches."""
    results = read_results(result_files(out_dir))
    if results is None:
        return None
    summary = summarize(results)
    if summary.empty:
        return None
    return markdown_lines(summary, truth_columns(results)), html_section(summary, results)


def write_search_only_report(out_dir: Path, settings: Settings) -> None:
    """report.md and report.html of a folder that holds searches but no scores (a network
    search such as Zero-Cost-PT scores no cells of its own into the sweep)."""
    parts = search_report_parts(out_dir)
    if parts is None:
        return
    lines, section = parts
    atomic_write(Path(out_dir) / "report.md", "\n".join([f"# proxysweep report: {settings.name}", *lines]) + "\n")
    page = build_page(f"proxysweep report: {settings.name}", [(section.id, section.title, section.body)],
                      html.escape(f"Searches of {settings.space}; no proxy scores are stored in this folder."))
    atomic_write(Path(out_dir) / HTML_FILE, page)


def format_search_summary(summary: pd.DataFrame, search: SearchSettings) -> str:
    """The printed summary of this search's settings."""
    mine = summary[(summary["method"] == search.method) & (summary["settings_key"] == search.key)]
    columns = list(search.report_truth)
    return "\n".join(markdown_lines(mine, columns)[2:]) if not mine.empty else "(no finished runs)"
