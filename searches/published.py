"""Published NB201 search results, set beside the project's in the report.

Test accuracy (percent, hp=200) of the cell each search found, mean +- std over its runs,
for the columns C10 = ``cifar10_test`` (trained on train+valid), C100 = ``cifar100_test``,
IN16 = ``imagenet16_120_test``; the sources are those of ``../shared/data/README.md``.
A key's proxy ``*`` matches any proxy (HNAS's figure is quoted without its M).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

C10, C100, IN16 = "cifar10_test", "cifar100_test", "imagenet16_120_test"


@dataclass(frozen=True)
class Published:
    """One published row: per truth column (mean, std or None), and where it is from."""

    values: Mapping[str, tuple[float, float | None]]
    source: str


NASWOT = "Mellor et al. 2021 (NASWOT), Table 2, 500 runs, chosen on CIFAR-10"
ZICO = "Li et al. 2023 (ZiCo), Table 8: Zero-Cost-PT reimplemented, 5 runs"

#: (method, variant, budget or None for any, proxy or "*", dataset searched on) -> figure
PUBLISHED: dict[tuple[str, str, int | None, str, str], Published] = {
    ("best_of_n", "proxy", 10, "naswot", "cifar10"):
        Published({C10: (92.44, 1.13), C100: (68.62, 2.04), IN16: (41.31, 4.11)}, NASWOT),
    ("best_of_n", "proxy", 100, "naswot", "cifar10"):
        Published({C10: (92.81, 0.99), C100: (69.48, 1.70), IN16: (43.10, 3.16)}, NASWOT),
    ("best_of_n", "proxy", 1000, "naswot", "cifar10"):
        Published({C10: (92.96, 0.81), C100: (69.98, 1.22), IN16: (44.44, 2.10)}, NASWOT),
    ("best_of_n", "oracle", 10, "*", "cifar10"): Published({C10: (93.06, 0.59)}, NASWOT),
    ("best_of_n", "oracle", 100, "*", "cifar10"): Published({C10: (93.84, 0.23)}, NASWOT),
    ("best_of_n", "random", None, "*", "cifar10"): Published({C10: (86.61, 13.46)}, NASWOT),
    ("best_of_n", "proxy", 1000, "epsinas", "cifar10"):
        Published({C10: (93.86, None)}, "Sinha et al. (epsinas), best of 1,000 random cells"),
    ("hnas", "proxy", None, "*", "cifar10"):
        Published({C10: (94.04, 0.21), C100: (71.75, 1.04), IN16: (45.91, 0.88)},
                  "Shu et al. 2022 (HNAS), as quoted by later work"),
    ("zero_cost_pt", "proxy", None, "naswot", "cifar10"):
        Published({C10: (93.42, 0.07), C100: (70.77, 0.51), IN16: (45.11, 0.26)}, ZICO),
    ("zero_cost_pt", "proxy", None, "synflow", "cifar10"):
        Published({C10: (87.68, None), C100: (58.92, None), IN16: (32.20, None)}, ZICO),
    ("zero_cost_pt", "proxy", None, "zen", "cifar10"):
        Published({C10: (93.84, None), C100: (71.63, None), IN16: (46.67, None)}, ZICO),
    ("zero_cost_pt", "proxy", None, "zico", "cifar10"):
        Published({C10: (94.15, 0.22), C100: (72.77, None), IN16: (46.39, None)}, ZICO),
}
#: the NB201 optimum per column, for scale
OPTIMUM = {C10: 94.37, C100: 73.51, IN16: 47.31}


def published(method: str, variant: str, budget: int | None, proxy: str, dataset: str) -> Published | None:
    """The published figure for a row of the search summary, if any."""
    for b in (budget, None):
        for p in (proxy, "*"):
            hit = PUBLISHED.get((method, variant, b, p, dataset))
            if hit is not None:
                return hit
    return None
