"""Convert the official NAS-Bench-101 tfrecords into the project's Parquet truth table.

    python -m spaces.nb101.convert convert nasbench_only108.tfrecord nb101_only108.parquet
    python -m spaces.nb101.convert convert nasbench_full.tfrecord nb101_full.parquet

Each record of the benchmark's files (one per cell, epoch budget and training repeat) is
the UTF-8 JSON list ``[module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]``
(as ``nasbench/api.py`` reads it): the adjacency as a row-major string of 0/1 characters,
the operations joined by commas, and ``raw_metrics`` a base64 ``ModelMetrics`` protocol
buffer (``nasbench/lib/model_metrics.proto``), decoded here with ``protowire``:

    ModelMetrics:   1 evaluation_data (repeated EvaluationData), 2 trainable_parameters
                    (int32), 3 total_time (double)
    EvaluationData: 1 current_epoch, 2 training_time, 3 train_accuracy,
                    4 validation_accuracy, 5 test_accuracy (doubles), 6 checkpoint_path

The evaluations are at the start, half-way and end of training; the last one is the
result of the run. The table has one row per cell: ``hash``, ``adjacency``, ``operations``,
``trainable_parameters`` and, for every epoch budget in the file (108 only, or 4/12/36/108
for the full file), the mean over the training repeats of the final validation and test
accuracy (``val_acc_E``, ``test_acc_E``, fractions) and training seconds
(``train_seconds_E``), and the number of repeats (``repeats_E``). A missing metric is NaN.
Every distinct cell's hash is recomputed from its graph and must match the file's.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.files import atomic_path
from spaces.nb101 import protowire as pw
from spaces.nb101.cell import op_labels
from spaces.nb101.enumeration import hash_many
from spaces.nb101.tfrecord import TFRecordError, read_records

NAN = float("nan")


@dataclass(frozen=True)
class Evaluation:
    """One ``EvaluationData`` message (NaN where a field is absent)."""

    epoch: float
    training_time: float
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float


@dataclass(frozen=True)
class NB101Record:
    """One training run of one cell at one epoch budget."""

    module_hash: str
    epochs: int
    adjacency: np.ndarray
    operations: list[str]
    trainable_parameters: int
    total_time: float
    evaluations: list[Evaluation]

    @property
    def final(self) -> Evaluation:
        """The evaluation at the end of training (the API's ``evaluation_data[2]``)."""
        return self.evaluations[-1]


def decode_evaluation(buf: bytes) -> Evaluation:
    values = {1: NAN, 2: NAN, 3: NAN, 4: NAN, 5: NAN}
    for number, wire, value in pw.iter_fields(buf):
        if number in values:
            values[number] = pw.as_double(wire, value)
    return Evaluation(values[1], values[2], values[3], values[4], values[5])


def decode_metrics(buf: bytes) -> tuple[int, float, list[Evaluation]]:
    """(trainable_parameters, total_time, evaluations) of a ``ModelMetrics`` message."""
    params, total, evaluations = -1, NAN, []
    for number, wire, value in pw.iter_fields(buf):
        if number == 1:
            evaluations.append(decode_evaluation(pw.as_bytes(wire, value)))
        elif number == 2:
            params = pw.as_int32(wire, value)
        elif number == 3:
            total = pw.as_double(wire, value)
    return params, total, evaluations


def decode_record(payload: bytes) -> NB101Record:
    """One record of the benchmark's tfrecord; ValueError if it is not one."""
    try:
        module_hash, epochs, raw_adjacency, raw_operations, raw_metrics = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValueError(f"not a JSON list [hash, epochs, adjacency, operations, metrics]: {exc}") from None
    dim = math.isqrt(len(raw_adjacency))
    if dim * dim != len(raw_adjacency) or set(raw_adjacency) - {"0", "1"}:
        raise ValueError(f"adjacency {raw_adjacency!r} is not a square 0/1 matrix")
    operations = raw_operations.split(",")
    if len(operations) != dim:
        raise ValueError(f"{len(operations)} operations for {dim} vertices")
    adjacency = np.frombuffer(raw_adjacency.encode(), dtype=np.uint8).reshape(dim, dim) - ord("0")
    try:
        params, total, evaluations = decode_metrics(base64.b64decode(raw_metrics, validate=True))
    except (ValueError, pw.ProtoDecodeError) as exc:
        raise ValueError(f"metrics are not a base64 ModelMetrics message: {exc}") from None
    if not evaluations:
        raise ValueError("the metrics hold no evaluation")
    return NB101Record(str(module_hash), int(epochs), adjacency.astype(np.int8), operations, params, total, evaluations)


class _Runs:
    """Per-epoch-budget columns of (cell row, final validation, test, training time)."""

    def __init__(self) -> None:
        self.rows = array("q")
        self.val = array("d")
        self.test = array("d")
        self.seconds = array("d")

    def add(self, row: int, final: Evaluation) -> None:
        self.rows.append(row)
        self.val.append(final.validation_accuracy)
        self.test.append(final.test_accuracy)
        self.seconds.append(final.training_time)

    def means(self, cells: int) -> dict[str, np.ndarray]:
        rows = np.frombuffer(self.rows, dtype=np.int64)
        count = np.bincount(rows, minlength=cells)
        out: dict[str, np.ndarray] = {}
        for name, values in (("val_acc", self.val), ("test_acc", self.test), ("train_seconds", self.seconds)):
            v = np.frombuffer(values, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.bincount(rows, weights=v, minlength=cells) / count
        out["repeats"] = count
        return out


@dataclass(frozen=True)
class Conversion:
    records: int
    cells: int
    epochs: tuple[int, ...]
    seconds: float


def convert(src: Path, out: Path, verify_hashes: bool = True) -> Conversion:
    """Read every record of ``src`` and write the per-cell truth table to ``out``."""
    start = time.perf_counter()
    src = Path(src)
    row_of: dict[str, int] = {}
    adjacency: list[np.ndarray] = []
    operations: list[list[str]] = []
    params: list[int] = []
    runs: dict[int, _Runs] = {}
    count = 0
    for index, payload in enumerate(read_records(src)):
        try:
            record = decode_record(payload)
        except ValueError as exc:
            raise TFRecordError(f"{src}: record {index}: not a NAS-Bench-101 record: {exc}") from None
        row = row_of.get(record.module_hash)
        if row is None:
            row = row_of[record.module_hash] = len(params)
            adjacency.append(record.adjacency)
            operations.append(record.operations)
            params.append(record.trainable_parameters)
        elif params[row] != record.trainable_parameters:
            raise TFRecordError(f"{src}: record {index}: cell {record.module_hash} has {record.trainable_parameters} "
                                f"parameters here and {params[row]} in an earlier record")
        runs.setdefault(record.epochs, _Runs()).add(row, record.final)
        count += 1
    if not params:
        raise TFRecordError(f"{src}: no records")
    hashes = list(row_of)
    if verify_hashes:
        check_hashes(src, hashes, adjacency, operations)
    columns: dict[str, pa.Array] = {
        "hash": pa.array(hashes, pa.string()),
        "adjacency": pa.array([a.tolist() for a in adjacency], pa.list_(pa.list_(pa.int8()))),
        "operations": pa.array(operations, pa.list_(pa.string())),
        "trainable_parameters": pa.array(params, pa.int64()),
    }
    for epochs in sorted(runs):
        for name, values in runs[epochs].means(len(params)).items():
            columns[f"{name}_{epochs}"] = pa.array(values)
    table = pa.table(columns).sort_by("hash")
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return Conversion(count, len(params), tuple(sorted(runs)), time.perf_counter() - start)


def check_hashes(src: Path, hashes: Sequence[str], adjacency: Sequence[np.ndarray], operations: Sequence[list[str]]) -> None:
    """TFRecordError naming the first cell whose graph does not hash to its stored hash."""
    by_size: dict[int, list[int]] = {}
    for i, a in enumerate(adjacency):
        by_size.setdefault(a.shape[0], []).append(i)
    for n, rows in by_size.items():
        try:
            labels = np.array([op_labels(operations[i]) for i in rows], dtype=np.int64)
        except ValueError as exc:
            raise TFRecordError(f"{src}: a cell has an operation outside the NAS-Bench-101 space: {exc}") from None
        computed = hash_many(np.stack([adjacency[i] for i in rows]), labels, processes=1)
        for i, h in zip(rows, computed):
            if h != hashes[i]:
                raise TFRecordError(f"{src}: cell {hashes[i]}: its graph hashes to {h}; the file is not a NAS-Bench-101 table")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spaces.nb101.convert", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="official tfrecord -> Parquet truth table")
    conv.add_argument("src", type=Path, help="nasbench_only108.tfrecord or nasbench_full.tfrecord")
    conv.add_argument("out", type=Path, help="Parquet file to write (put it under the data root)")
    conv.add_argument("--no-verify", action="store_true", help="skip recomputing every cell's hash")
    args = parser.parse_args(argv)
    if not args.src.is_file():
        print(f"proxysweep: error: no such file {args.src} (get the tfrecords from the links in the "
              "google-research/nasbench README)", file=sys.stderr)
        return 2
    try:
        done = convert(args.src, args.out, verify_hashes=not args.no_verify)
    except TFRecordError as exc:
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        return 2
    print(f"{done.records} records, {done.cells} cells, epoch budgets {list(done.epochs)} -> {args.out} "
          f"({done.seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
