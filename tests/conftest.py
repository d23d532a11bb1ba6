"""Shared test set-up: the real data root, one Ray instance per session, Hydra composition."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import pytest
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("PROXYSWEEP_DATA", REPO.parent / "shared" / "data")).resolve()

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not (DATA_ROOT / "nb201_accuracy.parquet").exists():
        raise pytest.UsageError(
            f"the shared data is not at {DATA_ROOT}: set PROXYSWEEP_DATA to the folder that "
            "holds nb201_accuracy.parquet and the CIFAR samples"
        )


@pytest.fixture(scope="session")
def data_root() -> Path:
    return DATA_ROOT


def make_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose conf/config.yaml with Hydra overrides, as ``python -m orchestrator`` does."""
    from orchestrator.config import compose_config

    return compose_config([f"data.root={DATA_ROOT}", *overrides])


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """One real local Ray instance (2 CPUs, no dashboard) for the whole test session;
    yields its GCS address so subprocess drivers can join it. Its workers find the test
    plugins (tests/example_plugin) as a user's workers find theirs on a Ray the user
    started: on their path (drivers that start or join Ray ship them themselves)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="proxysweep", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parent)}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def nb101_cache(tmp_path_factory) -> Path:
    """A cache folder holding the NAS-Bench-101 cell table, enumerated once per session
    (about half a minute on two cores); NB101 tests point ``space.nb101.cache_dir`` here."""
    from spaces.nb101 import NB101Space

    folder = tmp_path_factory.mktemp("nb101_cache")
    NB101Space({"cache_dir": str(folder)}).cell_table()
    return folder
