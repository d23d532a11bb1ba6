"""Shared test set-up: the real data root, one Ray instance per session, Hydra composition.

The data root is the project's shared reference data (``../shared/data``, or
``$PROXYSWEEP_DATA``). Without it (a fresh clone elsewhere) the tables come from the
embedded defaults, and the tests that need the shared CIFAR samples (marked
``shared_data``) are skipped with the reason; under CI (``CI`` set, as ``.ci/run`` does)
they fail instead, since CI always has the shared data beside the checkout.
"""
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


#: the shared samples no embedded default stands in for
SHARED_SAMPLES = ("cifar10_sample.npz", "cifar100_sample.npz")
HAVE_SHARED = all((DATA_ROOT / name).is_file() for name in SHARED_SAMPLES)
NO_SHARED = (f"the project's shared CIFAR samples are not in {DATA_ROOT} (set PROXYSWEEP_DATA to the folder "
             "that holds cifar10_sample.npz and cifar100_sample.npz)")


def _missing_shared_data() -> None:
    if os.environ.get("CI"):
        pytest.fail(NO_SHARED)
    pytest.skip(NO_SHARED)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("shared_data") and not HAVE_SHARED:
        _missing_shared_data()


def data_file(name: str) -> Path:
    """A file of the data root, or its embedded default; skips (fails under CI) if neither."""
    from benchdata.root import find_data

    path = find_data(DATA_ROOT, name)
    if not path.exists():
        _missing_shared_data()
    return path


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
    from spaces.nb101.space import NB101Space

    folder = tmp_path_factory.mktemp("nb101_cache")
    NB101Space({"cache_dir": str(folder)}).cell_table()
    return folder


def library_on_one_cell(space: str, small: dict, constants: dict | None = None):
    """Every built-in proxy as a ProxyRun (``small``'s settings over its defaults, batches of
    16 where it reads one, meco's own) and the job inputs of seed 0 on the CIFAR-10 cut:
    what the tests that run the whole library on one small network of a space score with."""
    import proxies
    from benchdata.batches import draw_batch
    from benchdata.images import read_images
    from orchestrator.plan import Job
    from orchestrator.scoring import JobInputs
    from orchestrator.settings import ProxyRun

    runs = []
    for name, proxy in sorted(proxies.PROXIES.items()):
        if not proxy.module.startswith("proxies."):  # a test plugin another test registered
            continue
        overrides = dict(small.get(name, {}))
        if "batch_size" in proxy.defaults and "batch_size" not in overrides and name != "meco":
            overrides["batch_size"] = 16
        runs.append(ProxyRun(name, proxy.settings(overrides, space, constants)))
    x, y = read_images(data_file("cifar10_smoke.npz"), "cifar10")
    specs = sorted({s for r in runs for s in r.batches})
    job = JobInputs(Job(space, "cifar10", 0), 10, (3, 32, 32), {s: draw_batch(x, y, "cifar10", 0, s) for s in specs})
    return runs, job
