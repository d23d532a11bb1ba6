"""Reading an NDS sweep file: its records, each record's network config and test error.

An NDS file (``DARTS.json``, ``ResNeXt-A_in.json``, ... from
https://dl.fbaipublicfiles.com/nds/data.zip) is a JSON list of records, one per trained
model; a few files hold ``{"top": [...], "mid": [...]}`` instead, read as ``top`` then
``mid`` (as BayesWatch/nas-without-training ``nasspace.py`` and NNI's NDS database
generator read them). A record is a dict; the fields read here (facebookresearch/nds
notebooks, NNI ``nni/nas/benchmark/nds/db_gen.py``):

- ``net``: the network config: for the cell spaces ``genotype`` (``normal``, ``reduce``:
  lists of ``[op, input]``; ``normal_concat``, ``reduce_concat``), ``width``, ``depth``
  (and ``aux``, ``drop_prob``, training-time settings not read); for ResNet, ResNeXt and
  Vanilla ``block_type``, ``ds``, ``ws``, ``ss``, ``bot_muls``, ``num_gs``.
- ``test_ep_top1``: top-1 test error (percent) after each epoch; ``min_test_top1``: the
  smallest of them.

A cell's id is its record's index in that order (0-based); its truth is the accuracy
``100 - error``: ``final_test_acc`` from the last epoch's error (``test_ep_top1[-1]``,
what nas-without-training and NNI's ``final_test_acc`` use) or ``best_test_acc`` from
``min_test_top1`` (the NDS paper's notebooks plot it). Anything of another shape is one
ValueError line naming the file, the record and the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

#: the truth columns of every NDS space, computed from each record
TRUTH_COLUMNS = ("final_test_acc", "best_test_acc")


@dataclass(frozen=True)
class Record:
    """What a space keeps of one record: its arch string and its two accuracies."""

    arch: str
    final_test_acc: float
    best_test_acc: float


def read_json(path: Path, how_to_obtain: str) -> list[Any]:
    """The records of an NDS file (``top`` then ``mid`` for the files that split them);
    ValueError in one line if it is not such a file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ValueError(f"{path} is not a readable JSON file ({type(exc).__name__}: {detail}); an NDS sweep "
                         f"file expected: {how_to_obtain}") from None
    if isinstance(data, dict) and isinstance(data.get("top"), list) and isinstance(data.get("mid"), list):
        data = data["top"] + data["mid"]
    if not isinstance(data, list):
        held = f"an object with keys {sorted(map(str, data))[:6]}" if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} is not an NDS sweep file: it must hold a JSON list of records (or "
                         f"{{\"top\": [...], \"mid\": [...]}}); it holds {held}")
    if not data:
        raise ValueError(f"{path} holds no records")
    return data


def read_records(path: Path, how_to_obtain: str, net_to_arch: Callable[[Mapping[str, Any]], str]) -> list[Record]:
    """Every record of ``path`` as a Record; ``net_to_arch`` turns a record's ``net`` into
    the space's arch string (ValueError for a config of the wrong shape)."""
    out = []
    for index, record in enumerate(read_json(path, how_to_obtain)):
        where = f"{path}: record {index}"
        if not isinstance(record, dict):
            raise ValueError(f"{where} is {type(record).__name__}, not an NDS record (a JSON object with net, "
                             "test_ep_top1, min_test_top1)")
        net = field(record, "net", where)
        if not isinstance(net, dict):
            raise ValueError(f"{where}: 'net' must be an object (the network config); got {type(net).__name__}")
        try:
            arch = net_to_arch(net)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        errors = field(record, "test_ep_top1", where)
        if not isinstance(errors, list) or not errors or not all(map(is_number, errors)):
            raise ValueError(f"{where}: 'test_ep_top1' must be a non-empty list of numbers (test error per epoch); "
                             f"got {short(errors)}")
        best = field(record, "min_test_top1", where)
        if not is_number(best):
            raise ValueError(f"{where}: 'min_test_top1' must be a number (the smallest test error); got {short(best)}")
        out.append(Record(arch, 100.0 - float(errors[-1]), 100.0 - float(best)))
    return out


def field(record: Mapping[str, Any], key: str, where: str) -> Any:
    """``record[key]``; ValueError naming the missing field and the fields there are."""
    if key not in record:
        held = ", ".join(sorted(map(str, record))[:12]) or "none"
        raise ValueError(f"{where} has no field {key!r} (its fields: {held})")
    return record[key]


def is_number(value: Any) -> bool:
    """An int or float, not a bool; NaN allowed (a diverged run's error): such a cell has
    no finite truth and is left out of the metrics."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value)


def short(value: Any) -> str:
    """A value for an error line, cut to 80 characters."""
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def int_list(value: Any, name: str) -> tuple[int, ...]:
    """A JSON list of integers (integral floats such as 16.0 accepted)."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be a non-empty list of integers; got {short(value)}")
    out = []
    for v in value:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{name} must be a list of integers; got {short(value)}")
        out.append(v)
    return tuple(out)


def number_list(value: Any, name: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or not all(is_number(v) and not math.isnan(v) for v in value):
        raise ValueError(f"{name} must be a non-empty list of numbers; got {short(value)}")
    return tuple(float(v) for v in value)


def empty(value: Any) -> bool:
    """Absent, null or an empty list: how the residual files leave out unused lists."""
    return value is None or value == []


def sequence_text(values: Sequence[Any]) -> str:
    return ",".join(str(v) for v in values)
