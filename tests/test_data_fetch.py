"""``python -m orchestrator.data fetch``: a real HTTP server on 127.0.0.1 (http.server in a
thread, range requests, a mode that cuts the connection half-way, a mode that ignores
ranges) serving small archives built here in the official layout: a
``cifar-10-batches-py/`` (or ``cifar-100-python/``) folder of protocol-2 pickles with the
official keys, read back with latin1 as ``benchdata.images`` reads the real ones."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from netutil import free_ports

from orchestrator.data.__main__ import main
from orchestrator.data.download import ByteProgress
from orchestrator.data.fetch import DATASETS
from benchdata.images import read_images

C10 = DATASETS["cifar10"]
C100 = DATASETS["cifar100"]
PER_BATCH = 6


def _pickle(obj: dict) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _add(tar: tarfile.TarFile, name: str, payload: bytes | None = None, **info) -> None:
    member = tarfile.TarInfo(name)
    for k, v in info.items():
        setattr(member, k, v)
    if payload is None and not info:
        member.type, member.mode = tarfile.DIRTYPE, 0o755
    if payload is not None:
        member.size, member.mode = len(payload), 0o644
    tar.addfile(member, io.BytesIO(payload) if payload is not None else None)


def _targz(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in entries:
            _add(tar, name, payload)
    return buf.getvalue()


def cifar10_archive(seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(archive bytes, the training images N x 3 x 32 x 32, their labels)."""
    rng = np.random.default_rng(seed)
    entries: list[tuple[str, bytes | None]] = [("cifar-10-batches-py", None)]
    images, labels = [], []
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        x = rng.integers(0, 256, size=(PER_BATCH, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=PER_BATCH)]
        batch = {"batch_label": f"{name} of 6", "labels": y, "data": x.reshape(PER_BATCH, 3072),
                 "filenames": [f"img_{name}_{i}.png" for i in range(PER_BATCH)]}
        entries.append((f"cifar-10-batches-py/{name}", _pickle(batch)))
        if name != "test_batch":
            images.append(x)
            labels.extend(y)
    meta = {"num_cases_per_batch": PER_BATCH, "num_vis": 3072,
            "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    entries += [("cifar-10-batches-py/batches.meta", _pickle(meta)), ("cifar-10-batches-py/readme.html", b"<html></html>")]
    return _targz(entries), np.concatenate(images), np.asarray(labels, dtype=np.int64)


def cifar100_archive() -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    entries: list[tuple[str, bytes | None]] = [("cifar-100-python", None)]
    train = None
    for split in ("train", "test"):
        x = rng.integers(0, 256, size=(PER_BATCH, 3, 32, 32), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=PER_BATCH)]
        entries.append((f"cifar-100-python/{split}", _pickle({
            "filenames": [f"{split}_{i}.png" for i in range(PER_BATCH)], "batch_label": f"{split} batch 1 of 1",
            "fine_labels": fine, "coarse_labels": [f // 5 for f in fine], "data": x.reshape(PER_BATCH, 3072)})))
        if split == "train":
            train = (x, np.asarray(fine, dtype=np.int64))
    entries.append(("cifar-100-python/meta", _pickle({"fine_label_names": [f"f{i}" for i in range(100)],
                                                      "coarse_label_names": [f"c{i}" for i in range(20)]})))
    assert train is not None
    return _targz(entries), *train


class Server(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]
    mode: str = "normal"  # or "cut" (half the body, then close), "ignore_range" (always 200)
    seen: list[dict]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.seen.append({"path": self.path, "range": rng})
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and srv.mode != "ignore_range":
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if srv.mode == "cut":
            body = body[: len(body) // 2]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture()
def server() -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.files, srv.seen = {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def url_of(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_args(dataset: str, root: Path, srv: Server, data: bytes, *extra: str) -> list[str]:
    name = f"/{dataset}.tar.gz"
    srv.files[name] = data
    return ["fetch", dataset, "--root", str(root), "--url", url_of(srv, name), "--sha256", sha(data), *extra]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("proxysweep: error: "), err
    return lines[0]


def test_fetch_downloads_verifies_and_unpacks_cifar10(tmp_path, server, capsys) -> None:
    data, images, labels = cifar10_archive()
    root = tmp_path / "root"
    assert main(fetch_args("cifar10", root, server, data)) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert "data.images.cifar10=cifar-10-batches-py" in out.out and f"data.root={root}" in out.out
    got_x, got_y = read_images(root / "cifar-10-batches-py", "cifar10")
    assert got_x.dtype == np.uint8 and got_x.shape == (5 * PER_BATCH, 3, 32, 32)
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, labels)
    # nothing else is left: no .part, no archive, no staging folder
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]
    assert [s["range"] for s in server.seen] == [None]


def test_fetch_cifar100_and_keep_archive(tmp_path, server, capsys) -> None:
    data, images, fine = cifar100_archive()
    root = tmp_path / "root"
    assert main(fetch_args("cifar100", root, server, data, "--keep-archive")) == 0
    assert "data.images.cifar100=cifar-100-python" in capsys.readouterr().out
    got_x, got_y = read_images(root / "cifar-100-python", "cifar100")
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, fine)
    assert (root / C100.name).read_bytes() == data
    assert sorted(p.name for p in root.iterdir()) == sorted(["cifar-100-python", C100.name])


def test_wrong_checksum_is_one_line_and_leaves_nothing(tmp_path, server) -> None:
    """As a subprocess, with the default root ($PROXYSWEEP_DATA) and the official SHA-256,
    which the small archive cannot match."""
    data, _, _ = cifar10_archive()
    server.files["/c10.tar.gz"] = data
    root = tmp_path / "envroot"
    env = {**os.environ, "PROXYSWEEP_DATA": str(root)}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.data", "fetch", "cifar10", "--url",
                           url_of(server, "/c10.tar.gz")], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert f"expected {C10.sha256}" in line and f"got {sha(data)}" in line
    assert "Traceback" not in proc.stderr + proc.stdout
    assert root.is_dir() and list(root.iterdir()) == []  # no .part, no archive, nothing unpacked


def test_cut_connection_keeps_the_part_and_a_rerun_resumes_with_a_range(tmp_path, server, capsys) -> None:
    data, images, _ = cifar10_archive()
    root = tmp_path / "root"
    args = fetch_args("cifar10", root, server, data)
    server.mode = "cut"
    assert main(args) == 2
    half = len(data) // 2
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"proxysweep: error: connection cut after {half:,} of {len(data):,} bytes; "
                    "rerun the same command to resume")
    part = root / (C10.name + ".part")
    assert part.read_bytes() == data[:half]
    assert sorted(p.name for p in root.iterdir()) == [part.name]  # nothing under a final name

    server.mode = "normal"
    assert main(args) == 0
    assert capsys.readouterr().err == ""
    assert server.seen[-1]["range"] == f"bytes={half}-"
    np.testing.assert_array_equal(read_images(root / "cifar-10-batches-py", "cifar10")[0], images)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]


def test_a_server_that_ignores_the_range_restarts_from_zero(tmp_path, server, capsys) -> None:
    data, images, labels = cifar10_archive()
    root = tmp_path / "root"
    args = fetch_args("cifar10", root, server, data)
    server.mode = "cut"
    assert main(args) == 2
    server.mode = "ignore_range"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ignored the resume request" in out
    assert server.seen[-1]["range"] == f"bytes={len(data) // 2}-"  # asked, answered with 200
    got_x, got_y = read_images(root / "cifar-10-batches-py", "cifar10")
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, labels)


def test_a_rerun_after_success_does_nothing(tmp_path, server, capsys) -> None:
    data, _, _ = cifar10_archive()
    root = tmp_path / "root"
    args = fetch_args("cifar10", root, server, data)
    assert main(args) == 0
    before = {p: p.stat().st_mtime_ns for p in (root / "cifar-10-batches-py").iterdir()}
    requests = len(server.seen)
    capsys.readouterr()
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert len(server.seen) == requests
    assert {p: p.stat().st_mtime_ns for p in (root / "cifar-10-batches-py").iterdir()} == before


def test_an_incomplete_folder_is_reported_and_left_alone(tmp_path, server, capsys) -> None:
    data, _, _ = cifar10_archive()
    root = tmp_path / "root"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"mine")
    assert main(fetch_args("cifar10", root, server, data)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "lacks data_batch_2" in line
    assert server.seen == []
    assert (root / "cifar-10-batches-py" / "data_batch_1").read_bytes() == b"mine"


@pytest.mark.parametrize("bad", ["traversal", "symlink", "outside"])
def test_an_unsafe_archive_is_refused(tmp_path, server, capsys, bad) -> None:
    data, _, _ = cifar10_archive()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m, payload in members:
            tar.addfile(m, io.BytesIO(payload) if payload is not None else None)
        if bad == "traversal":
            _add(tar, "cifar-10-batches-py/../../evil", b"x")
        elif bad == "symlink":
            _add(tar, "cifar-10-batches-py/link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        else:
            _add(tar, "other/evil", b"x")
    root = tmp_path / "root"
    assert main(fetch_args("cifar10", root, server, buf.getvalue())) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "nothing was unpacked" in line and "the download was deleted" in line
    assert list(root.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_network_failures_are_one_line(tmp_path, server, capsys) -> None:
    (port,) = free_ports(1)  # nothing listens there
    assert main(["fetch", "cifar10", "--root", str(tmp_path), "--url", f"http://127.0.0.1:{port}/x.tar.gz"]) == 2
    assert "cannot download" in one_error_line(capsys.readouterr().err)
    assert main(["fetch", "cifar10", "--root", str(tmp_path), "--url", url_of(server, "/absent.tar.gz")]) == 2
    assert "HTTP 404" in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_one_line(capsys) -> None:
    for argv in (["fetch", "cifar10", "--sha256", "abc"], ["fetch", "svhn"], ["fetch"]):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        one_error_line(capsys.readouterr().err)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_shows_bytes_percent_rate_and_eta() -> None:
    """Off a terminal: a line at the start, then at most one every ``every`` seconds, and the
    last one; on a terminal: the same line redrawn in place."""
    mib = 1 << 20
    clock, stream = FakeClock(), Stream(tty=False)
    p = ByteProgress("a.tar.gz", total=10 * mib, start=2 * mib, stream=stream, every=5.0, clock=clock)
    clock.t += 1.0
    p.update(mib)       # drawn: the first update
    clock.t += 1.0
    p.update(mib)       # 1 s later: not drawn
    clock.t += 4.0
    p.update(2 * mib)   # 5 s after the last line: drawn
    clock.t += 2.0
    p.update(mib)       # 2 s later: not drawn ...
    p.close()           # ... but the final state is
    lines = stream.getvalue().splitlines()
    # 1 MiB in 1 s: 1.00 MiB/s, 7 MiB left -> 7s
    assert lines[0] == "a.tar.gz: 3.0/10.0 MiB  30.0% 1.00 MiB/s ETA 7s"
    # 4 MiB in 6 s, 4 MiB left at 0.67 MiB/s -> 6s
    assert lines[1] == "a.tar.gz: 6.0/10.0 MiB  60.0% 0.67 MiB/s ETA 6s"
    # 5 MiB in 8 s: 0.625 MiB/s, 3 MiB left -> 4.8 s
    assert lines[2] == "a.tar.gz: 7.0/10.0 MiB  70.0% 0.62 MiB/s ETA 5s"
    assert len(lines) == 3

    clock, stream = FakeClock(), Stream(tty=True)
    p = ByteProgress("a.tar.gz", total=4 * mib, stream=stream, clock=clock)
    for _ in range(4):
        clock.t += 1.0
        p.update(mib)
    p.close()
    text = stream.getvalue()
    assert "\n" not in text[:-1] and text.endswith("\n")
    assert text.count("\r") == 4 and text.rstrip().endswith("a.tar.gz: 4.0/4.0 MiB 100.0% 1.00 MiB/s ETA 0s")
