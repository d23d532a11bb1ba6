"""The tfrecord reader and the NAS-Bench-101 converter, on files written here in the official
format: TFRecord framing built by hand from the format's definition, payloads as
``nasbench/api.py`` reads them, ``ModelMetrics`` serialised by the real protobuf runtime
from a descriptor of ``model_metrics.proto`` (no generated code on either side)."""
from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from spaces.nb101 import protowire as pw
from spaces.nb101.convert import convert, decode_metrics, decode_record
from spaces.nb101.tfrecord import TFRecordError, crc32c, crc32c_many, read_records, write_records

# three real cells of the sample table (hash, pruned adjacency, operations)
CELLS = [
    ("00005c142e6f48ac74fdcf73e3439874",
     [[0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
     ["input", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
     8555530),
    ("0000718c96730a92ea6d5242f8ce77e2",
     [[0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1],
      [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
     ["input", "conv1x1-bn-relu", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "conv3x3-bn-relu", "output"],
     5878154),
]


def metrics_class():
    """ModelMetrics from a runtime descriptor of nasbench/lib/model_metrics.proto."""
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="model_metrics_test.proto", package="nasbench_test", syntax="proto2")
    ev = f.message_type.add(name="EvaluationData")
    double, opt = descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE, descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    for number, name in enumerate(["current_epoch", "training_time", "train_accuracy", "validation_accuracy", "test_accuracy"], 1):
        ev.field.add(name=name, number=number, type=double, label=opt)
    ev.field.add(name="checkpoint_path", number=6, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=opt)
    mm = f.message_type.add(name="ModelMetrics")
    mm.field.add(name="evaluation_data", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                 label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED, type_name=".nasbench_test.EvaluationData")
    mm.field.add(name="trainable_parameters", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32, label=opt)
    mm.field.add(name="total_time", number=3, type=double, label=opt)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench_test.ModelMetrics"))


def official_payload(cls, module_hash, adjacency, ops, params, epochs, final_val, final_test, seconds) -> bytes:
    """One record's payload as the benchmark stores it: [hash, epochs, adjacency, ops, metrics]."""
    m = cls(trainable_parameters=params, total_time=seconds + 100.0)
    for fraction in (0.0, 0.5, 1.0):
        m.evaluation_data.add(current_epoch=epochs * fraction, training_time=seconds * fraction,
                              train_accuracy=0.1 + fraction * 0.8, validation_accuracy=final_val * fraction or 0.1,
                              test_accuracy=final_test * fraction or 0.1,
                              checkpoint_path=f"/tmp/model.ckpt-{int(1000 * fraction)}")
    raw_adjacency = "".join(str(v) for row in adjacency for v in row)
    raw_metrics = base64.b64encode(m.SerializeToString()).decode("ascii")
    return json.dumps([module_hash, epochs, raw_adjacency, ",".join(ops), raw_metrics]).encode("utf-8")


def tf_mask(crc: int) -> int:
    """The format's masked CRC, written out here from its definition."""
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    return (rotated + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", tf_mask(crc32c(length))) + data + struct.pack("<I", tf_mask(crc32c(data)))


@pytest.fixture()
def official_file(tmp_path) -> tuple[Path, list[dict]]:
    """A nasbench_only108-style file: 2 cells x 3 repeats at 108 epochs, plus 4-epoch runs
    of the first cell (as in nasbench_full), interleaved."""
    cls = metrics_class()
    rng = np.random.default_rng(0)
    runs, payloads = [], []
    for repeat in range(3):
        for h, adj, ops, params in CELLS:
            for epochs in ((108, 4) if h == CELLS[0][0] else (108,)):
                val, test, secs = rng.uniform(0.8, 0.95), rng.uniform(0.8, 0.95), rng.uniform(1000, 3000)
                runs.append(dict(hash=h, epochs=epochs, val=val, test=test, seconds=secs))
                payloads.append(official_payload(cls, h, adj, ops, params, epochs, val, test, secs))
    path = tmp_path / "nasbench_test.tfrecord"
    path.write_bytes(b"".join(frame(p) for p in payloads))
    return path, runs


def test_crc32c_known_answers() -> None:
    # RFC 3720 (iSCSI) appendix B.4 test vectors, and the usual check value
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"123456789") == 0xE3069283
    items = [bytes(range(n % 256)) * (n // 256 + 1) for n in (0, 1, 5, 31, 300, 2049)]
    assert crc32c_many(items).tolist() == [crc32c(x) for x in items]
    assert crc32c_many(items, max_cells=64).tolist() == [crc32c(x) for x in items]


def test_reader_and_writer_agree_with_the_format(tmp_path) -> None:
    records = [b"", b"a", b"hello world" * 50, bytes(range(256))]
    by_hand = tmp_path / "hand.tfrecord"
    by_hand.write_bytes(b"".join(frame(r) for r in records))
    assert list(read_records(by_hand)) == records
    assert list(read_records(by_hand, batch=3)) == records
    written = tmp_path / "written.tfrecord"
    write_records(written, records)
    assert written.read_bytes() == by_hand.read_bytes()


def test_protowire_matches_the_protobuf_runtime() -> None:
    cls = metrics_class()
    m = cls(trainable_parameters=-5, total_time=1.25)
    m.evaluation_data.add(current_epoch=108.0, validation_accuracy=0.9375, checkpoint_path="x")
    params, total, evaluations = decode_metrics(m.SerializeToString())
    assert (params, total) == (-5, 1.25)
    assert evaluations[0].epoch == 108.0 and evaluations[0].validation_accuracy == 0.9375
    assert np.isnan(evaluations[0].test_accuracy)  # absent field
    with pytest.raises(pw.ProtoDecodeError):
        list(pw.iter_fields(b"\x0a\x05ab"))  # length runs past the end


def test_decode_record_reads_the_official_payload() -> None:
    h, adj, ops, params = CELLS[0]
    record = decode_record(official_payload(metrics_class(), h, adj, ops, params, 108, 0.93, 0.92, 1768.5))
    assert record.module_hash == h and record.epochs == 108
    assert record.adjacency.tolist() == adj and record.operations == ops
    assert record.trainable_parameters == params
    assert len(record.evaluations) == 3
    assert (record.final.validation_accuracy, record.final.test_accuracy, record.final.training_time) == (0.93, 0.92, 1768.5)


def test_convert_means_over_repeats(official_file, tmp_path) -> None:
    path, runs = official_file
    out = tmp_path / "truth.parquet"
    done = convert(path, out)
    assert (done.records, done.cells, done.epochs) == (len(runs), 2, (4, 108))
    table = pq.read_table(out).to_pylist()
    assert [r["hash"] for r in table] == sorted(c[0] for c in CELLS)
    for row in table:
        _, adj, ops, params = next(c for c in CELLS if c[0] == row["hash"])
        assert row["adjacency"] == adj and row["operations"] == ops and row["trainable_parameters"] == params
        mine = [r for r in runs if r["hash"] == row["hash"] and r["epochs"] == 108]
        assert row["repeats_108"] == 3
        assert row["val_acc_108"] == pytest.approx(np.mean([r["val"] for r in mine]), abs=1e-15)
        assert row["test_acc_108"] == pytest.approx(np.mean([r["test"] for r in mine]), abs=1e-15)
        assert row["train_seconds_108"] == pytest.approx(np.mean([r["seconds"] for r in mine]), abs=1e-9)
    first = next(r for r in table if r["hash"] == CELLS[0][0])
    second = next(r for r in table if r["hash"] == CELLS[1][0])
    assert first["repeats_4"] == 3 and second["repeats_4"] == 0 and np.isnan(second["val_acc_4"])


def _records_bounds(path: Path) -> list[tuple[int, int]]:
    """(offset of the record, offset of its data) for every record of a file."""
    raw, pos, out = path.read_bytes(), 0, []
    while pos < len(raw):
        (length,) = struct.unpack_from("<Q", raw, pos)
        out.append((pos, pos + 12))
        pos += 16 + length
    return out


def test_a_corrupted_record_is_one_clear_error(official_file, tmp_path) -> None:
    path, _ = official_file
    raw = bytearray(path.read_bytes())
    start, data = _records_bounds(path)[4]
    raw[data + 40] ^= 0x01  # one flipped bit in record 4's payload
    bad = tmp_path / "nasbench_corrupt.tfrecord"
    bad.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=rf"nasbench_corrupt\.tfrecord: record 4 \(byte offset {start}\): data checksum mismatch"):
        convert(bad, tmp_path / "never.parquet")
    assert not (tmp_path / "never.parquet").exists()
    proc = subprocess.run([sys.executable, "-m", "spaces.nb101.convert", "convert", str(bad), str(tmp_path / "x.parquet")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "record 4" in lines[0] and str(bad) in lines[0], proc.stderr


def test_a_corrupted_length_or_a_truncated_file_is_named(official_file, tmp_path) -> None:
    path, _ = official_file
    raw = bytearray(path.read_bytes())
    start, _ = _records_bounds(path)[2]
    raw[start] ^= 0x10
    bad = tmp_path / "bad_length.tfrecord"
    bad.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r"bad_length\.tfrecord: record 2 .*length checksum mismatch"):
        list(read_records(bad))
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(path.read_bytes()[:-3])
    last = len(_records_bounds(path)) - 1
    with pytest.raises(TFRecordError, match=rf"cut\.tfrecord: record {last} .*truncated"):
        list(read_records(cut))


def test_a_record_that_is_not_nasbench_is_named(tmp_path) -> None:
    path = tmp_path / "other.tfrecord"
    write_records(path, [b'["abc", 108, "0110", "input,output", "AAAA"]', b"not json"])
    with pytest.raises(TFRecordError, match=r"other\.tfrecord: record 0: not a NAS-Bench-101 record"):
        convert(path, tmp_path / "x.parquet")


def test_converter_cli_writes_the_table(official_file, tmp_path) -> None:
    path, _ = official_file
    out = tmp_path / "nb101_only108.parquet"
    proc = subprocess.run([sys.executable, "-m", "spaces.nb101.convert", "convert", str(path), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 cells" in proc.stdout and out.exists()
