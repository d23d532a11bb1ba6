"""Zero-Cost-PT on NB201 (searches/zero_cost_pt.py): the perturbation stage on proxies
whose answer is known by hand (registered for the test, read the supernet's mixing
weights), the validation stage's pick, and a tiny real run with naswot on CIFAR-10."""
from __future__ import annotations

import functools
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import DATA_ROOT, data_file

from benchdata.images import read_images
from proxies import PROXIES, ScoringContext, batch_spec, get_proxy, register
from searches import SearchInputs, SearchRun, SearchTable, get_search
from searches.zero_cost_pt import Scorer, validate
from spaces import make_space
from spaces.nb201.network import OPS, NB201Network
from spaces.nb201.space import format_cell
from spaces.nb201.supernet import NB201Supernet

pytestmark = pytest.mark.shared_data

#: the operation the hand-made proxies favour on each edge
TARGET = ("nor_conv_1x1", "skip_connect", "nor_conv_3x3", "avg_pool_3x3", "none", "nor_conv_3x3")
CALLS: list[dict[str, Any]] = []


def preference(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """On the supernet: sum over edges of the weight of the edge's TARGET operation, so
    removing TARGET[e] lowers it most (by softmax(alpha)[e, TARGET[e]], about 0.2; removing
    another leaves it unchanged). On a cell's own network: its parameter count. Records
    what it was given."""
    x, _ = ctx.batch(batch_spec(params))
    model = ctx.model
    if isinstance(model, NB201Supernet):
        weights = model.mixing.detach().clone()
        CALLS.append({"weights": weights, "batch": x})
        return float(sum(weights[e, OPS.index(op)] for e, op in enumerate(TARGET)))
    CALLS.append({"params": sum(p.numel() for p in model.parameters()), "batch": x})
    return float(sum(p.numel() for p in model.parameters()))


@pytest.fixture
def hand_proxies() -> Iterator[None]:
    """``prefers`` (higher is better) and ``dislikes`` (its negation, lower is better)."""
    defaults = {"batch_size": 4, "augment": False, "mode": "train"}
    register("prefers", defaults=defaults)(preference)
    register("dislikes", defaults=defaults, higher_is_better=False)(lambda ctx, p: -preference(ctx, p))
    CALLS.clear()
    yield
    for name in ("prefers", "dislikes"):
        PROXIES.pop(name)


@functools.lru_cache(maxsize=None)
def nb201_table() -> SearchTable:
    table = pq.read_table(data_file("nb201_accuracy.parquet")).to_pandas().sort_values("arch_index")
    return SearchTable(
        ids=table["arch_index"].astype(str).to_numpy(), archs=table["arch_str"].to_numpy(),
        truth={c: table[c].to_numpy() for c in ("cifar10_test", "cifar100_test", "imagenet16_120_test")},
    )


@functools.lru_cache(maxsize=None)
def cifar10() -> tuple[np.ndarray, np.ndarray]:
    return read_images(data_file("cifar10_sample.npz"), "cifar10")


def make_run(proxy: str, seed: int = 0, **overrides: Any) -> tuple[SearchRun, SearchInputs]:
    method = get_search("zero_cost_pt")
    params = method.settings(overrides)
    method.check(params, nb201_table())  # type: ignore[misc]
    torch.set_num_threads(1)
    space = make_space("nb201", {"truth_file": "nb201_accuracy.parquet", "truth": {}}, DATA_ROOT)
    inputs = SearchInputs(nb201_table(), {proxy: get_proxy(proxy).settings()}, space, cifar10(), 10,
                          torch.device("cpu"))
    return SearchRun("zero_cost_pt", proxy, "cifar10", seed, params), inputs


TINY = {"n_genotypes": 2, "validation_batches": 2, "batch_size": 8, "supernet_channels": 4,
        "supernet_cells_per_stage": 1}


@pytest.mark.parametrize("proxy", ["prefers", "dislikes"])
def test_perturbation_keeps_the_operation_whose_removal_hurts_most(hand_proxies: None, proxy: str) -> None:
    """Both orientations find TARGET on every genotype; the answer is its row, found with
    2 x 6 x 5 supernet scorings and 2 validation scorings of the one distinct genotype."""
    run, inputs = make_run(proxy, **TINY)
    choices = get_search("zero_cost_pt").fn(run, inputs)
    row = nb201_table().row_of_arch(format_cell(TARGET))
    proxy_choice, oracle = choices
    assert (proxy_choice.variant, proxy_choice.budget, proxy_choice.row) == ("proxy", 2, row)
    assert (proxy_choice.proxy_evaluations, proxy_choice.truth_queries) == (2 * 6 * 5 + 2, 0)
    assert (oracle.variant, oracle.row, oracle.proxy_evaluations, oracle.truth_queries) == ("oracle", row, 0, 1)


def test_perturbation_steps_follow_the_reference(hand_proxies: None) -> None:
    """Per genotype, 6 steps of 5 trials: each step decides a new edge; its 5 trials share
    one batch (a fresh one per step), zero exactly one weight of that edge and leave the
    others as they are (undecided rows softmax(1e-3 randn): sum 1, near 0.2; decided rows
    one-hot on TARGET)."""
    run, inputs = make_run("prefers", **TINY)
    get_search("zero_cost_pt").fn(run, inputs)
    supernet_calls = [c for c in CALLS if "weights" in c]
    assert len(supernet_calls) == 2 * 6 * 5
    batches = []
    for g in range(2):
        decided: list[int] = []
        for step in range(6):
            trials = supernet_calls[30 * g + 5 * step: 30 * g + 5 * step + 5]
            assert all(torch.equal(t["batch"], trials[0]["batch"]) for t in trials)
            batches.append(trials[0]["batch"])
            zeroed = [torch.nonzero(t["weights"] == 0).tolist() for t in trials]
            # the trial edge: the only row with a zero that is not decided
            edges = {e for z in zeroed for e, _ in z if e not in decided}
            assert len(edges) == 1
            edge = edges.pop()
            for k, t in enumerate(trials):
                w = t["weights"]
                assert w[edge, k] == 0 and (w[edge] != 0).sum() == 4
                for e in range(6):
                    if e in decided:
                        assert torch.equal(w[e], torch.eye(5)[OPS.index(TARGET[e])])
                    elif e != edge:
                        assert abs(float(w[e].sum()) - 1) < 1e-6 and float((w[e] - 0.2).abs().max()) < 1e-2
                assert abs(float(w[edge].sum()) - (1 - float(trials[(k + 1) % 5]["weights"][edge, k]))) < 1e-6
            decided.append(edge)
        assert sorted(decided) == list(range(6))
    assert all(not torch.equal(a, b) for i, a in enumerate(batches) for b in batches[i + 1:])


def test_validation_sums_over_batches_and_keeps_the_best(hand_proxies: None) -> None:
    """The hand proxy on a cell's network is its parameter count: summed over V = 3
    batches it is 3 x that count, and the cell with the most convolutions wins."""
    run, inputs = make_run("prefers", **{**TINY, "validation_batches": 3})
    candidates = [("skip_connect",) * 6, ("nor_conv_3x3",) * 6, TARGET]
    scorer = Scorer(run, inputs)
    totals = validate(scorer, inputs, run, candidates)
    counts = [sum(p.numel() for p in NB201Network(ops, 10).parameters()) for ops in candidates]
    assert totals.tolist() == [3.0 * n for n in counts]
    assert int(np.argmax(totals)) == 1 and scorer.evaluations == 9
    # every candidate read the same 3 batches
    seen = [c["batch"] for c in CALLS]
    assert all(torch.equal(seen[i], seen[i % 3]) for i in range(9))


def test_settings_are_checked() -> None:
    method = get_search("zero_cost_pt")
    with pytest.raises(ValueError, match="n_genotypes"):
        method.check(method.settings({"n_genotypes": 0}), nb201_table())  # type: ignore[misc]
    with pytest.raises(ValueError, match="mode.naswot"):
        method.check(method.settings({"mode": {"naswot": "test"}}), nb201_table())  # type: ignore[misc]
    with pytest.raises(ValueError, match="oracle_truth"):
        method.check(method.settings({"oracle_truth": "nope"}), nb201_table())  # type: ignore[misc]


def test_a_tiny_real_run_with_naswot() -> None:
    """naswot on real CIFAR-10 images, tiny settings: a valid NB201 row, the same twice
    for one seed."""
    run, inputs = make_run("naswot", **TINY)
    first = get_search("zero_cost_pt").fn(run, inputs)
    again = get_search("zero_cost_pt").fn(run, inputs)
    assert first == again
    proxy = first[0]
    assert proxy.variant == "proxy" and 0 <= proxy.row < 15625
    # 60 supernet scorings, then V = 2 per distinct genotype (one or two of them)
    assert proxy.proxy_evaluations in (2 * 6 * 5 + 2, 2 * 6 * 5 + 2 * 2)
    assert first[1].truth_queries == (proxy.proxy_evaluations - 60) // 2
