"""Zero-Cost-PT on NAS-Bench-201: perturb an untrained supernet with a proxy, edge by edge.

Reference: Xiang et al. 2022, "Zero-Cost Operation Scoring in Differentiable Architecture
Search" (arXiv 2106.06799), code zerocostptnas/zerocost_operation_score at commit 48f48c9
(May 2022): ``exp_scripts/zerocostpt_nb201_pipeline.sh`` (``--pool_size 10
--edge_decision random --validate_rounds 100 --batch_size 256``), the proposal stage
``nasbench201/networks_proposal.py`` + ``init_projection.py`` ``pt_project`` + ``op_score.py``
``Jocab_Score``, the validation stage ``zerocostnas/post_validate.py`` (+
``Scorers/scorer.py`` ``Jocab_Scorer``). ZiCo (Li et al., ICLR 2023, Table 8) reran it
with other proxies; its code for that is not public, so the reference is the above.

One run, as the reference:

1. Build the supernet once (``spaces.nb201.supernet``, untrained, 16 channels, 5 cells per
   stage) from the run's torch seed; its weights stay the same for all N genotypes.
2. N times: alpha = ``alpha_scale`` * randn(6, 5) (``reset_arch_parameters``), mixing
   weights softmax(alpha), shared by all cells. While an edge is undecided: pick one
   uniformly among them (``np.random.choice(remain_eids)``), draw one fresh batch
   (``next(iter(proj_queue))``, shared by that edge's 5 trials); for each operation k, zero
   its weight on that edge (the others keep theirs: no renormalisation, as the
   ``Jocab_Score`` path; the ``find_measures`` path of the reference puts 1/5 on the other
   four, which differs from softmax(1e-3 randn) by about 1e-4), score the supernet, and fix
   the edge to ``nanargmin`` of the scores: the operation whose removal hurts the network
   most. The decided edge becomes one-hot (``project_op``).
3. Score each distinct genotype (the reference skips repeats, ``net_history``) as a
   standalone cell network (the space's benchmark network, affine BatchNorm, fresh init),
   the proxy summed over V = ``validation_batches`` batches; keep ``nanargmax``.

Choices (and why):

- Orientation: the reference's proxies are all higher-is-better and it takes the raw
  ``nanargmin`` / ``nanargmax``. Here scores are oriented by the registry's
  ``higher_is_better`` first, so "lowest score" means "worst by the proxy" for every proxy.
  A NaN score is skipped as ``nanargmin`` skips it; -inf (a singular NASWOT kernel) counts.
- Batches: every batch is ``batch_size`` (256, the script's ``--batch_size``; not the
  proxy's own size, e.g. naswot's 128) images drawn without replacement from the run's
  images by ``benchdata.batches.draw_batch`` under a seed of its own (run seed, stage,
  genotype, step), normalised like every proxy batch. ``augment`` (True): both reference
  loaders use CIFAR's training transform (pad-4 random crop, flip). A proxy that reads
  several batches (zico) gets its ``num_batches`` disjoint batches of that size each time.
  The reference validates every genotype on one epoch over the same 25,600 training
  images (first V x 256 indices, reshuffled per genotype); here every candidate reads the
  same V batches (seeded by the step only), drawn independently of each other, since the
  project's CIFAR sample holds fewer than V x 256 images.
- Mode: ``mode`` maps a proxy to the mode it is run in here, overriding its own: naswot
  runs in eval mode, as ``Jocab_Score`` and ``Jocab_Scorer`` put both networks in eval mode
  (BatchNorm on its initial running statistics). Other proxies keep their own mode, as the
  reference's ``find_measures`` path runs zero-cost-nas's measures as they are.
- The proxies are the project's (``proxies``), so naswot counts only the ReLUs on a path to
  the output (NASWOT's reference), where ``Jocab_Score`` hooks every ReLU; in the supernet
  every ReLU is on such a path (a zeroed operation still feeds the sum), so this differs
  only for the standalone cells, at ReLUs whose output a 'none' edge discards.
- Seeds: the supernet's init, the alphas, the edge order and every batch come from
  ``SearchRun.rng`` / ``torch_seed`` (not from the proxy: runs of one seed with different
  proxies share supernet and alphas). A candidate network is initialised from (run seed,
  cell string), so a genotype found twice is one network. Before each scoring the global
  RNGs are seeded from (the scoring's tag), as ``orchestrator.scoring.run_proxies`` does.
- Cost: ``proxy_evaluations`` counts proxy calls: N x 6 x 5 on the supernet plus V per
  distinct genotype. Proxies run with gradients enabled (naswot's path check walks the
  autograd graph; its pass keeps no saved tensors), and the supernet is reused across
  perturbations by changing its mixing weights only.
- Failures: a proxy that raises ends the run (the reference would crash too); a proxy
  that scores another network of the cell (TE-NAS's thin networks) needs ``network: full``
  on the supernet, which has no cell string to build one from.

Returns the proxy's pick (``proxy``, budget N) and, for reference, the oracle's pick among
the same distinct genotypes by ``oracle_truth`` (``oracle``: 0 proxy evaluations, one
truth query per distinct genotype).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from benchdata.batches import BatchSpec, derive_seed, draw_batch
from orchestrator.scoring import seed_everything
from proxies import Proxy, ScoringContext, batch_specs, get_proxy
from proxies.context import Batch
from searches.base import Choice, SearchInputs, SearchRun, SearchTable
from searches.registry import register_search
from spaces.nb201.network import EDGES, OPS
from spaces.nb201.space import format_cell
from spaces.nb201.supernet import NB201Supernet

DEFAULTS: dict[str, Any] = {
    "n_genotypes": 10,  # --pool_size 10
    "batch_size": 256,  # --batch_size 256, both stages
    "validation_batches": 100,  # --validate_rounds 100
    "alpha_scale": 1.0e-3,  # 1e-3 * torch.randn(num_edge, num_op)
    "augment": True,  # ig_utils._data_transforms_cifar10: RandomCrop(32, 4) + flip in both loaders
    "mode": {"naswot": "eval"},  # Jocab_Score / Jocab_Scorer: model.eval()
    "supernet_channels": 16,  # --init_channels 16
    "supernet_cells_per_stage": 5,  # TinyNetworkDartsProj(N=5)
    "oracle_truth": "cifar10_test",
}


def check(params: Mapping[str, Any], table: SearchTable) -> None:
    """One line for settings that cannot run."""
    for key in ("n_genotypes", "batch_size", "validation_batches", "supernet_channels", "supernet_cells_per_stage"):
        if params[key] < 1:
            raise ValueError(f"search.settings.{key} must be a positive integer; got {params[key]!r}")
    if params["alpha_scale"] < 0:
        raise ValueError(f"search.settings.alpha_scale must be >= 0; got {params['alpha_scale']!r}")
    for proxy, mode in params["mode"].items():
        if mode not in ("train", "eval"):
            raise ValueError(f"search.settings.mode.{proxy} must be train or eval; got {mode!r}")
    if params["oracle_truth"] not in table.truth:
        raise ValueError(f"search.settings.oracle_truth={params['oracle_truth']!r} is not a truth column "
                         f"(known: {', '.join(sorted(table.truth))})")


def scoring_params(proxy: Proxy, own: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The proxy's checked settings with this search's batch size, augmentation and mode
    in place of its own (only the settings the proxy has)."""
    out = dict(own)
    if "batch_size" in out:
        out["batch_size"] = params["batch_size"]
    if "augment" in out:
        out["augment"] = params["augment"]
    if "mode" in out and proxy.name in params["mode"]:
        out["mode"] = params["mode"][proxy.name]
    return out


class Scorer:
    """Scores networks of one run with its proxy: fresh batches by tag, oriented scores."""

    def __init__(self, run: SearchRun, inputs: SearchInputs) -> None:
        if inputs.images is None:
            raise ValueError("zero_cost_pt scores networks: it needs the dataset's images")
        self.run = run
        self.proxy = get_proxy(run.proxy)
        self.params = scoring_params(self.proxy, inputs.proxy_params[run.proxy], run.params)
        self.specs: tuple[BatchSpec, ...] = batch_specs(self.params) if self.proxy.uses_images else ()
        self.images, self.labels = inputs.images
        self.device = inputs.device or torch.device("cpu")
        self.num_classes = inputs.num_classes
        self.input_shape = tuple(int(d) for d in self.images.shape[1:])
        self.sign = 1.0 if self.proxy.higher_is_better else -1.0
        self.evaluations = 0

    def batches(self, *tag: object) -> dict[BatchSpec, Batch]:
        """The proxy's batches for one step: drawn from a seed of (run, ``tag``)."""
        seed = derive_seed(self.run.torch_seed("batches"), *tag)
        return {
            spec: tuple(t.to(self.device) for t in draw_batch(self.images, self.labels, self.run.dataset, seed, spec))
            for spec in self.specs
        }  # type: ignore[misc]

    def score(self, model: torch.nn.Module, batches: Mapping[BatchSpec, Batch], tag: Sequence[object],
              variants: Callable[..., torch.nn.Module] | None = None) -> float:
        """The proxy's score of ``model``, oriented (higher = better); NaN stays NaN."""
        seed_everything(self.run.torch_seed("score", *tag))
        ctx = ScoringContext(model, batches, self.input_shape, self.num_classes, self.device, variants)
        try:
            value = float(self.proxy.fn(ctx, self.params))
        finally:
            ctx.restore()
        self.evaluations += 1
        return self.sign * value


def propose(scorer: Scorer, supernet: NB201Supernet, run: SearchRun) -> list[tuple[str, ...]]:
    """The N genotypes of the perturbation stage (module docstring, step 2)."""
    params = run.params
    alphas = torch.Generator().manual_seed(run.torch_seed("alpha"))
    edge_rng = run.rng("edges")
    genotypes = []
    for i in range(params["n_genotypes"]):
        weights = torch.softmax(params["alpha_scale"] * torch.randn(len(EDGES), len(OPS), generator=alphas), dim=-1)
        undecided = list(range(len(EDGES)))
        for step in range(len(EDGES)):
            edge = undecided.pop(int(edge_rng.integers(len(undecided))))
            batches = scorer.batches("supernet", i, step)
            scores = []
            for k in range(len(OPS)):
                trial = weights.clone()
                trial[edge, k] = 0.0
                supernet.set_mixing(trial)
                scores.append(scorer.score(supernet, batches, ("supernet", i, step, k)))
            if np.all(np.isnan(scores)):
                raise ValueError(f"proxy {run.proxy} gave NaN for every operation of edge {EDGES[edge]} "
                                 f"(genotype {i}, step {step})")
            weights[edge] = 0.0
            weights[edge, int(np.nanargmin(scores))] = 1.0
        genotypes.append(tuple(OPS[int(k)] for k in weights.argmax(dim=1)))
    return genotypes


def validate(scorer: Scorer, inputs: SearchInputs, run: SearchRun, candidates: Sequence[tuple[str, ...]]) -> np.ndarray:
    """Each candidate's oriented proxy score summed over the V validation batches."""
    space = inputs.space
    if space is None:
        raise ValueError("zero_cost_pt builds networks: it needs the search space")
    totals = np.zeros(len(candidates))
    for j, ops in enumerate(candidates):
        arch = format_cell(ops)
        seed_everything(run.torch_seed("candidate", arch))
        model = space.build(ops, inputs.num_classes).to(scorer.device).train()
        build_variant = getattr(space, "build_variant", None)
        variants = functools.partial(build_variant, ops, inputs.num_classes) if build_variant is not None else None
        for v in range(run.params["validation_batches"]):
            totals[j] += scorer.score(model, scorer.batches("validate", v), ("validate", arch, v), variants)
    return totals


@register_search("zero_cost_pt", kind="network", defaults=DEFAULTS, check=check)
def zero_cost_pt(run: SearchRun, inputs: SearchInputs) -> list[Choice]:
    params = run.params
    scorer = Scorer(run, inputs)
    seed_everything(run.torch_seed("supernet"))
    supernet = NB201Supernet(inputs.num_classes, params["supernet_channels"], params["supernet_cells_per_stage"])
    supernet = supernet.to(scorer.device).train()
    genotypes = propose(scorer, supernet, run)
    del supernet
    candidates = list(dict.fromkeys(genotypes))  # repeats are scored once, first seen first
    totals = validate(scorer, inputs, run, candidates)
    if np.all(np.isnan(totals)):
        raise ValueError(f"proxy {run.proxy} gave NaN for every candidate genotype")
    rows = [inputs.table.row_of_arch(format_cell(ops)) for ops in candidates]
    truth = np.asarray(inputs.table.truth[params["oracle_truth"]], dtype=np.float64)[rows]
    n = params["n_genotypes"]
    return [
        Choice("proxy", n, rows[int(np.nanargmax(totals))], scorer.evaluations, 0),
        Choice("oracle", n, rows[int(np.argmax(np.nan_to_num(truth, nan=-np.inf)))], 0, len(rows)),
    ]
