"""A sweep's results in one line: ``load_scores`` and ``load_metrics`` return Arrow tables
(``.to_pandas()`` or ``polars.from_arrow`` for a data frame).

The scores folder also reads directly with any Parquet reader (``pandas.read_parquet``,
``pyarrow.parquet.read_table``, DuckDB ``read_parquet('.../scores/**/*.parquet')``,
Polars); these loaders add what a reader cannot know: only the shard files whose footers
check out, ``arch_id`` in the benchmark's own type (NB201: the integer index), and the
accuracy each row is ranked against.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator.errors import SweepError
from orchestrator.reduce import COMPARISONS_FILE, METRICS_FILE, load_config, stored_scores
from orchestrator.search_store import read_results, result_files
from orchestrator.store import ScoreStore


def load_scores(out_dir: str | Path, truth: bool = True) -> pa.Table:
    """Every stored score row of the sweep in ``out_dir`` (all its runs), with ``arch_id``
    cast to the space's id type and, with ``truth``, two more columns: ``truth`` (an
    accuracy column the sweep's config names for that dataset) and ``accuracy`` (its value
    for the cell; null where the benchmark has none). A dataset with several truth columns
    (``space.<name>.truth.<dataset>`` a list) has each score once per column: filter on
    ``truth`` to pick one."""
    out_dir = Path(out_dir)
    _manifest, scores = stored_scores(ScoreStore(out_dir), quarantine=False)
    settings = load_config(out_dir)
    id_type = settings.search_space.arch_id_type
    scores = scores.set_column(scores.schema.get_field_index("arch_id"), "arch_id",
                               pc.cast(scores["arch_id"], id_type))
    if not truth:
        return scores
    parts = []
    for dataset in sorted(set(scores["dataset"].to_pylist())):
        part = scores.filter(pc.equal(scores["dataset"], dataset))
        for column in settings.truth_columns(dataset):
            table = settings.search_space.ground_truth(dataset, column)
            table = table.set_column(0, "arch_id", pc.cast(table["arch_id"], id_type))
            joined = part.join(table, "arch_id", join_type="left outer")
            joined = joined.append_column("truth", pa.array([column] * joined.num_rows, pa.string()))
            parts.append(joined.select([*scores.column_names, "truth", "accuracy"]))
    return pa.concat_tables(parts).sort_by([("dataset", "ascending"), ("truth", "ascending"), ("seed", "ascending"),
                                            ("arch_id", "ascending"), ("proxy", "ascending")])


def load_metrics(out_dir: str | Path) -> pa.Table:
    """The sweep's ``metrics.parquet``: one row per (space, dataset, truth, proxy or
    ensemble, seed or aggregate, metric), with its interval (ci_low, ci_high, ci_level,
    ci_method, n_boot) and note. Wide, pooled over seeds, with the intervals:
    ``t.to_pandas().query("aggregate == 'pooled'").pivot(index=["dataset", "truth", "proxy"],
    columns="metric", values=["value", "ci_low", "ci_high"])``."""
    path = Path(out_dir) / METRICS_FILE
    if not path.exists():
        raise SweepError(f"{path} not found: reduce the sweep first (python -m orchestrator.reduce {out_dir})")
    return pq.read_table(path)


def load_comparisons(out_dir: str | Path) -> pa.Table:
    """The sweep's ``comparisons.parquet``: one row per (space, dataset, metric, pair of
    proxies): difference, interval, p-value and Holm-adjusted p-value."""
    path = Path(out_dir) / COMPARISONS_FILE
    if not path.exists():
        raise SweepError(f"{path} not found: reduce the sweep first (python -m orchestrator.reduce {out_dir})")
    return pq.read_table(path)


def load_searches(out_dir: str | Path) -> pa.Table:
    """Every search run's result in ``out_dir`` (``python -m orchestrator +search=NAME``):
    one row per (method, settings, proxy, dataset, seed, variant, budget) with the found
    cell (``arch_id``, ``arch``), its accuracy in each report column, what the run cost
    (proxy evaluations, truth queries, seconds) and, for searches that query truth, the
    best-so-far ``curve``. Mean over runs: ``t.to_pandas().groupby(["method", "proxy",
    "variant", "budget"])["cifar10_test"].agg(["mean", "std"])``."""
    table = read_results(result_files(Path(out_dir)))
    if table is None:
        raise SweepError(f"no search results under {Path(out_dir) / 'searches'}: run one with "
                         "python -m orchestrator +search=NAME out_dir=...")
    return table
