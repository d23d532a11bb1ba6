"""The shard files are the sweep's state: atomic writes, footers checked, damaged files set
aside, one driver, a manifest that refuses what would mix scores."""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.errors import SweepError
from orchestrator.manifest import Manifest, StoredContent, merge
from orchestrator.plan import Job, Shard
from orchestrator.store import SCHEMA, ScoreStore, covered

JOB = Job("nb201", "cifar10", 3)
MANIFEST = Manifest(
    "nb201", {"channels": 16},
    {"p": {"params": {"k": 1}, "higher_is_better": True, "uses_images": True},
     "q": {"params": {}, "higher_is_better": False, "uses_images": False}},
    {"cifar10": {"name": "c.npz", "sha256": "ab"}},
)


def rows(ids, proxies=("p",)):
    return [{"space": "nb201", "dataset": "cifar10", "seed": 3, "arch_id": i, "arch": "a", "proxy": p,
             "score": 1.0, "status": "ok", "error": None, "seconds": 0.1, "shared_seconds": 0.0,
             "worker": "w", "device": "cpu", "host": "h"} for i in ids for p in proxies]


def write(store, ids, proxies=("p",), job=JOB):
    shard = Shard(job, tuple(ids), tuple("a" for _ in ids), tuple(proxies))
    return store.write_shard(shard, rows(ids, proxies), MANIFEST, {"proxysweep.versions": "{}"})


def test_write_scans_and_reads_back(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    path = write(store, ["1", "2"], ("p", "q"))
    assert path.parent == tmp_path / "scores/nb201/cifar10/seed3"
    assert path.name.startswith("shard-") and path.suffix == ".parquet"
    meta = pq.read_schema(path).metadata
    described = json.loads(meta[b"proxysweep.shard"])
    assert described["job"] == ["nb201", "cifar10", 3] and described["cells"] == ["1", "2"]
    assert described["proxies"] == {"p": MANIFEST.fingerprint("p", JOB), "q": MANIFEST.fingerprint("q", JOB)}
    assert pq.read_schema(path).field("seconds").metadata[b"doc"].startswith(b"what this proxy would cost alone")
    scan = store.scan(MANIFEST)
    assert [s.path for s in scan.shards] == [path] and not scan.quarantined
    assert covered(scan.shards, JOB) == {"1": {"p", "q"}, "2": {"p", "q"}}
    table = store.read_scores(scan.shards)
    assert table.schema.equals(SCHEMA) and table.num_rows == 4


def test_rows_must_match_the_shard(tmp_path) -> None:
    shard = Shard(JOB, ("1", "2"), ("a", "a"), ("p",))
    with pytest.raises(RuntimeError, match="do not match"):
        ScoreStore(tmp_path).write_shard(shard, rows(["1"]), MANIFEST, {})


def test_fingerprints_depend_on_what_a_score_depends_on() -> None:
    fp = MANIFEST.fingerprint("p", JOB)
    assert fp == MANIFEST.fingerprint("p", Job("nb201", "cifar10", 3))
    assert fp != MANIFEST.fingerprint("p", Job("nb201", "cifar10", 4))      # seed
    assert MANIFEST.fingerprint("p", Job("nb201", "cifar100", 3)) is None   # images of cifar100 unknown
    other_images = Manifest(MANIFEST.space, MANIFEST.space_settings, MANIFEST.proxies,
                            {"cifar10": {"name": "c.npz", "sha256": "cd"}})
    assert other_images.fingerprint("p", JOB) != fp                         # images
    assert other_images.fingerprint("q", JOB) == MANIFEST.fingerprint("q", JOB)  # q reads none
    other_space = Manifest(MANIFEST.space, {"channels": 32}, MANIFEST.proxies, MANIFEST.images)
    assert other_space.fingerprint("p", JOB) != fp
    assert MANIFEST.fingerprint("r", JOB) is None


def test_damaged_foreign_and_stray_files_are_set_aside(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    good = write(store, ["1"])
    cut = write(store, ["2"])
    cut.write_bytes(cut.read_bytes()[:-20])  # a copy cut short: no footer
    foreign_manifest = Manifest("nb201", {"channels": 16}, {"p": {"params": {"k": 2}, "higher_is_better": True,
                                                                   "uses_images": True}}, MANIFEST.images)
    foreign = ScoreStore(tmp_path).write_shard(Shard(JOB, ("3",), ("a",), ("p",)), rows(["3"]), foreign_manifest, {})
    stray = good.parent / "notes.txt"
    stray.write_text("not a shard")
    renamed = good.parent / "shard-0000000000000000.parquet"
    write(store, ["4"]).rename(renamed)  # a valid file under another shard's name
    hidden = good.parent / ".keep"
    hidden.write_text("")

    scan = store.scan(MANIFEST)
    assert [s.path for s in scan.shards] == [good]
    reasons = {p.name.split(".corrupt-")[0]: why for p, why in scan.quarantined}
    assert "unreadable Parquet" in reasons[cut.name]
    assert "other settings" in reasons[foreign.name]
    assert "not a shard file" in reasons["notes.txt"]
    assert "another shard" in reasons[renamed.name]
    for where, _ in scan.quarantined:  # kept for inspection, out of the readers' way
        assert where.exists() and where.is_relative_to(tmp_path / "quarantine")
    assert sorted(p.name for p in good.parent.iterdir()) == sorted([good.name, ".keep"])


def test_a_file_whose_rows_disagree_with_its_footer_is_set_aside(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    path = write(store, ["1", "2"])
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 1).replace_schema_metadata(table.schema.metadata), path)
    scan = store.scan(MANIFEST)
    assert not scan.shards and "1 rows where its 2 cells x 1 proxies need 2" in scan.quarantined[0][1]


def test_a_pair_held_twice_is_kept_once(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    first = write(store, ["1", "2"])
    second = write(store, ["2", "3"])
    scan = store.scan(MANIFEST, quarantine=False)
    assert len(scan.shards) == 1 and "holds scores another shard file holds" in scan.quarantined[0][1]
    assert first.exists() and second.exists()  # quarantine=False (the reducer's listing) moves nothing


def test_half_written_files_are_not_results_and_are_removed(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    folder = store.job_dir(JOB)
    folder.mkdir(parents=True)
    (folder / ".shard-0123456789abcdef.parquet.tmp-0123").write_bytes(b"PAR1 half a file")
    assert store.scan(MANIFEST).shards == []
    assert store.remove_temporaries() == 1
    assert not list(folder.iterdir())


def test_only_one_driver_per_folder(tmp_path) -> None:
    first, second = ScoreStore(tmp_path), ScoreStore(tmp_path)
    first.lock()
    with pytest.raises(SweepError, match="another proxysweep driver"):
        second.lock()
    first.unlock()
    second.lock()
    second.check_intact()
    os.rename(tmp_path / ".lock", tmp_path / "moved")
    with pytest.raises(SweepError, match="was removed or replaced"):
        second.check_intact()
    second.unlock()


def test_manifest_round_trip_and_refusals(tmp_path) -> None:
    MANIFEST.write(tmp_path)
    assert Manifest.read(tmp_path) == MANIFEST
    wanted = Manifest("nb201", {"channels": 16}, {"p": {"params": {"k": 2}, "higher_is_better": True,
                                                         "uses_images": True}}, {})
    holds = StoredContent(frozenset({"p"}), frozenset({"cifar10"}))
    with pytest.raises(SweepError, match=r"proxy.p.k: stored 1, now 2"):
        merge(MANIFEST, wanted, holds, {})
    # nothing stored depends on p: its entry is simply replaced
    assert merge(MANIFEST, wanted, StoredContent(), {}).proxies["p"]["params"] == {"k": 2}
    # a new proxy and a new dataset join
    grown = Manifest("nb201", {"channels": 16}, {"r": {"params": {}, "higher_is_better": True, "uses_images": True}},
                     {"cifar100": {"name": "d.npz", "sha256": "ef"}})
    merged = merge(MANIFEST, grown, holds, {})
    assert set(merged.proxies) == {"p", "q", "r"} and set(merged.images) == {"cifar10", "cifar100"}
    with pytest.raises(SweepError, match=r"space.nb201.channels: stored 16, now 32"):
        merge(MANIFEST, Manifest("nb201", {"channels": 32}), holds, {})
    with pytest.raises(SweepError, match="data.images.cifar10"):
        merge(MANIFEST, Manifest("nb201", {"channels": 16}, {}, {"cifar10": {"name": "x", "sha256": "zz"}}),
              holds, {"cifar10": "x"})
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(SweepError, match="sweep.json is damaged"):
        Manifest.read(tmp_path)


def test_schema_of_every_column_is_documented() -> None:
    assert all(f.metadata and f.metadata.get(b"doc") for f in SCHEMA)
    assert isinstance(SCHEMA.field("score").type, pa.DataType)
