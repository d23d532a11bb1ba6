"""``python -m orchestrator.data check``: what is present, what comes from the embedded
defaults, what each sweep lacks, on the shared data root, an empty root and a root with a
user's own table; configs composed by the real Hydra composer."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import DATA_ROOT, REPO

from orchestrator.data.__main__ import main
from benchdata.root import EMBEDDED_DIR

FILE_LINE = re.compile(r"^  (\S+)\s+(data root|embedded|path|missing)\s+(.*)$")
SWEEP_NAMES = sorted(p.stem for p in (REPO / "conf" / "sweep").glob("*.yaml"))


def report(text: str) -> tuple[str, dict[str, tuple[str, str]], dict[str, str]]:
    """(the data root line, {file: (where, detail)}, {sweep: verdict}) of check's output."""
    head, files_part = text.split("\ndata files:\n")
    files_part, sweeps_part = files_part.split("\nsweeps:\n")
    files = {}
    for line in files_part.strip("\n").splitlines():
        m = FILE_LINE.match(line)
        assert m, line
        files[m.group(1)] = (m.group(2), m.group(3))
    sweeps = {}
    for line in sweeps_part.strip("\n").splitlines():
        name, verdict = line.strip().split(None, 1)
        sweeps[name] = verdict
    return head.splitlines()[0], files, sweeps


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["check", *argv])
    out = capsys.readouterr()
    assert out.err == ""
    return code, out.out


@pytest.mark.shared_data
def test_with_the_shared_data_root(capsys) -> None:
    code, text = run(capsys, f"data.root={DATA_ROOT}")
    root_line, files, sweeps = report(text)
    assert root_line == f"data root: {DATA_ROOT} (exists; from the data.root override)"
    for name in ("nb201_accuracy.parquet", "nb101_sample_accuracy.parquet", "cifar10_sample.npz", "cifar100_sample.npz"):
        assert files[name] == ("data root", str(DATA_ROOT / name))
    assert files["cifar10_smoke.npz"] == ("embedded", str(EMBEDDED_DIR / "cifar10_smoke.npz"))
    assert files["ImageNet16"][0] == "missing" and "ImageNet16-120 images" in files["ImageNet16"][1]
    assert sorted(sweeps) == SWEEP_NAMES  # no +sweep: every sweep is judged
    assert sweeps["nb201_all"] == "lacks ImageNet16"
    assert sweeps["nb201_smoke"] == "ready (embedded: cifar10_smoke.npz)"
    assert sweeps["nds_sample"] == "lacks DARTS.json"  # the NDS files are not in the shared data
    assert all(sweeps[n] == "ready" for n in SWEEP_NAMES if n not in ("nb201_all", "nb201_smoke", "nds_sample"))
    assert code == 1  # nb201_all cannot run

    code, text = run(capsys, "+sweep=nb201_smoke", f"data.root={DATA_ROOT}")
    assert code == 0
    assert report(text)[2] == {"nb201_smoke": "ready (embedded: cifar10_smoke.npz)"}
    code, text = run(capsys, "+sweep=nb201_smoke", f"data.root={DATA_ROOT}", "--all-sweeps")
    assert code == 1 and sorted(report(text)[2]) == SWEEP_NAMES


def test_with_an_empty_root_the_embedded_defaults_serve_the_smoke_sweep(tmp_path, capsys) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    code, text = run(capsys, f"data.root={root}")
    assert code == 1
    _, files, sweeps = report(text)
    for name in ("nb201_accuracy.parquet", "nb101_sample_accuracy.parquet", "cifar10_smoke.npz"):
        assert files[name] == ("embedded", str(EMBEDDED_DIR / name))
    assert files["cifar100_sample.npz"] == (
        "missing", ("cifar100 images: python -m orchestrator.data fetch cifar100, "
                    "then add data.images.cifar100=cifar-100-python"))
    assert files["cifar10_sample.npz"][0] == "missing"
    assert sweeps["nb201_smoke"] == "ready (embedded: nb201_accuracy.parquet, cifar10_smoke.npz)"
    assert sweeps["nb201_all"] == "lacks cifar10_sample.npz, cifar100_sample.npz, ImageNet16"
    assert sweeps["nb201_fidelity500"] == "lacks cifar10_sample.npz, cifar100_sample.npz"
    assert sweeps["nb101_sample"] == "lacks cifar10_sample.npz"  # its table is embedded, its images are not

    assert run(capsys, "+sweep=nb201_smoke", f"data.root={root}")[0] == 0
    code, text = run(capsys, "+sweep=nb201_all", f"data.root={root}")
    assert code == 1
    assert report(text)[2] == {"nb201_all": "lacks cifar10_sample.npz, cifar100_sample.npz, ImageNet16"}

    code, text = run(capsys, "+sweep=nb201_smoke", f"data.root={tmp_path / 'absent'}")
    assert code == 0 and f"data root: {tmp_path / 'absent'} (does not exist;" in text


def test_a_users_own_files_win_over_the_embedded_ones(tmp_path, capsys) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    shutil.copy(EMBEDDED_DIR / "nb201_accuracy.parquet", root / "nb201_accuracy.parquet")
    (root / "cifar-10-batches-py").mkdir()  # what fetch cifar10 unpacks
    code, text = run(capsys, "+sweep=nb201_smoke", f"data.root={root}", "data.images.cifar10=cifar-10-batches-py")
    assert code == 0
    _, files, sweeps = report(text)
    assert files["nb201_accuracy.parquet"] == ("data root", str(root / "nb201_accuracy.parquet"))
    assert files["cifar-10-batches-py"] == ("data root", str(root / "cifar-10-batches-py"))
    assert sweeps == {"nb201_smoke": "ready"}
    # a converted NB101 table named by the space setting: missing, with the converter to make it
    code, text = run(capsys, "+sweep=nb101_sample", f"data.root={root}", "data.images.cifar10=cifar-10-batches-py",
                     "space.nb101.truth_file=nb101_only108.parquet")
    assert code == 1
    _, files, sweeps = report(text)
    assert files["nb101_only108.parquet"] == (
        "missing", f"python -m orchestrator.data convert nb101 nasbench_only108.tfrecord {root / 'nb101_only108.parquet'}")
    assert sweeps == {"nb101_sample": "lacks nb101_only108.parquet"}


@pytest.mark.shared_data  # nb201_fidelity300 is ready only with the shared samples
def test_config_errors(tmp_path, capsys) -> None:
    # an override that fits some sweeps and not others: those are reported, not fatal
    code, text = run(capsys, f"data.root={DATA_ROOT}", "sweep.datasets=[cifar100]")
    sweeps = report(text)[2]
    assert code == 1
    assert sweeps["nb101_all"].startswith("cannot run: space nb101 has no dataset 'cifar100'")
    assert sweeps["nb201_fidelity300"] == "ready"
    # the same for the one sweep asked about, or a bad override, or an unknown sweep: one line, status 2
    for argv in (["+sweep=nb101_all", "sweep.datasets=[cifar100]"], ["no_such_key.x=1"], ["+sweep=nope"]):
        assert main(["check", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("proxysweep: error: "), err


def test_the_root_from_the_environment_as_a_subprocess(tmp_path) -> None:
    env = {**os.environ, "PROXYSWEEP_DATA": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.data", "check", "+sweep=nb201_smoke"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    root_line, _, sweeps = report(proc.stdout)
    assert root_line == f"data root: {tmp_path} (exists; from $PROXYSWEEP_DATA)"
    assert sweeps == {"nb201_smoke": "ready (embedded: nb201_accuracy.parquet, cifar10_smoke.npz)"}
