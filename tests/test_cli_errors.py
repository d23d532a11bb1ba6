"""Every failure a user can cause stops ``python -m orchestrator`` with one line, before Ray.

Each run points ``cluster.address`` at a closed port: had the driver reached for Ray, it
would fail with a connection error instead of the expected message.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import DATA_ROOT, REPO


def run_cli(*overrides: str, data_root=DATA_ROOT, out_dir=None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "orchestrator", "+sweep=nb201_smoke", f"data.root={data_root}",
            "cluster.address=127.0.0.1:1", *overrides]
    if out_dir is not None:
        args.append(f"out_dir={out_dir}")
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("proxysweep: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Ray" not in proc.stdout


def test_unknown_proxy(tmp_path) -> None:
    proc = run_cli("sweep.proxies=[snip,snap]", out_dir=tmp_path)
    assert_one_line_error(proc, "unknown proxy 'snap'", "known:", "naswot")


def test_unknown_space(tmp_path) -> None:
    assert_one_line_error(run_cli("sweep.space=nb999", out_dir=tmp_path), "unknown search space 'nb999'", "nb201")


def test_missing_truth_table(tmp_path) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    proc = run_cli(data_root=empty, out_dir=tmp_path / "out")
    assert_one_line_error(proc, f"missing data file {empty / 'nb201_accuracy.parquet'}", "PROXYSWEEP_DATA")


def test_missing_images(tmp_path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(DATA_ROOT / "nb201_accuracy.parquet", root / "nb201_accuracy.parquet")
    proc = run_cli(data_root=root, out_dir=tmp_path / "out")
    assert_one_line_error(proc, f"missing data file {root / 'cifar10_sample.npz'}", "cifar-10-python.tar.gz")


def test_unknown_cell_id(tmp_path) -> None:
    assert_one_line_error(run_cli("cells=ids", "cells.ids=[3,15625]", out_dir=tmp_path), "not in the space: 15625")


def test_unknown_dataset_in_process(tmp_path, capsys) -> None:
    from conftest import make_config

    from orchestrator.sweep import main_with_errors

    cfg = make_config(["+sweep=nb201_smoke", "cluster.address=127.0.0.1:1", f"out_dir={tmp_path}", "sweep.datasets=[mnist]"])
    assert main_with_errors(cfg) == 2
    assert "no dataset 'mnist'" in capsys.readouterr().err


@pytest.mark.parametrize("override, fragment", [
    ("sweep.seeds=[0,zero]", "sweep.seeds must hold integers"),
    ("sweep.shard_size=0", "sweep.shard_size must be a positive integer"),
    ("sweep.retry_errors=maybe", "sweep.retry_errors must be true or false"),
    ("proxy.naswot.batch_size=-3", "proxy.naswot.batch_size must be a positive integer"),
    ("proxy.snip.mode=inference", "proxy.snip.mode must be train or eval"),
    ("cells.n=0", "cells.n must be a positive integer"),
    ("sweep.datasets=[cifar10,cifar10]", "sweep.datasets lists a name twice"),
    ("proxy.naswot.batch_size=6000", "batch of 6000 asked for, but cifar10 has 5085 images"),
])
def test_bad_values_in_process(tmp_path, capsys, override, fragment) -> None:
    """The same checks without a subprocess: ``main_with_errors`` is the CLI's body."""
    from conftest import make_config

    from orchestrator.sweep import main_with_errors

    cfg = make_config(["+sweep=nb201_smoke", "cluster.address=127.0.0.1:1", f"out_dir={tmp_path}", override])
    assert main_with_errors(cfg) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("proxysweep: error: ") and fragment in err[0]


def test_other_settings_into_the_same_folder_are_refused(tmp_path, capsys) -> None:
    from conftest import make_config

    from orchestrator.settings import load_settings
    from orchestrator.sweep import main_with_errors, prepare

    prepare(load_settings(make_config(["+sweep=nb201_smoke", f"out_dir={tmp_path}"]))).store.unlock()
    cfg = make_config(["+sweep=nb201_smoke", "cluster.address=127.0.0.1:1", f"out_dir={tmp_path}",
                       "proxy.naswot.batch_size=64"])
    assert main_with_errors(cfg) == 2
    err = capsys.readouterr().err
    assert "holds scores of a sweep with other settings" in err and "proxies" in err
