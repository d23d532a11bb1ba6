"""Planning: cell selections, deterministic shards, the full NB201 plan."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from conftest import make_config

from orchestrator.errors import SweepError
from orchestrator.plan import Job, make_plan, select_positions, shard_name
from orchestrator.settings import CellSelection, load_settings
from spaces.base import CellTable

TABLE = CellTable(ids=[f"c{i}" for i in range(10)], archs=[f"a{i}" for i in range(10)])


def test_selections() -> None:
    assert list(select_positions(TABLE, CellSelection("all"))) == list(range(10))
    assert list(select_positions(TABLE, CellSelection("range", start=2, stop=5))) == [2, 3, 4]
    assert list(select_positions(TABLE, CellSelection("ids", ids=("c7", "c1")))) == [1, 7]
    sample = select_positions(TABLE, CellSelection("sample", n=4, seed=3))
    assert len(set(sample)) == 4 and list(sample) == sorted(sample)
    assert np.array_equal(sample, select_positions(TABLE, CellSelection("sample", n=4, seed=3)))
    assert not np.array_equal(sample, select_positions(TABLE, CellSelection("sample", n=4, seed=4)))


def test_selection_errors() -> None:
    with pytest.raises(SweepError, match="not in the space: c99"):
        select_positions(TABLE, CellSelection("ids", ids=("c1", "c99")))
    with pytest.raises(SweepError, match="larger than the space"):
        select_positions(TABLE, CellSelection("sample", n=11, seed=0))
    with pytest.raises(SweepError, match="past the end"):
        select_positions(TABLE, CellSelection("range", start=0, stop=11))


def test_id_file(tmp_path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# cells to score\nc3\n\nc5  # a comment\n")
    assert list(select_positions(TABLE, CellSelection("file", path=str(path)))) == [3, 5]


def test_shards_cover_the_missing_pairs_once_and_are_stable() -> None:
    plan = make_plan("s", ["d1", "d2"], [0, 1], ["p", "q"], TABLE, CellSelection("all"), shard_size=4)
    assert plan.jobs == (Job("s", "d1", 0), Job("s", "d1", 1), Job("s", "d2", 0), Job("s", "d2", 1))
    assert plan.total_cells == 40
    job = plan.jobs[0]
    shards = plan.missing(job, {})
    assert [list(s.ids) for s in shards] == [["c0", "c1", "c2", "c3"], ["c4", "c5", "c6", "c7"], ["c8", "c9"]]
    assert all(s.proxies == ("p", "q") for s in shards)
    assert [s.name for s in shards] == [s.name for s in plan.missing(job, {})]  # a pure function
    assert len({s.name for s in shards}) == 3
    # c1 has p stored, c2 has both: c1 misses q only, c2 nothing
    partial = plan.missing(job, {"c1": {"p"}, "c2": {"p", "q"}})
    assert [(list(s.ids), s.proxies) for s in partial] == [
        (["c0", "c3", "c4", "c5"], ("p", "q")), (["c6", "c7", "c8", "c9"], ("p", "q")), (["c1"], ("q",))]
    # the name is a digest of job, cells and proxies, nothing else
    assert partial[2].name == shard_name(job, ["c1"], ["q"]) != shard_name(plan.jobs[1], ["c1"], ["q"])
    assert partial[2].name.startswith("shard-") and len(partial[2].name) == 6 + 16


def _fake_imagenet16(root) -> None:
    """A data root with the shared files and a tiny ImageNet16 in the official format."""
    from conftest import DATA_ROOT

    for name in ("nb201_accuracy.parquet", "cifar10_sample.npz", "cifar100_sample.npz"):
        os.symlink(DATA_ROOT / name, root / name)
    folder = root / "ImageNet16"
    folder.mkdir()
    rng = np.random.default_rng(0)
    with open(folder / "train_data_batch_1", "wb") as fh:
        pickle.dump({"data": rng.integers(0, 256, (300, 768), dtype=np.uint8),
                     "labels": list(rng.integers(1, 121, 300))}, fh)


@pytest.mark.shared_data
def test_nb201_all_plans_every_cell_dataset_and_seed(tmp_path) -> None:
    from orchestrator.sweep import prepare

    _fake_imagenet16(tmp_path)
    cfg = make_config(["+sweep=nb201_all", f"data.root={tmp_path}", f"out_dir={tmp_path / 'out'}"])
    settings = load_settings(cfg)
    assert settings.datasets == ("cifar10", "cifar100", "ImageNet16-120")
    assert settings.seeds == (0, 1, 2)
    prepared = prepare(settings)
    prepared.store.unlock()
    assert len(prepared.plan.ids) == 15625
    assert len(prepared.plan.jobs) == 9
    assert prepared.plan.total_cells == 9 * 15625
    assert sum(len(s) for s in prepared.pending) == 9 * 15625
    assert len(prepared.pending) == 9 * 625  # shard_size 25
    assert prepared.pending_cells == 9 * 15625


@pytest.mark.parametrize("overrides, cells", [
    (["cells=sample", "cells.n=7", "cells.seed=1"], 7),
    (["cells=range", "cells.start=100", "cells.stop=130"], 30),
    (["cells=ids", "cells.ids=[0,5,15624]"], 3),
])
def test_cell_overrides(tmp_path, overrides, cells) -> None:
    from orchestrator.sweep import prepare

    cfg = make_config(["+sweep=nb201_smoke", f"out_dir={tmp_path}", *overrides])
    prepared = prepare(load_settings(cfg))
    prepared.store.unlock()
    assert len(prepared.plan.ids) == cells
