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


def run_cli(*overrides: str, data_root=DATA_ROOT, out_dir=None, **env: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "orchestrator", "+sweep=nb201_smoke", f"data.root={data_root}",
            "cluster.address=127.0.0.1:1", *overrides]
    if out_dir is not None:
        args.append(f"out_dir={out_dir}")
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **env})


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
    """A table that is neither under the data root nor embedded (the embedded NB201 table
    serves the default name)."""
    empty = tmp_path / "data"
    empty.mkdir()
    proc = run_cli("space.nb201.truth_file=my_nb201.parquet", data_root=empty, out_dir=tmp_path / "out")
    assert_one_line_error(proc, f"missing data file {empty / 'my_nb201.parquet'}", "PROXYSWEEP_DATA")


def test_missing_images(tmp_path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    proc = run_cli("data.images.cifar10=cifar10_sample.npz", data_root=root, out_dir=tmp_path / "out")
    assert_one_line_error(proc, f"missing data file {root / 'cifar10_sample.npz'}", "cifar-10-python.tar.gz")


def test_the_smoke_sweep_needs_no_data_root(tmp_path) -> None:
    """With an empty data root, the embedded table and image cut are found."""
    from conftest import make_config

    from orchestrator.settings import load_settings
    from orchestrator.sweep import prepare
    from benchdata.root import EMBEDDED_DIR

    empty = tmp_path / "data"
    empty.mkdir()
    settings = load_settings(make_config(["+sweep=nb201_smoke", f"data.root={empty}", f"out_dir={tmp_path / 'out'}"]))
    assert settings.images == {"cifar10": EMBEDDED_DIR / "cifar10_smoke.npz"}
    prepared = prepare(settings)
    prepared.store.unlock()
    assert prepared.pending_cells == 120 and len(prepared.pending) == 12


@pytest.mark.parametrize("plugin, fragment", [
    ("no_such_module_here", "plugin no_such_module_here does not import: ModuleNotFoundError"),
    ("example_plugin.registers_nothing", "plugin example_plugin.registers_nothing registers no proxy and no space"),
    ("example_plugin.clash", "plugin example_plugin.clash: proxy 'synflow' is registered twice (by proxies.gradient and example_plugin.clash)"),
])
def test_a_bad_plugin(tmp_path, plugin, fragment) -> None:
    proc = run_cli(f"plugins=[{plugin}]", out_dir=tmp_path / "out", PYTHONPATH=str(REPO / "tests"))
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "out").exists()


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
    ("proxy.naswot.batch_size=6000", "batch of 6000 asked for, but cifar10 has 1000 images"),
    ("proxy.jacob_cov.k=oops", "proxy.jacob_cov.k must be a number; got 'oops'"),
    ("+proxy.naswot.bach_size=3", "proxy.naswot.bach_size is not a setting of naswot (its settings: augment, batch_size, mode)"),
    ("sweep.proxies=[ntk_cond] proxy.ntk_cond.method=fast", "proxy.ntk_cond.method must be one of jacobian, layer_local"),
    ("proxy.naswot.augment=1", "proxy.naswot.augment must be true or false"),
    ("sweep.space=nb101 sweep.proxies=[ntk_cond]", "proxy.ntk_cond.network=thin: NAS-Bench-101 builds no thin network"),
    ("sweep.proxies=[linear_regions] proxy.linear_regions.batch_size=400",
     "proxy.linear_regions: 3 disjoint batches of 400 asked for, but cifar10 has 1000 images: lower "
     "proxy.linear_regions.batch_size or repeat"),
    ("+space.nb201.width=3", "space.nb201.width is not a setting of nb201"),
    ("metrics.top_k_percent=[0]", "metrics.top_k_percent must be a percentage in (0, 100]"),
    ("cluster.num_actors=0", "cluster.num_actors must be a positive integer"),
    ("+space.nb201.proxy_constants.epsinsa.weights=[1,2]", "space.nb201.proxy_constants.epsinsa: unknown proxy 'epsinsa'"),
    ("+space.nb201.proxy_constants.naswot.batch_size=3",
     "space.nb201.proxy_constants.naswot.batch_size: naswot takes no setting 'batch_size' from the space"),
    ("sweep.proxies=[epsinas] space.nb201.proxy_constants.epsinas.weights=[1]",
     "proxy.epsinas.weights must be two finite numbers [low,high]; got [1]"),
    # a plugin's proxy is checked against its own defaults, as a built-in is
    ("plugins=[example_plugin.proxies] sweep.proxies=[scaled_params] proxy.scaled_params.scale=oops",
     "proxy.scaled_params.scale must be a number; got 'oops'"),
    ("plugins=[example_plugin.proxies] sweep.proxies=[scaled_params] +proxy.scaled_params.factor=2",
     "proxy.scaled_params.factor is not a setting of scaled_params (its settings: scale)"),
])
def test_bad_values_in_process(tmp_path, capsys, override, fragment) -> None:
    """The same checks without a subprocess: ``main_with_errors`` is the CLI's body."""
    from conftest import make_config

    from orchestrator.sweep import main_with_errors

    cfg = make_config(["+sweep=nb201_smoke", "cluster.address=127.0.0.1:1", f"out_dir={tmp_path}", *override.split()])
    assert main_with_errors(cfg) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("proxysweep: error: ") and fragment in err[0]


def test_the_config_holds_the_registry_and_nothing_else() -> None:
    """One source: the composed ``proxy`` group is built from the registry, so it names
    every registered proxy, with its registered defaults, and nothing else (the same for
    the spaces' ``space`` group)."""
    from conftest import make_config
    from omegaconf import OmegaConf

    from proxies import PROXIES
    from spaces import SPACES

    cfg = make_config([])
    proxies = OmegaConf.to_container(cfg.proxy, resolve=True)
    assert set(proxies) == set(PROXIES)
    for name, entry in PROXIES.items():
        assert proxies[name] == {k: (list(v) if isinstance(v, tuple) else v) for k, v in entry.defaults.items()}, name
    assert set(cfg.space) == set(SPACES)


def test_other_settings_into_a_folder_with_scores_are_refused(tmp_path, capsys) -> None:
    """Changing what stored scores depend on names the setting; nothing is written."""
    from conftest import make_config

    from orchestrator.settings import load_settings
    from handmade import store_pending

    from orchestrator.sweep import main_with_errors, prepare

    prepared = prepare(load_settings(make_config(["+sweep=nb201_smoke", f"out_dir={tmp_path}",
                                                  "sweep.proxies=[naswot]", "sweep.seeds=[0]"])))
    prepared.store.unlock()
    store_pending(prepared)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    cfg = make_config(["+sweep=nb201_smoke", "cluster.address=127.0.0.1:1", f"out_dir={tmp_path}",
                       "sweep.proxies=[naswot]", "proxy.naswot.batch_size=64"])
    assert main_with_errors(cfg) == 2
    err = capsys.readouterr().err
    assert "proxy.naswot.batch_size: stored 128, now 64" in err and "choose another out_dir" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
