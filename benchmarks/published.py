"""Published |Spearman rho| figures to compare against (../shared/data/README.md).

Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS", over all 15,625
NB201 cells (CIFAR-10 against cifar10_valid_test) and over all of NAS-Bench-101.
"""
from __future__ import annotations

ABDELFATTAH_NB201: dict[str, dict[str, float]] = {
    "cifar10": {"grad_norm": 0.59, "snip": 0.60, "grasp": 0.51, "fisher": 0.36, "synflow": 0.74, "jacob_cov": 0.73},
    "cifar100": {"grad_norm": 0.64, "snip": 0.64, "grasp": 0.55, "fisher": 0.39, "synflow": 0.76, "jacob_cov": 0.70},
    "ImageNet16-120": {"grad_norm": 0.58, "snip": 0.58, "grasp": 0.55, "fisher": 0.33, "synflow": 0.75, "jacob_cov": 0.70},
}
ABDELFATTAH_NB101: dict[str, float] = {
    "grad_norm": 0.20, "snip": 0.16, "grasp": 0.45, "fisher": 0.26, "synflow": 0.37, "jacob_cov": 0.38,
}
