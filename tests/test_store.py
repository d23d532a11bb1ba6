"""The shard files are the sweep's state: atomic writes, leftovers cleaned, one driver."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from orchestrator.errors import SweepError
from orchestrator.plan import Job, Shard
from orchestrator.store import SCHEMA, ScoreStore

JOB = Job("nb201", "cifar10", 3)


def rows(ids):
    return [{"space": "nb201", "dataset": "cifar10", "seed": 3, "arch_id": i, "arch": "a", "proxy": "p",
             "score": 1.0, "status": "ok", "error": None, "seconds": 0.1, "shared_seconds": 0.0,
             "worker": "w", "device": "cpu", "host": "h"} for i in ids]


def test_write_lists_and_reads_back(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    shard = Shard(JOB, 7, ["1", "2"], ["a", "a"])
    path = store.write_shard(shard, rows(["1", "2"]), {"proxysweep.fingerprint": "abc"})
    assert path == tmp_path / "scores/space=nb201/dataset=cifar10/seed=3/shard-00007.parquet"
    assert store.finished(JOB) == {7}
    meta = pq.read_schema(path).metadata
    assert meta[b"proxysweep.fingerprint"] == b"abc"
    assert json.loads(meta[b"proxysweep.shard"]) == {"job": JOB.partition, "index": 7, "cells": 2}
    assert pq.read_schema(path).field("seconds").metadata[b"doc"].startswith(b"what this proxy would cost alone")
    table = store.read_scores()
    assert table.schema.equals(SCHEMA) and table.num_rows == 2


def test_half_written_files_are_not_results_and_are_removed(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    folder = store.job_dir(JOB)
    folder.mkdir(parents=True)
    (folder / "shard-00001.parquet.tmp-0123").write_bytes(b"PAR1 half a file")
    assert store.finished(JOB) == set()
    assert store.remove_temporaries() == 1
    assert not list(folder.iterdir())


def test_only_one_driver_per_folder(tmp_path) -> None:
    first, second = ScoreStore(tmp_path), ScoreStore(tmp_path)
    first.lock()
    with pytest.raises(SweepError, match="another proxysweep driver"):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


def test_manifest_refuses_other_settings(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    store.check_manifest("one", {"proxies": {"a": {}}, "shard_size": 2})
    store.check_manifest("one", {"proxies": {"a": {}}, "shard_size": 2})
    with pytest.raises(SweepError, match="different: shard_size"):
        store.check_manifest("two", {"proxies": {"a": {}}, "shard_size": 3})
