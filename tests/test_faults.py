"""Fault injection: each fault against one undisturbed run of the same sweep.

The reference is a few NB201 cells of the nb201_smoke sweep (small batches, two seeds),
scored once without trouble. Each test then breaks a run of the same sweep on purpose, with
real signals, a real second Ray node, a real full file system and a real read-only mount,
lets it resume where the fault allows it, and compares every (dataset, seed, cell, proxy)
row with the reference: none lost, none held twice, every status and score equal. No
half-written (``.tmp-``) file may be left, every file left under ``scores/`` must pass the
store's check, and what was set aside must be in ``quarantine/``. Where a run must stop, its
stderr must carry exactly one ``proxysweep: error:`` line, as a user sees it.

The faults: a scorer's process killed (SIGKILL) in the middle of a shard; a second Ray
node whose raylet is killed mid-sweep; the file system filling up while a shard is written;
a read-only output folder; the output folder removed mid-sweep; damaged, foreign and stray
files under ``scores/``; two drivers on one folder, the first then killed (SIGKILL). A
driver killed and rerun is tests/test_sweep_ray.py's, as is an actor killed through Ray.

Drivers run as subprocesses where a kill or what the user reads is the subject; they join
the session's Ray (``ray_session``) so that they do not pay for starting one. Waits are on
conditions (a file appearing, a process busy), never on fixed sleeps.

The disk-full and read-only tests mount small tmpfs file systems, so they need root (as CI
runs them); without it they are skipped with the reason, except under ``CI``, where they fail.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from conftest import DATA_ROOT, REPO, make_config
from netutil import free_ports, poll

from orchestrator import sweep as sweep_module
from orchestrator.errors import SweepError
from orchestrator.manifest import Manifest
from orchestrator.plan import Job, Shard
from orchestrator.progress import Progress
from orchestrator.reduce import reduce_sweep
from orchestrator.settings import load_settings
from orchestrator.store import SCHEMA, ScoreStore
from orchestrator.sweep import run_sweep

#: the sweep every test runs: 3 cells x 2 seeds x the smoke sweep's six proxies
SWEEP = [
    "+sweep=nb201_smoke", "cells.n=3", "cells.seed=7", "sweep.seeds=[0,1]",
    "proxy.grad_norm.batch_size=16", "proxy.snip.batch_size=16",
    "proxy.jacob_cov.batch_size=16", "proxy.naswot.batch_size=16",
]
CELLS, SEEDS, PROXIES = 3, 2, 6
#: one cell per shard file: the most files, so the most places for a fault to land
ONE_PER_SHARD = ["sweep.shard_size=1", "cluster.num_actors=1"]
ERROR = "proxysweep: error: "
RAY = Path(sys.executable).with_name("ray")

Key = tuple[str, int, str, str]  # dataset, seed, arch_id, proxy


# -- what a folder holds ---------------------------------------------------------------
def rows_of(out: Path) -> dict[Key, tuple[str, Any]]:
    """(dataset, seed, arch_id, proxy) -> (status, score) of every row under ``scores/``,
    asserting that no key is held twice (nan stands as the string "nan": nan != nan)."""
    table = pads.dataset(str(out / "scores"), format="parquet", schema=SCHEMA).to_table()
    rows: dict[Key, tuple[str, Any]] = {}
    for r in table.to_pylist():
        key = (r["dataset"], r["seed"], r["arch_id"], r["proxy"])
        assert key not in rows, f"row {key} is held twice"
        score = r["score"]
        rows[key] = (r["status"], "nan" if score != score else score)
    return rows


def workers_of(out: Path, seed: int) -> set[str]:
    """The scorer actors that wrote the rows of ``seed`` (the ``worker`` column)."""
    table = pads.dataset(str(out / "scores"), format="parquet", schema=SCHEMA).to_table()
    return {r["worker"] for r in table.to_pylist() if r["seed"] == seed}


def leftovers(out: Path) -> list[Path]:
    """Half-written files (the atomic writer's temporaries)."""
    return [p for p in out.rglob("*") if ".tmp-" in p.name]


def assert_same_as_reference(out: Path, reference: dict[Key, tuple[str, Any]]) -> None:
    """The folder's scores equal the reference row for row; nothing half-written; every
    file under scores/ is a valid shard of this folder."""
    got = rows_of(out)
    assert set(got) == set(reference), (
        f"lost: {sorted(set(reference) - set(got))[:5]}, extra: {sorted(set(got) - set(reference))[:5]}")
    assert {k: v for k, v in got.items() if v != reference[k]} == {}
    assert leftovers(out) == []
    scan = ScoreStore(out).scan(Manifest.read(out), quarantine=False)
    assert scan.quarantined == []
    assert len(scan.shards) == len(list((out / "scores").rglob("*.parquet")))


def shard_files(out: Path) -> list[Path]:
    """The finished shard files under ``scores/`` (temporaries are hidden, so not these)."""
    return sorted((out / "scores").rglob("shard-*.parquet"))


# -- drivers as the user runs them -----------------------------------------------------
@dataclass
class Driver:
    """``python -m orchestrator`` in its own process group, output kept in files."""

    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        """Wait for it to end: exit status, stdout, stderr."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the driver did not end within {timeout:g} s:\n{self.stderr.read_text()[-3000:]}")
        return code, self.stdout.read_text(), self.stderr.read_text()

    def kill(self) -> None:
        """SIGKILL, to the whole group (the driver and anything it started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)


def launch(logs: Path, name: str, out: Path, *overrides: str, address: str,
           env: dict[str, str] | None = None) -> Driver:
    """Start a driver of the fault sweep writing to ``out`` and joining Ray at ``address``."""
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
    args = [sys.executable, "-m", "orchestrator", *SWEEP, f"data.root={DATA_ROOT}", f"out_dir={out}",
            f"cluster.address={address}", *overrides]
    with open(stdout, "w") as o, open(stderr, "w") as e:
        proc = subprocess.Popen(args, cwd=REPO, stdout=o, stderr=e, start_new_session=True,
                                env=env or {**os.environ, "PYTHONWARNINGS": "ignore"})
    return Driver(proc, stdout, stderr)


def the_error_line(code: int, stderr: str) -> str:
    """The one ``proxysweep: error:`` line of a run that had to stop (exit status 2)."""
    errors = [line for line in stderr.splitlines() if line.startswith(ERROR)]
    assert code == 2 and len(errors) == 1, (code, stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def wait_for_shards(out: Path, count: int, driver: Driver, timeout: float = 240) -> list[Path]:
    return poll(lambda: (files := shard_files(out)) and len(files) >= count and files, timeout, every=0.1,
                what=f"{count} shard file(s) under {out}", alive=driver.alive)


# -- processes ------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def raylet_of(pid: int) -> int:
    """The raylet that process ``pid`` started (``ray.init`` in this process, ``ray start``)."""
    (raylet,) = [c for c in children(pid) if cmdline(c).split(" ")[0].endswith("/raylet")]
    return raylet


def busy_scorers(raylet: int) -> list[int]:
    """Scorer actor processes of that raylet that are running a cell right now (Ray titles
    a worker ``ray::Class.method`` while it runs a call)."""
    return [c for c in children(raylet) if cmdline(c).startswith("ray::Scorer.score_cell")]


# -- tmpfs ----------------------------------------------------------------------------
def _unavailable(reason: str) -> None:
    """No tmpfs here: a clear skip on a developer's machine, a failure in CI."""
    message = f"this test mounts a small tmpfs and needs root with mount(8): {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount_tmpfs(size)``: a fresh tmpfs of that size (e.g. "4m"), unmounted afterwards."""
    mounted: list[Path] = []

    def mount_tmpfs(size: str) -> Path:
        if os.geteuid() != 0:
            _unavailable("not root")
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            _unavailable(f"mount failed: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount_tmpfs
    for point in reversed(mounted):
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True, capture_output=True)


def fill(folder: Path) -> Path:
    """Write one file in ``folder`` until its file system has no block left (a real
    ENOSPC); returns the file, whose removal frees the space again."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return filler


# -- the reference --------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(ray_session: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The undisturbed run: one actor, one cell per shard file."""
    out = tmp_path_factory.mktemp("reference")
    result = run_sweep(make_config([*SWEEP, *ONE_PER_SHARD, "reduce=false", f"out_dir={out}"]))
    assert result.scored_shards == CELLS * SEEDS
    return {"out": out, "rows": rows_of(out)}


def test_the_reference_is_complete(reference: dict[str, Any]) -> None:
    rows = reference["rows"]
    assert len(rows) == CELLS * SEEDS * PROXIES
    assert {status for status, _ in rows.values()} <= {"ok", "nonfinite"}  # no error rows
    assert_same_as_reference(reference["out"], rows)


# -- a scorer killed ------------------------------------------------------------------
def test_a_scorer_killed_with_sigkill_mid_shard_is_replaced(
        reference: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three cells per shard; the scorer's process gets SIGKILL right after the first cell
    of the second shard came back, while it runs the second. The driver keeps the cell it
    has, a new actor scores the other two, and the shard is written once."""
    raylet = raylet_of(os.getpid())  # the session's Ray was started by this process
    killed: list[int] = []

    class KillingProgress(Progress):
        def update(self, n: int = 1) -> None:
            super().update(n)
            if self.done - self.start_done == CELLS + 1:
                (pid,) = poll(lambda: len(busy := busy_scorers(raylet)) == 1 and busy, 60, every=0.05,
                              what="one scorer running a cell")
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    monkeypatch.setattr(sweep_module, "Progress", KillingProgress)
    result = run_sweep(make_config([*SWEEP, "sweep.shard_size=3", "cluster.num_actors=1", "reduce=false",
                                    f"out_dir={tmp_path}"]))
    assert len(killed) == 1
    assert result.scored_shards == SEEDS
    assert_same_as_reference(tmp_path, reference["rows"])
    first, second = workers_of(tmp_path, 0), workers_of(tmp_path, 1)
    (name,) = first
    assert second == {name, f"{name}-r1"}  # one cell before the kill, two after


# -- a node lost ----------------------------------------------------------------------
NODE_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")},
    "RAY_AUTH_MODE": "disabled",  # auth is not the subject here (tests/test_auth.py)
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",  # several nodes on one host, at 127.0.0.2 and .3
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "PYTHONWARNINGS": "ignore",
}


def ray_start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([str(RAY), "start", "--block", "--disable-usage-stats", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=NODE_ENV, start_new_session=True)


def ray_stop(proc: subprocess.Popen) -> None:
    """Stop one node by its ``ray start --block`` process (SIGTERM stops the node's
    processes); whatever is left of its group is killed. Never ``ray stop``, which would
    stop every Ray on the machine."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_a_node_whose_raylet_is_killed_has_its_shards_finished_elsewhere(
        reference: dict[str, Any], tmp_path: Path) -> None:
    """A head (127.0.0.2) and a second node (127.0.0.3), one CPU each, so one scorer on
    each. Once a shard is written and the second node's scorer is running a cell, its
    raylet gets SIGKILL: the node is gone with its scorer, and the head's scorer finishes
    the work, the lost node's shard included."""
    temp = Path(tempfile.mkdtemp(prefix="psft-"))  # short: Ray's socket paths have a length limit
    gcs, dashboard, client, agent_head, agent_node = free_ports(5)
    common = ["--num-cpus=1", "--object-store-memory=100000000"]
    nodes = [ray_start(["--head", "--node-ip-address=127.0.0.2", f"--port={gcs}", "--include-dashboard=false",
                        f"--dashboard-port={dashboard}",
                        "--dashboard-host=127.0.0.1", f"--ray-client-server-port={client}",
                        f"--dashboard-agent-listen-port={agent_head}", f"--temp-dir={temp / 'h'}", *common],
                       temp / "head.log")]
    try:
        started = "Ray runtime started"
        poll(lambda: started in (temp / "head.log").read_text(), 180, what="the Ray head",
             alive=lambda: nodes[0].poll() is None or print((temp / "head.log").read_text()[-3000:]))
        nodes.append(ray_start([f"--address=127.0.0.2:{gcs}", "--node-ip-address=127.0.0.3",
                                f"--dashboard-agent-listen-port={agent_node}", f"--temp-dir={temp / 'n'}", *common],
                               temp / "node.log"))
        poll(lambda: started in (temp / "node.log").read_text(), 180, what="the second Ray node",
             alive=lambda: nodes[1].poll() is None or print((temp / "node.log").read_text()[-3000:]))
        raylet = raylet_of(nodes[1].pid)
        out = tmp_path / "out"
        driver = launch(tmp_path, "driver", out, "sweep.shard_size=1", "reduce=false",
                        address=f"127.0.0.2:{gcs}", env=NODE_ENV)
        try:
            wait_for_shards(out, 1, driver)
            poll(lambda: busy_scorers(raylet), 120, every=0.05, what="the second node's scorer at work",
                 alive=driver.alive)
            before_kill = set(shard_files(out))
            os.kill(raylet, signal.SIGKILL)
            code, stdout, stderr = driver.finish()
        finally:
            if driver.alive():
                driver.kill()
        assert code == 0, stderr[-3000:]
        assert re.search(r"scorer scorer-nb201_smoke-\S+-127\.0\.0\.3-cpu0 was lost", stdout), stdout[-3000:]
        assert_same_as_reference(out, reference["rows"])
        # the shard the lost scorer was running, and every other one written after the
        # kill, is the head's scorer's work; one result of the lost node may have been on
        # its way to the driver when the raylet died (seen once), no more
        after_kill = set(shard_files(out)) - before_kill
        nodes_after = [{w.rsplit("-", 2)[-2] for w in pq.read_table(p)["worker"].to_pylist()} for p in after_kill]
        assert {"127.0.0.2"} in nodes_after, nodes_after
        assert all(n in ({"127.0.0.2"}, {"127.0.0.3"}) for n in nodes_after), nodes_after
        assert nodes_after.count({"127.0.0.3"}) <= 1, nodes_after
        assert nodes[1].wait(timeout=60) is not None  # the second node's `ray start` saw its raylet go
    finally:
        for node in reversed(nodes):
            ray_stop(node)
        shutil.rmtree(temp, ignore_errors=True)


# -- the disk fills -------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_disk_stops_the_sweep_with_one_line_and_the_rerun_finishes_it(
        reference: dict[str, Any], ray_session: str, tmp_path: Path, tmpfs: Callable[[str], Path]) -> None:
    """out_dir is a 4 MiB tmpfs; once the first shard is there, a file takes every block
    left. The next shard cannot be written (ENOSPC): the driver stops with exit status 2
    and one line naming the file; the shards written stay valid, nothing half-written is
    left. With the space freed, the same command finishes the sweep."""
    out = tmpfs("4m")
    driver = launch(tmp_path, "full", out, *ONE_PER_SHARD, "reduce=false", address=ray_session)
    try:
        wait_for_shards(out, 1, driver)
        filler = fill(out)
        code, _, stderr = driver.finish()
    finally:
        if driver.alive():
            driver.kill()
    line = the_error_line(code, stderr)
    written = shard_files(out)
    assert 1 <= len(written) < CELLS * SEEDS
    assert re.fullmatch(
        rf"{ERROR}cannot write {re.escape(str(out))}/scores/nb201/cifar10/seed\d/shard-[0-9a-f]{{16}}\.parquet: "
        rf".*No space left on device; the {len(written)} shard\(s\) written this run are kept: fix that, then "
        r"rerun the same command to resume", line), line
    assert leftovers(out) == []
    scan = ScoreStore(out).scan(Manifest.read(out), quarantine=False)
    assert sorted(s.path for s in scan.shards) == written and scan.quarantined == []
    before = {p: p.stat().st_mtime_ns for p in written}

    filler.unlink()
    result = run_sweep(make_config([*SWEEP, *ONE_PER_SHARD, f"out_dir={out}"]))
    assert result.scored_shards == CELLS * SEEDS - len(written)
    assert {p: p.stat().st_mtime_ns for p in written} == before  # finished shards are never rewritten
    assert_same_as_reference(out, reference["rows"])
    assert (out / "metrics.parquet").exists()
    assert not (out / "quarantine").exists()


# -- the output folder unusable -------------------------------------------------------
@pytest.mark.parametrize("where", ["a read-only folder holding a finished sweep", "a folder to create in one"])
def test_a_read_only_out_dir_is_one_line_before_ray(
        reference: dict[str, Any], tmp_path: Path, tmpfs: Callable[[str], Path], where: str) -> None:
    """A read-only file system (root ignores chmod, so a tmpfs remounted ro): one line and
    exit status 2 before anything else happens. ``cluster.address`` names a closed port:
    a driver that reached for Ray would fail otherwise."""
    point = tmpfs("2m")
    if where.startswith("a read-only folder"):
        shutil.copytree(reference["out"], point, dirs_exist_ok=True)
        out = point
    else:
        out = point / "new" / "run"
    before = sorted((p.relative_to(point), p.stat().st_mtime_ns) for p in point.rglob("*"))
    remount_read_only(point)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *SWEEP, f"data.root={DATA_ROOT}", f"out_dir={out}",
         "cluster.address=127.0.0.1:1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"{ERROR}cannot write to out_dir {out}: Read-only file system"]
    assert sorted((p.relative_to(point), p.stat().st_mtime_ns) for p in point.rglob("*")) == before


def test_an_out_dir_removed_mid_sweep_stops_it_and_stays_removed(
        reference: dict[str, Any], ray_session: str, tmp_path: Path) -> None:
    """The folder is deleted (rm -rf) once a shard is there: the driver stops at its next
    write with one line, and nothing is created under that path again."""
    out = tmp_path / "out"
    driver = launch(tmp_path, "removed", out, *ONE_PER_SHARD, address=ray_session)
    try:
        wait_for_shards(out, 1, driver)
        poll(lambda: shutil.rmtree(out, ignore_errors=True) or not out.exists(), 30, every=0.05,
             what=f"{out} removed")
        code, _, stderr = driver.finish()
    finally:
        if driver.alive():
            driver.kill()
    line = the_error_line(code, stderr)
    assert line == (f"{ERROR}out_dir {out} was removed or replaced while the sweep ran; nothing more is written "
                    "there: restore it (or choose another out_dir) and rerun")
    assert not out.exists()


def test_a_shard_write_never_recreates_a_removed_out_dir(tmp_path: Path) -> None:
    """The race behind the test above, made certain: the folder goes between the driver's
    check and its write. The write fails and must not create the folder again; the
    reducer, which the driver runs after the last shard, says the folder is gone."""
    out = tmp_path / "out"
    store = ScoreStore(out)
    store.lock()
    try:
        manifest = Manifest("nb201", {})
        shutil.rmtree(out)
        shard = Shard(Job("nb201", "cifar10", 0), ("1",), ("a",), ("params",))
        row = {"space": "nb201", "dataset": "cifar10", "seed": 0, "arch_id": "1", "arch": "a", "proxy": "params",
               "score": 1.0, "status": "ok", "error": None, "seconds": 0.1, "shared_seconds": 0.0,
               "worker": "w", "device": "cpu", "host": "h"}
        with pytest.raises(OSError):
            store.write_shard(shard, [row], manifest, {})
        assert not out.exists()
        with pytest.raises(SweepError, match="was removed or replaced"):
            store.check_intact()
        # nor does the reducer the driver runs next
        settings = load_settings(make_config([*SWEEP, f"out_dir={out}"]))
        with pytest.raises(SweepError, match="was removed or replaced"):
            reduce_sweep(out, settings, store)
    finally:
        store.unlock()
    assert not out.exists()


# -- damaged, foreign and stray files -------------------------------------------------
def test_damaged_foreign_and_stray_files_are_set_aside_and_their_cells_scored_again(
        reference: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A copy of the finished reference gets: a shard cut short; a shard whose score
    column became float32; a shard missing a row its footer promises; a shard of the same
    cells from another sweep (another naswot batch size: its footer's fingerprint differs);
    an empty file with a shard's name; a stray text file. The rerun sets all six aside
    (kept byte for byte in quarantine/, one line each) and scores the four shards again."""
    out = tmp_path / "copy"
    shutil.copytree(reference["out"], out)
    files = shard_files(out)
    cut, retyped, short, foreign = files[0], files[1], files[2], files[-1]
    damaged = {cut: cut.read_bytes()[: cut.stat().st_size // 2]}
    for path, change in ((retyped, lambda t: t.set_column(t.schema.get_field_index("score"), "score",
                                                              t["score"].cast(pa.float32()))),
                         (short, lambda t: t.slice(0, t.num_rows - 1))):
        sink = pa.BufferOutputStream()
        table = pq.read_table(path)
        pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), sink)
        damaged[path] = sink.getvalue().to_pybytes()
    table = pq.read_table(foreign)
    stored = Manifest.read(out)
    other = Manifest(stored.space, stored.space_settings,
                     {**stored.proxies, "naswot": {**stored.proxies["naswot"],
                                                   "params": {**stored.proxies["naswot"]["params"], "batch_size": 8}}},
                     stored.images)
    job = Job(*table.slice(0, 1).select(["space", "dataset", "seed"]).to_pylist()[0].values())
    ids = tuple(dict.fromkeys(table["arch_id"].to_pylist()))
    archs = tuple(dict.fromkeys(table["arch"].to_pylist()))
    proxies = tuple(dict.fromkeys(table["proxy"].to_pylist()))
    foreign.unlink()
    (tmp_path / "other").mkdir()
    written = ScoreStore(tmp_path / "other").write_shard(Shard(job, ids, archs, proxies), table.to_pylist(), other, {})
    damaged[foreign] = written.read_bytes()
    empty = cut.parent / "shard-0123456789abcdef.parquet"
    stray = out / "scores" / "notes.txt"
    damaged.update({empty: b"", stray: b"copied here by mistake\n"})
    for path, content in damaged.items():
        path.write_bytes(content)
    capsys.readouterr()

    result = run_sweep(make_config([*SWEEP, *ONE_PER_SHARD, "reduce=false", f"out_dir={out}"]))
    assert result.scored_shards == 4
    assert_same_as_reference(out, reference["rows"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("proxysweep: set aside")]
    assert len(lines) == 6, lines
    why = {
        cut: "unreadable Parquet",
        retyped: "its columns are not those of a scores file",
        short: f"{PROXIES - 1} rows where its 1 cells x {PROXIES} proxies need {PROXIES}",
        foreign: "scored with other settings than this folder's sweep.json (naswot)",
        empty: "unreadable Parquet",
        stray: "not a shard file of this layout",
    }
    kept = {p.relative_to(out / "quarantine"): p for p in (out / "quarantine").rglob("*")}
    for path, content in damaged.items():
        rel = path.relative_to(out / "scores")
        (line,) = [line for line in lines if f"/quarantine/{rel}.corrupt-" in line]
        assert f"({why[path]}" in line and line.endswith("; its cells are scored again"), line
        (where,) = [p for r, p in kept.items() if str(r).startswith(f"{rel}.corrupt-")]
        assert where.read_bytes() == content


# -- two drivers ----------------------------------------------------------------------
def test_a_second_driver_is_refused_and_a_killed_one_leaves_no_stale_lock(
        reference: dict[str, Any], ray_session: str, tmp_path: Path) -> None:
    """While a driver runs (stopped with SIGSTOP once it wrote a shard, so that it cannot
    finish first), a second one on the same out_dir stops with one line before touching
    anything, Hydra's record of the first run included. The first is then SIGKILLed; the
    same command runs at once (the lock died with its holder) and finishes the sweep."""
    out = tmp_path / "out"
    first = launch(tmp_path, "first", out, *ONE_PER_SHARD, "reduce=false", address=ray_session)
    try:
        wait_for_shards(out, 1, first)
        os.kill(first.proc.pid, signal.SIGSTOP)  # alive and holding the folder, for as long as it takes
        record = {p: p.read_bytes() for p in (out / ".hydra").iterdir()}  # Hydra's record of the first run
        second = launch(tmp_path, "second", out, *ONE_PER_SHARD, address="127.0.0.1:1")
        code, _, stderr = second.finish(timeout=120)
        assert first.alive()
        assert stderr.strip().splitlines() == [
            f"{ERROR}another proxysweep driver is writing to {out}; wait for it or use another out_dir"]
        assert code == 2
        assert {p: p.read_bytes() for p in (out / ".hydra").iterdir()} == record
    finally:
        first.kill()
    before = {p: p.stat().st_mtime_ns for p in shard_files(out)}
    assert 1 <= len(before) < CELLS * SEEDS
    # the killed driver's lock file is still there, but its lock died with it: taking the
    # folder (non-blocking, as the driver does) succeeds at once
    assert (out / ".lock").exists()
    store = ScoreStore(out)
    store.lock()
    store.unlock()
    result = run_sweep(make_config([*SWEEP, *ONE_PER_SHARD, "reduce=false", f"out_dir={out}"]))
    assert result.scored_shards == CELLS * SEEDS - len(before)
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert_same_as_reference(out, reference["rows"])
