"""The README's snippets run as written: its Python blocks against a real sweep folder in
``outputs/nb201_smoke``, the plugin module as a user would save it, and every sweep and
module its commands name exists."""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_config
from torch import nn

from orchestrator.sweep import run_sweep
from orchestrator.search import run_search
from proxies import PROXIES
from proxysweep import score

README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.fixture(scope="module")
def smoke_folder(ray_session, tmp_path_factory) -> Path:
    """A folder where ``outputs/nb201_smoke`` holds a finished (small) smoke sweep."""
    cwd = tmp_path_factory.mktemp("readme")
    run_sweep(make_config(["+sweep=nb201_smoke", "cells.n=6", "sweep.seeds=[0]", "proxy.naswot.batch_size=16",
                           "proxy.grad_norm.batch_size=16", "proxy.snip.batch_size=16",
                           "proxy.jacob_cov.batch_size=16", f"out_dir={cwd / 'outputs' / 'nb201_smoke'}"]))
    run_search(make_config(["+search=best_of_n", "sweep.proxies=[params]", "search.runs=3", "search.settings.n=[2,4]",
                            "reduce=false", f"out_dir={cwd / 'outputs' / 'nb201_search'}"]))
    return cwd


def test_the_readme_has_the_snippets_this_test_runs() -> None:
    assert len(PYTHON_BLOCKS) == 5
    assert PYTHON_BLOCKS[0].startswith("# my_proxies.py")


def test_the_plugin_module_registers_a_working_proxy(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_proxies.py").write_text(PYTHON_BLOCKS[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("my_proxies")
        assert PROXIES["grad_l1"].defaults == {"batch_size": 64, "augment": True, "mode": "train"}
        # by hand: a linear model y = w.x, loss = CE over 2 classes; |dL/dw| summed
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
        with torch.no_grad():
            model[1].weight.zero_()
        x = torch.ones(2, 1, 2, 2)
        y = torch.tensor([0, 1])
        # zero weights: softmax = 1/2 each; dL/dW = mean over samples of (p - onehot) x^T,
        # (p - onehot) = (-1/2, 1/2) and (1/2, -1/2): they cancel, the gradient is 0
        assert score(model, ["grad_l1"], x, y) == {"grad_l1": 0.0}
        y = torch.tensor([0, 0])  # now both push the same way: |dL/dW| = 1/2 per entry, 8 entries
        assert score(model, ["grad_l1"], x, y)["grad_l1"] == pytest.approx(4.0)
    finally:
        PROXIES.pop("grad_l1", None)
        sys.modules.pop("my_proxies", None)


@pytest.mark.parametrize("index", [1, 2, 3, 4])
def test_python_snippets_run(smoke_folder, monkeypatch, capsys, index) -> None:
    monkeypatch.chdir(smoke_folder)
    namespace: dict = {}
    exec(compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec"), namespace)
    if index == 1:
        assert "kendall_tau" in capsys.readouterr().out
    if index == 2:
        assert len(namespace["frame"]) == namespace["table"].num_rows == 6 * 6
        assert set(namespace["cost"]["proxy"]) == {"grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"}
    if index == 3:
        assert "synflow" in capsys.readouterr().out
    if index == 4:  # 3 runs: the proxy's and the oracle's pick at n = 2 and 4, and one random cell
        assert len(namespace["found"]) == 3 * 5 and set(namespace["found"]["variant"]) == {"proxy", "oracle", "random"}


def test_the_commands_name_sweeps_and_modules_that_exist() -> None:
    for name in set(re.findall(r"\+sweep=([A-Za-z0-9_]+)", README)):
        assert (REPO / "conf" / "sweep" / f"{name}.yaml").exists(), name
    for name in set(re.findall(r"\+search=([A-Za-z0-9_]+)", README)):
        assert (REPO / "conf" / "search" / f"{name}.yaml").exists(), name
    for module in set(re.findall(r"python -m ([A-Za-z0-9_.]+)", README)):
        assert importlib.util.find_spec(module) is not None, module
