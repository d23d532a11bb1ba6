"""The shipped sweeps compose and pass the checks that run before Ray."""
from conftest import make_config

from orchestrator.settings import CellSelection, load_settings


def test_smoke_sweep_composes_and_checks() -> None:
    settings = load_settings(make_config(["+sweep=nb201_smoke"]))
    assert settings.name == "nb201_smoke"
    assert settings.cells == CellSelection("sample", n=60, seed=0)
    assert settings.seeds == (0, 1)
    assert [p.name for p in settings.proxies] == ["grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params"]
