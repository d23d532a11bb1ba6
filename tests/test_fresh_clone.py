"""A new user's first minutes: ``git clone`` into a folder with no shared data beside it,
then the README's first command, with the embedded defaults only."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import REPO

from orchestrator.cluster import AUTH_OFF_WARNING


def readme_first_command() -> str:
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert block is not None
    return block.group(1).splitlines()[0]


@pytest.mark.slow
def test_a_fresh_clone_runs_the_readme_first_command(tmp_path) -> None:
    """Setup as written (a new .venv, pinned requirements); the sweep as written, shrunk to
    6 cells and one seed with two more overrides so that the test stays short. Ray's token
    authentication as a user gets it (on); no data root, no PROXYSWEEP_DATA."""
    command = readme_first_command()
    assert command == "bash setup.sh && .venv/bin/python -m orchestrator +sweep=nb201_smoke"
    clone = tmp_path / "proxysweep"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
    assert not (tmp_path / "shared").exists()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROXYSWEEP_DATA", "RAY_AUTH_MODE", "VIRTUAL_ENV", "PYTHONPATH") and not k.startswith("PYTEST")}
    done = subprocess.run(["bash", "-c", f"{command} cells.n=6 'sweep.seeds=[0]'"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    out = clone / "outputs" / "nb201_smoke"
    assert (out / "report.md").read_text().startswith("# proxysweep report: nb201_smoke")
    assert "kendall_tau" in done.stdout and f"report:  {out / 'report.md'}" in done.stdout
    assert "the dashboard asks for Ray's auth token" in done.stdout
    assert AUTH_OFF_WARNING not in done.stdout + done.stderr
