"""A search's results on disk: one Parquet file per run, written atomically.

``<out_dir>/searches/<method>-<settings key>/`` holds ``search.json`` (the settings) and
``<proxy>-<dataset>-seed<N>.parquet`` per finished run, one row per variant the run
reports (``searches.base.Choice``) with the picked cell's truth in every report column.
Like the shard files of a sweep, these files are the search's state: a rerun runs only the
runs without a readable file, and results of other settings live in another folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.files import atomic_path, atomic_write
from orchestrator.search_settings import SEARCH_DIR, SearchSettings
from searches.base import Choice, SearchRun, SearchTable

SETTINGS_FILE = "search.json"
META_KEY = b"proxysweep.search"
#: the columns every result file has, before the report's truth columns
BASE_FIELDS = [
    pa.field("method", pa.string(), nullable=False),
    pa.field("settings_key", pa.string(), nullable=False),
    pa.field("proxy", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("variant", pa.string()),
    pa.field("budget", pa.int64()),
    pa.field("arch_id", pa.string()),
    pa.field("arch", pa.string()),
]
TAIL_FIELDS = [
    pa.field("proxy_evaluations", pa.int64()),
    pa.field("truth_queries", pa.int64()),
    pa.field("curve", pa.list_(pa.float64())),
    pa.field("seconds", pa.float64()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
]


def result_schema(report_truth: Sequence[str]) -> pa.Schema:
    return pa.schema([*BASE_FIELDS, *(pa.field(c, pa.float64()) for c in report_truth), *TAIL_FIELDS])


def run_path(search: SearchSettings, out_dir: Path, run: SearchRun) -> Path:
    return search.folder(out_dir) / f"{run.stem}.parquet"


def result_rows(search: SearchSettings, run: SearchRun, table: SearchTable, choices: Sequence[Choice] | None,
                seconds: float, error: str | None) -> list[dict[str, Any]]:
    """The rows of one run: one per choice, or one error row."""
    base = {"method": run.method, "settings_key": search.key, "proxy": run.proxy, "dataset": run.dataset,
            "seed": run.seed, "seconds": seconds}
    if choices is None:
        return [{**base, "variant": None, "budget": None, "arch_id": None, "arch": None,
                 **{c: None for c in search.report_truth}, "proxy_evaluations": None, "truth_queries": None,
                 "curve": None, "status": "error", "error": error}]
    rows = []
    for choice in choices:
        truth = {c: _finite_or_none(table.truth[c][choice.row]) for c in search.report_truth}
        rows.append({**base, "variant": choice.variant, "budget": choice.budget,
                     "arch_id": str(table.ids[choice.row]), "arch": str(table.archs[choice.row]), **truth,
                     "proxy_evaluations": choice.proxy_evaluations, "truth_queries": choice.truth_queries,
                     "curve": [float(v) for v in choice.curve], "status": "ok", "error": None})
    return rows


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if value == value else None


def write_run(path: Path, search: SearchSettings, rows: list[dict[str, Any]]) -> None:
    schema = result_schema(search.report_truth).with_metadata({META_KEY: json.dumps(search.describe())})
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_settings(search: SearchSettings, out_dir: Path) -> None:
    path = search.folder(out_dir) / SETTINGS_FILE
    text = json.dumps(search.describe(), indent=2, sort_keys=True, default=str) + "\n"
    if not path.exists() or path.read_text() != text:
        atomic_write(path, text)


def finished(path: Path, search: SearchSettings, retry_errors: bool) -> bool:
    """Whether ``path`` holds a complete result of this run (a damaged file is set aside
    and named, so the run is done again; an error result counts as finished unless
    ``retry_errors``)."""
    if not path.exists():
        return False
    try:
        table = pq.read_table(path)
        if not table.schema.remove_metadata().equals(result_schema(search.report_truth)) or table.num_rows == 0:
            raise ValueError("its columns are not those of a search result")
    except (OSError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.damaged")
        path.replace(aside)
        print(f"proxysweep: set aside {path} ({' '.join(str(exc).split())[:200]}) as {aside.name}; the run is "
              "done again", file=sys.stderr, flush=True)
        return False
    return not (retry_errors and "error" in table["status"].to_pylist())


def result_files(out_dir: Path) -> list[Path]:
    """Every run's file under ``out_dir/searches`` (temporaries and set-aside files excluded)."""
    root = Path(out_dir) / SEARCH_DIR
    return sorted(p for p in root.glob("*/*.parquet") if not p.name.startswith("."))


def read_results(files: Iterable[Path]) -> pa.Table | None:
    """The rows of ``files``, in one table (columns of every file; None if none)."""
    tables = [pq.read_table(p).replace_schema_metadata(None) for p in files]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")
