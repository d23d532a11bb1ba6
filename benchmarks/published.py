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

#: Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS", Table 2(?):
#: |Spearman rho| over all 15,625 NB201 cells (CIFAR-10 against cifar10-valid's test split)
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


NB201_FIGURES: list[Figure] = [
    Figure(proxy, dataset, NB201_TRUTH[dataset], "spearman", value, "Abdelfattah et al. 2021")
    for dataset, values in ABDELFATTAH_NB201.items() for proxy, value in values.items()
]
