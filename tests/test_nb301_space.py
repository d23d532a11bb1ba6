"""NAS-Bench-301: the truth cells, random cells for cells=sample, any cell by id, every proxy
on an NB301 network, bad input as one line before Ray, and a real tiny sweep on Ray."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch
from conftest import DATA_ROOT, REPO, data_file, library_on_one_cell, make_config
from test_cli_errors import assert_one_line_error

import proxies
from orchestrator.errors import SweepError
from orchestrator.scoring import Worker, score_cell
from orchestrator.settings import load_settings
from orchestrator.store import SCHEMA
from orchestrator.sweep import run_sweep
from spaces import SPACES, make_space
from spaces.base import NetworkVariant, require_variant
from spaces.darts.genotype import COMPACT_OPS, Genotype, parse_genotype
from spaces.darts.nb301 import check_nb301
from spaces.darts.network import TenasDartsNetwork
from test_darts_genotype import DARTS_V2

# row naslib_idx 0 of nb301_naslib_sample.parquet, read off the file
ROW0_COMPACT = ("[[(1, 0), (0, 5), (1, 2), (0, 0), (0, 6), (3, 1), (2, 4), (1, 3)], "
                "[(0, 6), (1, 6), (1, 3), (0, 4), (3, 4), (1, 1), (0, 6), (1, 0)]]")
ROW0_ACCURACY = 93.43141389733916
SMOKE = "data.images.cifar10=cifar10_smoke.npz"  # the embedded images: no shared data needed


@pytest.fixture(scope="module")
def space():
    return make_space("nb301", data_root=DATA_ROOT)


def test_registered_by_its_subpackage() -> None:
    assert SPACES["nb301"].module == "spaces.darts.nb301"
    assert SPACES["nb301"].defaults["channels"] == 32 and SPACES["nb301"].defaults["layers"] == 8


def test_the_listed_cells_are_the_truth_cells_in_naslib_order(space) -> None:
    table = space.cells()
    rows = pq.read_table(data_file("nb301_naslib_sample.parquet")).sort_by("naslib_idx").to_pylist()
    assert len(table) == 725 and list(table.ids) == list(table.archs)
    assert list(table.ids) == [parse_genotype(r["genotype"]).to_id() for r in rows]
    assert table.ids[0] == parse_genotype(ROW0_COMPACT).to_id()
    truth = space.ground_truth("cifar10", "val_accuracy")
    assert truth.column("arch_id").to_pylist() == list(table.ids)
    assert truth.column("accuracy")[0].as_py() == ROW0_ACCURACY
    assert space.truth_columns() == ["val_accuracy"]
    with pytest.raises(ValueError, match="no truth column 'test_accuracy'"):
        space.ground_truth("cifar10", "test_accuracy")
    with pytest.raises(ValueError, match="trained on \\['cifar10'\\] only"):
        space.ground_truth("cifar100", "val_accuracy")


def test_random_cells_are_valid_distinct_seeded_and_spread(space) -> None:
    """cells=sample: DARTS-space cells (NB301's rules hold), distinct, the same for a seed;
    over 2,000 cells (16,000 operations per cell type) each of the 7 operations is drawn
    about 1/7 of the time, and node 3 reads each of its 5 possible inputs about 2/5 of the
    time (two distinct of five)."""
    drawn = space.sample_cells(2000, 0)
    assert len(set(drawn.ids)) == 2000 and list(drawn.ids) == list(drawn.archs)
    assert list(space.sample_cells(2000, 0).ids) == list(drawn.ids)
    assert list(space.sample_cells(5, 1).ids) != list(drawn.ids[:5])
    ops: Counter = Counter()
    node3: Counter = Counter()
    for cell_id in drawn.ids:
        g = check_nb301(parse_genotype(cell_id))
        ops.update(op for op, _ in g.normal + g.reduce)
        node3.update(i for _, i in g.normal[6:])
    assert set(ops) == set(COMPACT_OPS)
    assert all(abs(n / 32_000 - 1 / 7) < 0.01 for n in ops.values()), ops
    assert set(node3) == {0, 1, 2, 3, 4} and all(abs(n / 2000 - 2 / 5) < 0.05 for n in node3.values()), node3
    with pytest.raises(ValueError, match="draws 1 to 10,000,000 random cells"):
        space.sample_cells(10**12, 0)


def test_any_cell_by_id_in_any_form(space) -> None:
    g = parse_genotype(ROW0_COMPACT)
    forms = [g.to_id(), g.to_string(), ROW0_COMPACT]
    assert list(space.cells_of(forms).ids) == [g.to_id()] * 3


@pytest.mark.parametrize("text, fragment", [
    (ROW0_COMPACT.replace("(1, 0), (0, 5)", "(0, 0), (0, 5)"), "node 0 of its normal cell reads input 0 twice"),
    (parse_genotype(ROW0_COMPACT).to_string().replace("('max_pool_3x3', 1)", "('none', 1)", 1),
     "operation 'none' in its normal cell"),
    (parse_genotype(ROW0_COMPACT).to_string().replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[3, 4, 5]"),
     "concatenates [3, 4, 5], not [2, 3, 4, 5]"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "has 1 nodes, not 4"),
])
def test_cells_outside_the_darts_space_are_refused(space, text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        space.cells_of([ROW0_COMPACT, text])
    assert str(err.value).startswith("cell 2 of the list: not a NAS-Bench-301 cell") and fragment in str(err.value)


@pytest.mark.parametrize("change, fragment", [
    ("swap", "rows 0 and 1 hold the same cell (up to the order of a node's two operations)"),
    ("compact", "row 0: its compact form"),
    ("malformed", "row 0: malformed Genotype string"),
    ("no_genotype", "has no column 'genotype'"),
])
def test_bad_truth_tables(tmp_path, change: str, fragment: str) -> None:
    rows = pq.read_table(data_file("nb301_naslib_sample.parquet")).to_pylist()[:3]
    g = parse_genotype(rows[0]["genotype"])
    if change == "swap":  # row 1 becomes row 0 with the two pairs of a node swapped
        swapped = (g.normal[1], g.normal[0], *g.normal[2:])
        rows[1] = {**rows[0], "naslib_idx": 1, "compact": None,
                   "genotype": Genotype(swapped, g.normal_concat, g.reduce, g.reduce_concat).to_string()}
    elif change == "compact":
        rows[0]["compact"] = rows[1]["compact"]
    elif change == "malformed":
        rows[0]["genotype"] = rows[0]["genotype"][:-5]
    table = pa.Table.from_pylist(rows)
    if change == "no_genotype":
        table = table.drop_columns(["genotype"])
    pq.write_table(table, tmp_path / "mine.parquet")
    mine = make_space("nb301", {"truth_file": "mine.parquet"}, tmp_path)
    with pytest.raises(ValueError) as err:
        mine.cells()
    assert fragment in str(err.value) and "\n" not in str(err.value)


# --- bad input through the command line: one line, before Ray ---------------------------------
def run_nb301(*overrides: str, tmp_path) -> subprocess.CompletedProcess:
    """``python -m orchestrator +sweep=nb301_sample`` with Ray's address on a closed port: had
    the driver reached for Ray, it would fail with a connection error instead."""
    args = [sys.executable, "-m", "orchestrator", "+sweep=nb301_sample", f"data.root={DATA_ROOT}", SMOKE,
            "cluster.address=127.0.0.1:1", f"out_dir={tmp_path / 'out'}", *overrides]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("overrides, fragments", [
    (["sweep.proxies=[params,epsinas]"],
     ["proxy.epsinas.weights is not set and search space nb301 has no value for it"]),
    (["sweep.datasets=[cifar100]"], ["space nb301 has no dataset 'cifar100'"]),
    (["cells=ids", "cells.ids=[nonsense]"], ["cell 1 of the list: malformed genotype id 'nonsense'"]),
    (["cells=ids", "cells.ids=['" + ROW0_COMPACT.replace("(1, 3)]", "(1, 7)]") + "']"],
     ["cell 1 of the list", "op index 7 out of range 0..6"]),
    (["cells=ids", "cells.ids=['" + ROW0_COMPACT.replace("(1, 3)]", "(5, 3)]") + "']"],
     ["cell 1 of the list", "node 3 of the normal cell reads input 5, out of range"]),
    (["cells=ids", "cells.ids=['" + parse_genotype(ROW0_COMPACT).to_id().replace("sep_conv_3x3", "conv_9x9") + "']"],
     ["cell 1 of the list", "unknown operation 'conv_9x9' in the normal cell"]),
    (["cells=ids", "cells.ids=['" + ROW0_COMPACT + "','" + parse_genotype(ROW0_COMPACT).to_id() + "']"],
     ["names cell normal=", "twice"]),
    (["cells.n=20000000"], ["nb301 draws 1 to 10,000,000 random cells"]),
])
def test_bad_input_is_one_line_before_ray(tmp_path, overrides: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run_nb301(*overrides, tmp_path=tmp_path), *fragments)


def test_a_file_of_genotypes_is_read_in_any_form(tmp_path) -> None:
    """cells=file: NASLib compact and Genotype strings, one per line; the unknown operation of
    line 2 is reported by its place in the list."""
    ids = tmp_path / "cells.txt"
    bad = parse_genotype(ROW0_COMPACT).to_string().replace("'dil_conv_3x3'", "'dil_conv_9x9'")
    ids.write_text(f"# two cells\n{ROW0_COMPACT}\n{bad}\n")
    assert_one_line_error(run_nb301("cells=file", f"cells.path={ids}", tmp_path=tmp_path),
                          "cell 2 of the list: unknown operation 'dil_conv_9x9' in the normal cell")


# --- other networks of a cell (TE-NAS's thin ones) ---------------------------------------------
TENAS_NTK = NetworkVariant(channels=1, cells_per_stage=1, depth=2, stem=True)
TENAS_REGIONS = NetworkVariant(channels=1, cells_per_stage=1, depth=2, stem=False)


def test_tenas_thin_networks_of_the_darts_space_by_hand(space) -> None:
    """TE-NAS's DARTS-space networks for DARTS-V2 (prune_tenas.py: C=1, N=1, depth 2, stem
    multiplier 1; the NTK's with the stem, the regions' without), by hand:
      stem conv 3 -> 1 3x3 (27) + BN(1) (2) = 29
      cell 0, normal, C=1, inputs 1 and 1: preprocessing 2 x (1*1 + 2) = 6; DARTS-V2's normal
        operations with affine BatchNorm 11C^2 + 121C = 132 (test_darts_network) -> 138
      cell 1, reduction, C=2, inputs 1 and 4 channels: (1*2 + 4) + (4*2 + 4) = 18; its max
        pools and node-input skips have no parameters -> 18
      final BN(8) (16), Linear 8 -> 10 (90)
    NTK network 29 + 138 + 18 + 16 + 90 = 291; regions network 291 - 29 = 262, and it reads
    one-channel 3x3 crops (the reduction cell halves an odd side)."""
    spec = space.parse(DARTS_V2)
    ntk = space.build_variant(spec, 10, TENAS_NTK)
    regions = space.build_variant(spec, 10, TENAS_REGIONS)
    assert isinstance(ntk, TenasDartsNetwork)
    assert sum(p.numel() for p in ntk.parameters()) == 291
    assert sum(p.numel() for p in regions.parameters()) == 262
    assert [c.reduction for c in ntk.cells] == [False, True]
    assert ntk(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert regions(torch.randn(5, 1, 3, 3)).shape == (5, 10)
    # N=2, all 6 cells: normal, normal, reduction, normal, reduction, normal
    deep = space.build_variant(spec, 10, NetworkVariant(channels=2, cells_per_stage=2))
    assert [c.reduction for c in deep.cells] == [False, False, True, False, True, False]


def test_the_benchmark_shape_is_the_benchmark_network_for_both_operation_sets(space) -> None:
    spec = space.parse(ROW0_COMPACT)
    torch.manual_seed(3)
    built = space.build(spec, 10).state_dict()
    for ops in ("benchmark", "zero_cost_nas"):
        torch.manual_seed(3)
        variant = space.build_variant(spec, 10, NetworkVariant(ops=ops)).state_dict()
        assert built.keys() == variant.keys() and all(torch.equal(built[k], variant[k]) for k in built)


@pytest.mark.parametrize("variant, message", [
    (NetworkVariant(channels=1, ops="zero_cost_nas"), "zero-cost-nas's network in the benchmark's shape only"),
    (NetworkVariant(channels=1), "needs cells_per_stage"),
    (NetworkVariant(channels=1, cells_per_stage=1, depth=4), "depth 4 is more than the 3 cells"),
])
def test_variants_nb301_cannot_build(space, variant: NetworkVariant, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        require_variant(space, variant)


def test_the_nb301_sweeps_give_tenas_its_darts_settings_and_a_bad_one_stops_before_ray() -> None:
    settings = load_settings(make_config(["+sweep=nb301_fidelity"]), check_files=False)
    params = {p.name: p.params for p in settings.proxies}
    assert {k: params["ntk_cond"][k] for k in ("channels", "cells_per_stage", "depth", "stem", "batch_size")} == \
        {"channels": 1, "cells_per_stage": 1, "depth": 2, "stem": True, "batch_size": 14}
    assert {k: params["linear_regions"][k] for k in ("channels", "cells_per_stage", "depth", "stem", "batch_size")} == \
        {"channels": 1, "cells_per_stage": 1, "depth": 2, "stem": False, "batch_size": 1600}
    assert "epsinas" not in params
    with pytest.raises(SweepError) as caught:
        load_settings(make_config(["+sweep=nb301_fidelity", "proxy.ntk_cond.depth=5"]), check_files=False)
    assert str(caught.value).startswith("proxy.ntk_cond.network=thin: depth 5 is more than the 3 cells")


# --- every proxy on an NB301 network ---------------------------------------------------------
def test_every_proxy_runs_on_an_nb301_network() -> None:
    """Every registered proxy, through the scorer's per-cell path, on a truth cell of a small
    NB301 network (C=8, 5 cells: the default network's shape, narrower and shallower),
    with small batches: a finite score each, the same twice. epsinas runs given a weight
    pair of the user's (its reference has none for NB301; without one the sweep stops
    before Ray, test_bad_input_is_one_line_before_ray)."""
    torch.set_num_threads(1)
    space = make_space("nb301", {"channels": 8, "layers": 5}, DATA_ROOT)
    small = {"zen": {"batch_size": 4, "repeat": 2},
             "xi_gsnr": {"num_batches": 2}, "zico": {"num_batches": 2},
             "epsinas": {"weights": [1.0e-4, 10.0]},
             # TE-NAS's DARTS-space networks (nb301_fidelity's settings), smaller batches
             "ntk_cond": {"batch_size": 14, "channels": 1, "cells_per_stage": 1, "depth": 2, "stem": True},
             "linear_regions": {"batch_size": 300, "forward_batch": 100, "channels": 1, "cells_per_stage": 1,
                                "depth": 2, "stem": False}}
    runs, job = library_on_one_cell("nb301", small)
    assert len(runs) >= 20
    worker = Worker("test", torch.device("cpu"), "localhost")
    cell_id = space.cells().ids[0]
    first = score_cell(space, job, cell_id, cell_id, runs, worker)
    assert {r["proxy"]: r["status"] for r in first} == {r.name: "ok" for r in runs}, [r["error"] for r in first]
    again = score_cell(space, job, cell_id, cell_id, runs[:4], worker)
    assert {r["proxy"]: r["score"] for r in again} == {r["proxy"]: r["score"] for r in first[:4]}
    with pytest.raises(ValueError, match="search space nb301 has no value for it"):
        proxies.get_proxy("epsinas").settings(None, "nb301", SPACES["nb301"].defaults["proxy_constants"])


# --- a real sweep --------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_nb301_sweeps_on_ray(ray_session, tmp_path) -> None:
    """Three truth cells (params, synflow) and two random cells without truth (params), real
    Ray and Parquet; params of the truth cells by the network, metrics against val_accuracy;
    the sweep of random cells reports no correlation, with a note, instead of failing."""
    common = ["sweep.seeds=[0]", "cluster.num_actors=1", "sweep.shard_size=2", SMOKE]
    truth = run_sweep(make_config(["+sweep=nb301_fidelity", "cells.n=3", "cells.seed=1",
                                   "sweep.proxies=[params,synflow]", *common, f"out_dir={tmp_path / 'truth'}"]))
    rows = pads.dataset(str(tmp_path / "truth" / "scores"), format="parquet", schema=SCHEMA).to_table().to_pylist()
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows), rows
    assert {r["space"] for r in rows} == {"nb301"}
    space = make_space("nb301", data_root=DATA_ROOT)
    listed = set(space.cells().ids)
    for r in rows:
        assert r["arch_id"] in listed and r["arch"] == r["arch_id"]
        if r["proxy"] == "params":
            assert r["score"] == sum(p.numel() for p in space.build(space.parse(r["arch"]), 10).parameters())
    spearman = [m for m in truth.reduction.metrics.to_pylist() if m["metric"] == "spearman" and m["aggregate"] == "seed"]
    assert {m["proxy"] for m in spearman} == {"params", "synflow"}
    assert all(m["truth"] == "val_accuracy" and m["n_cells"] == 3 for m in spearman)
    assert "nb301" in (tmp_path / "truth" / "report.md").read_text()

    drawn = run_sweep(make_config(["+sweep=nb301_sample", "cells.n=2", "sweep.proxies=[params]", *common,
                                   f"out_dir={tmp_path / 'sample'}"]))
    rows = pads.dataset(str(tmp_path / "sample" / "scores"), format="parquet", schema=SCHEMA).to_table().to_pylist()
    assert [r["arch_id"] for r in rows] == list(space.sample_cells(2, 0).ids)
    assert all(r["status"] == "ok" for r in rows)
    assert drawn.reduction is not None
