"""``convert nb201 INPUT OUTPUT.parquet``: the NAS-Bench-201 truth table from the official files.

INPUT is ``NAS-Bench-201-v1_0-e61699.pth``, ``NAS-Bench-201-v1_1-096897.pth`` or the
``NATS-tss-v1_0-3ffb9-simple`` folder (``files.py`` reads them). The table has the
columns, types and meanings of ``nb201_accuracy.parquet`` (the shared data's README): one
row per index of ``meta_archs``, in index order.

Each value is what the reference API reports with ``get_more_info(index, dataset,
iepoch=None, hp=..., is_random=False)`` (NAS-Bench-201 ``api_201.py``, NATS-Bench
``api_topology.py``): ``ArchResults.get_metrics`` averages, over the trial seeds that
``dataset_seed[dataset]`` lists, the entry ``eval_acc1es["<split>@<epochs - 1>"]`` of each
trial (``iepoch=None`` is the last epoch, ``epochs - 1``). Accuracies stay in percent, as
stored. Columns:

| column                | hp  | dataset          | split key   | the API's name for it          |
|-----------------------|-----|------------------|-------------|--------------------------------|
| `cifar10_test`        | 200 | `cifar10`        | `ori-test`  | test-accuracy (train+valid)    |
| `cifar10_valid_val`   | 200 | `cifar10-valid`  | `x-valid`   | valid-accuracy                 |
| `cifar10_valid_test`  | 200 | `cifar10-valid`  | `ori-test`  | test-accuracy                  |
| `cifar100_test`       | 200 | `cifar100`       | `x-test`    | test-accuracy                  |
| `imagenet16_120_val`  | 200 | `ImageNet16-120` | `x-valid`   | valid-accuracy                 |
| `imagenet16_120_test` | 200 | `ImageNet16-120` | `x-test`    | test-accuracy                  |
| `cifar10_test_12ep`   | 12  | `cifar10`        | `ori-test`  | test-accuracy, 12-epoch run    |
| `params_m`            | 200 | `cifar10`        | `params`    | get_cost_info()["params"]      |

``params_m`` is the mean of the trials' ``params`` field, which the benchmark stores in
millions (``get_compute_costs`` averages it the same way; it is equal across seeds).
Checked on the three real cells NATS-Bench ships in its ``fake_torch_dir`` (indices 0, 11,
284): every column equals the shared ``nb201_accuracy.parquet`` bit for bit, except
``imagenet16_120_val``, which differs by 2e-8 to 4e-8 (the shared table's README names a
NAS-Bench-201 v1.0 source beside NATS-Bench; its per-trial floats may differ in the last
digits). The shared table's maxima of ``cifar10_test`` / ``cifar100_test`` /
``imagenet16_120_test`` are the published NB201 optimum 94.37 / 73.51 / 47.31 (test).

Absent data: a dataset that a cell's results do not list at all gives NaN in its columns
and is reported (NAS-Bench-201 v1.0 has 12-epoch results for ``cifar10-valid`` only, so
``cifar10_test_12ep`` is NaN from that file). Anything else missing or of the wrong type
(a key, a seed's trial, a split at the last epoch, a non-numeric accuracy) is an error
naming its place, and no table is written.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.data import DataError
from spaces.nb201.files import read_nats_folder, read_pth
from orchestrator.files import atomic_path
from orchestrator.progress import Progress
from spaces.nb201.space import parse_cell


@dataclass(frozen=True)
class Column:
    name: str
    hp: str
    dataset: str
    split: str | None  # None: the trial's ``params`` field


COLUMNS = (
    Column("cifar10_test", "200", "cifar10", "ori-test"),
    Column("cifar10_valid_val", "200", "cifar10-valid", "x-valid"),
    Column("cifar10_valid_test", "200", "cifar10-valid", "ori-test"),
    Column("cifar100_test", "200", "cifar100", "x-test"),
    Column("imagenet16_120_val", "200", "ImageNet16-120", "x-valid"),
    Column("imagenet16_120_test", "200", "ImageNet16-120", "x-test"),
    Column("cifar10_test_12ep", "12", "cifar10", "ori-test"),
    Column("params_m", "200", "cifar10", None),
)

#: the types of the shared ``nb201_accuracy.parquet``
SCHEMA = pa.schema([("arch_index", pa.int32()), ("arch_str", pa.large_string())]
                   + [(c.name, pa.float64()) for c in COLUMNS])


def _get(mapping: Any, key: Any, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise DataError(f"{where} must be a dict, got {type(mapping).__name__}")
    if key not in mapping:
        raise DataError(f"{where} has no {key!r}")
    return mapping[key]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise DataError(f"{where} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def column_value(results: Any, column: Column, where: str) -> float:
    """One column of one cell, from its ``ArchResults`` state dict of the column's hp:
    the mean over the listed seeds; NaN if the dataset is not listed at all."""
    seeds_by_dataset = _get(results, "dataset_seed", where)
    if not isinstance(seeds_by_dataset, dict):
        raise DataError(f"{where}['dataset_seed'] must be a dict")
    if column.dataset not in seeds_by_dataset:
        return math.nan
    seeds = seeds_by_dataset[column.dataset]
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise DataError(f"{where}['dataset_seed'][{column.dataset!r}] must be a non-empty list of seeds")
    trials = _get(results, "all_results", where)
    values = []
    for seed in seeds:
        trial = _get(trials, (column.dataset, seed), f"{where}['all_results']")
        at = f"{where}['all_results'][{(column.dataset, seed)!r}]"
        if column.split is None:
            values.append(_number(_get(trial, "params", at), f"{at}['params']"))
            continue
        epochs = _get(trial, "epochs", at)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise DataError(f"{at}['epochs'] must be a positive integer, got {epochs!r}")
        key = f"{column.split}@{int(epochs) - 1}"
        values.append(_number(_get(_get(trial, "eval_acc1es", at), key, f"{at}['eval_acc1es']"),
                              f"{at}['eval_acc1es'][{key!r}]"))
    return float(np.mean(values))  # as ArchResults.get_metrics(is_random=False)


def cell_row(index: int, arch: Any, by_hp: dict[str, Any], where: str) -> dict[str, Any]:
    """The table row of one cell; ``by_hp`` maps "12" and "200" to its ArchResults states."""
    if not isinstance(arch, str):
        raise DataError(f"{where}: meta_archs[{index}] must be a cell string, got {type(arch).__name__}")
    try:
        parse_cell(arch)
    except ValueError as exc:
        raise DataError(f"{where}: meta_archs[{index}]: {exc}") from None
    row: dict[str, Any] = {"arch_index": index, "arch_str": arch}
    for hp, results in by_hp.items():
        stored = _get(results, "arch_str", f"{where}: cell {index} hp={hp}")
        stored_index = _get(results, "arch_index", f"{where}: cell {index} hp={hp}")
        if stored_index != index:
            raise DataError(f"{where}: cell {index} hp={hp} holds the results of cell {stored_index!r}")
        if stored != arch:
            raise DataError(f"{where}: cell {index} hp={hp} holds the results of {stored!r}, "
                            f"but meta_archs[{index}] is {arch!r}")
    for column in COLUMNS:
        row[column.name] = column_value(by_hp[column.hp], column, f"{where}: cell {index} hp={column.hp}")
    return row


def read_cells(src: Path) -> tuple[list[Any], Iterator[tuple[int, dict[str, Any]]]]:
    if src.is_dir():
        return read_nats_folder(src)
    if src.is_file():
        return read_pth(src)
    raise DataError(f"no such file or folder {src} (give the NAS-Bench-201 .pth file or the "
                    "NATS-tss-v1_0-3ffb9-simple folder)")


def build_table(src: Path, progress: Callable[[int], Progress] | None = None) -> pa.Table:
    archs, cells = read_cells(src)
    if len({a for a in archs if isinstance(a, str)}) != len(archs):
        raise DataError(f"{src.name}: meta_archs lists a cell twice")
    meter = progress(len(archs)) if progress else None
    rows = []
    for index, by_hp in cells:
        rows.append(cell_row(index, archs[index], by_hp, src.name))
        if meter:
            meter.update()
    if meter:
        meter.close()
    if not rows:
        raise DataError(f"{src}: meta_archs is empty")
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def convert(src: Path, out: Path, progress: Callable[[int], Progress] | None = None) -> pa.Table:
    """Read ``src`` and write the table to ``out`` atomically; returns the table."""
    table = build_table(src, progress)
    meta = {b"proxysweep.source": src.name.encode(), b"proxysweep.converter": b"spaces.nb201.convert"}
    with atomic_path(out) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    return table


def missing_counts(table: pa.Table) -> dict[str, int]:
    """Columns with NaN values and how many."""
    out = {}
    for column in COLUMNS:
        n = int(np.isnan(table.column(column.name).to_numpy()).sum())
        if n:
            out[column.name] = n
    return out
