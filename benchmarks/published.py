"""Published rank correlations to set beside ours, each with the truth column it was
measured against and its source (../shared/data/README.md, the papers and their code).

Values are oriented as proxysweep's metrics are: positive when the proxy ranks cells as
their accuracy does (a lower-is-better proxy's published negative figure is given
negated, e.g. TE-NAS's NTK condition number). Truth columns are the project's names for
NB201's accuracies: ``cifar10_valid_test`` (cifar10-valid: trained on train, tested on
test), ``cifar10_test`` (cifar10: trained on train+valid), ``cifar100_test``,
``imagenet16_120_test``.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS": |Spearman rho|
#: over all 15,625 NB201 cells (SamsungLabs/zero-cost-nas notebooks/nasbench201_correlations.ipynb,
#: rounded), CIFAR-10 against cifar10-valid's test split (nasbench2_pred.py's get_more_info call)
ABDELFATTAH_NB201: dict[str, dict[str, float]] = {
    "cifar10": {"grad_norm": 0.59, "snip": 0.60, "grasp": 0.51, "fisher": 0.36, "synflow": 0.74, "jacob_cov": 0.73},
    "cifar100": {"grad_norm": 0.64, "snip": 0.64, "grasp": 0.55, "fisher": 0.39, "synflow": 0.76, "jacob_cov": 0.70},
    "ImageNet16-120": {"grad_norm": 0.58, "snip": 0.58, "grasp": 0.55, "fisher": 0.33, "synflow": 0.75, "jacob_cov": 0.70},
}
ABDELFATTAH_NB101: dict[str, float] = {
    "grad_norm": 0.20, "snip": 0.16, "grasp": 0.45, "fisher": 0.26, "synflow": 0.37, "jacob_cov": 0.38,
}
NB201_TRUTH = {"cifar10": "cifar10_valid_test", "cifar100": "cifar100_test", "ImageNet16-120": "imagenet16_120_test"}


@dataclass(frozen=True)
class Figure:
    """One published figure: ``statistic`` is ``spearman`` or ``kendall_tau``."""

    proxy: str
    dataset: str
    truth: str
    statistic: str
    value: float
    source: str
    cells: int | None = 15625


ZICO = "ZiCo (Li et al. 2023) Table 1"
ZICO_T3 = "ZiCo Table 3"
TENAS = "TE-NAS (Chen et al. 2021) Fig. 1/3, CIFAR-100 inferred"
XI_GSNR = "Sunzh1996/Xi-GSNR logs/gradmeansq_gradvar_*_b64n8_e08.log"


def _pairs(source: str, truth: dict[str, str], rows: dict[str, dict[str, tuple[float, float]]]) -> list[Figure]:
    """(tau, rho) pairs per dataset and proxy -> one Figure per statistic."""
    return [Figure(proxy, dataset, truth[dataset], statistic, value, source, None)
            for dataset, by_proxy in rows.items() for proxy, pair in by_proxy.items()
            for statistic, value in zip(("kendall_tau", "spearman"), pair)]


#: ZiCo's truth columns are inferred (benchmarks/published_figures.md, note Z): its #Params
#: row reproduces on all cells against cifar10_test, not cifar10_valid_test
ZICO_TRUTH = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "ImageNet16-120": "imagenet16_120_test"}

#: every figure, with the truth column it was measured against (benchmarks/published_figures.md
#: says how each column was determined; "secondary" where only a re-report was readable)
NB201_FIGURES: list[Figure] = [
    Figure(proxy, dataset, NB201_TRUTH[dataset], "spearman", value, "Abdelfattah et al. 2021")
    for dataset, values in ABDELFATTAH_NB201.items() for proxy, value in values.items()
] + _pairs(ZICO, ZICO_TRUTH, {
    "cifar10": {"grad_norm": (0.46, 0.63), "snip": (0.46, 0.63), "grasp": (0.37, 0.54), "fisher": (0.40, 0.55),
                "synflow": (0.54, 0.73), "zen": (0.29, 0.38), "flops": (0.54, 0.73), "params": (0.57, 0.75),
                "zico": (0.61, 0.80)},
    "cifar100": {"grad_norm": (0.47, 0.63), "snip": (0.46, 0.63), "grasp": (0.36, 0.51), "fisher": (0.41, 0.55),
                 "synflow": (0.57, 0.76), "zen": (0.28, 0.36), "flops": (0.51, 0.71), "params": (0.55, 0.73),
                 "zico": (0.61, 0.81)},
    "ImageNet16-120": {"grad_norm": (0.43, 0.58), "snip": (0.43, 0.58), "grasp": (0.40, 0.56),
                       "fisher": (0.37, 0.50), "synflow": (0.56, 0.75), "zen": (0.29, 0.40), "flops": (0.49, 0.67),
                       "params": (0.52, 0.69), "zico": (0.60, 0.79)},
}) + _pairs(ZICO_T3, ZICO_TRUTH, {
    "cifar10": {"naswot": (0.58, 0.77)}, "cifar100": {"naswot": (0.62, 0.80)},
    "ImageNet16-120": {"naswot": (0.60, 0.78)},
}) + _pairs(XI_GSNR, ZICO_TRUTH, {
    "cifar10": {"xi_gsnr": (0.661, 0.845)}, "cifar100": {"xi_gsnr": (0.658, 0.840)},
    "ImageNet16-120": {"xi_gsnr": (0.608, 0.793)},
}) + [
    Figure("naswot", "cifar10", "cifar10_valid_test", "kendall_tau", 0.574, "NASWOT (Mellor et al. 2021) Fig. 3", 1000),
    Figure("naswot", "cifar100", "cifar100_test", "kendall_tau", 0.611, "NASWOT Fig. 3", 1000),
    Figure("naswot", "ImageNet16-120", "imagenet16_120_test", "kendall_tau", 0.549, "NASWOT Fig. 3", 1000),
    Figure("meco", "cifar10", "cifar10_valid_test", "spearman", 0.894, "MeCo (Jiang et al. 2023) Table 1, secondary"),
    Figure("meco", "cifar100", "cifar100_test", "spearman", 0.883, "MeCo Table 1, secondary"),
    Figure("meco", "ImageNet16-120", "imagenet16_120_test", "spearman", 0.845, "MeCo Table 1, secondary"),
    Figure("epsinas", "cifar10", "cifar10_test", "spearman", 0.87, "egracheva/epsinas Graphics.ipynb"),
    Figure("epsinas", "cifar10", "cifar10_test", "kendall_tau", 0.69, "egracheva/epsinas Graphics.ipynb"),
    Figure("ntk_cond", "cifar100", "cifar100_test", "kendall_tau", 0.42, TENAS, None),
    Figure("linear_regions", "cifar100", "cifar100_test", "kendall_tau", 0.50, TENAS),
]
