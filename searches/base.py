"""What a search run reads and returns.

A run is one (method, proxy, dataset, seed) with the method's checked settings
(``SearchRun``). Table methods read a ``SearchTable``: every cell of the space with its
truth columns, the stored proxy scores (NaN where a cell was not scored) and the rows the
run may draw from. Network methods also get the dataset's images and the space, to build
and score networks themselves. A run returns ``Choice``s: the cell it picked for each
variant it reports (best-of-N reports the proxy's pick, the oracle's and a random cell's
for every N), with what it cost in proxy evaluations and truth queries.

Random draws come from ``SearchRun.rng``, seeded by (method, seed, tags) and not by the
proxy or dataset: runs of one seed draw the same cells whatever proxy they rank them with,
so proxies are compared on the same samples (paired), as NASWOT's table compares them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from benchdata.batches import derive_seed

if TYPE_CHECKING:
    import torch

    from spaces.base import SearchSpace


@dataclass(frozen=True)
class SearchRun:
    """One run of a search method."""

    method: str
    proxy: str
    dataset: str
    seed: int
    params: Mapping[str, Any]

    def rng(self, *tags: object) -> np.random.Generator:
        """A generator for one purpose of this run (the tags name it)."""
        return np.random.default_rng(derive_seed("search", self.method, self.seed, *tags))

    def torch_seed(self, *tags: object) -> int:
        """A seed for torch's generators, for one purpose of this run (network methods)."""
        return derive_seed("search-torch", self.method, self.seed, *tags)

    @property
    def stem(self) -> str:
        """The run's file name, without the suffix."""
        return f"{self.proxy}-{self.dataset}-seed{self.seed}"


def settings_key(method: str, params: Mapping[str, Any]) -> str:
    """A short stable name for a method's settings: results of other settings live apart."""
    text = json.dumps({"method": method, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SearchTable:
    """Every cell of the space (row ``i``: ``ids[i]``, ``archs[i]``), with

    ``truth``: accuracy column -> value per row (NaN where the benchmark has none);
    ``scores``: proxy -> raw score per row on the run's dataset (NaN: not scored, or the
    proxy failed on the cell); ``higher_is_better``: proxy -> orientation;
    ``drawable``: the rows a run may draw cells from (every cell, or those scored).
    """

    ids: np.ndarray
    archs: np.ndarray
    truth: Mapping[str, np.ndarray]
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    drawable: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def pool(self) -> np.ndarray:
        """The drawable rows (every row when not restricted)."""
        return np.arange(len(self.ids)) if self.drawable is None else self.drawable

    def oriented(self, proxy: str) -> np.ndarray:
        """The proxy's scores with higher = better; a missing or failed score ranks last
        (-inf), as NASWOT ranks a singular kernel."""
        score = np.asarray(self.scores[proxy], dtype=np.float64)
        out = score if self.higher_is_better.get(proxy, True) else -score
        return np.where(np.isnan(out), -np.inf, out)

    def row_of(self, arch_id: str) -> int:
        """The row of a cell id."""
        index = self._index
        try:
            return index[str(arch_id)]
        except KeyError:
            raise KeyError(f"no cell {arch_id!r} in the search table") from None

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {str(i): k for k, i in enumerate(self.ids)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def row_of_arch(self, arch: str) -> int:
        """The row of a cell string (the space's canonical form)."""
        cached = self.__dict__.get("_arch_cache")
        if cached is None:
            cached = {str(a): k for k, a in enumerate(self.archs)}
            object.__setattr__(self, "_arch_cache", cached)
        try:
            return cached[arch]
        except KeyError:
            raise KeyError(f"no cell {arch!r} in the search table") from None


@dataclass(frozen=True)
class SearchInputs:
    """Everything a run reads: the table, the checked settings of each proxy it uses
    (``proxy_params``), and, for network methods, the space, the dataset's images
    (uint8 NCHW and labels), its number of classes and the device to score on."""

    table: SearchTable
    proxy_params: Mapping[str, Mapping[str, Any]]
    space: SearchSpace | None = None
    images: tuple[np.ndarray, np.ndarray] | None = None
    num_classes: int = 0
    device: torch.device | None = None


@dataclass(frozen=True)
class Choice:
    """A cell a run picked for one variant it reports.

    ``variant`` names the rule (``proxy``, ``oracle``, ``random``, ``warm evolution``...);
    ``budget`` its size (N cells for best-of-N, truth queries for evolution, objective
    calls for HNAS); ``row`` the picked cell's table row; ``curve``: for searches that
    query truth, the best queried accuracy after each query (empty otherwise)."""

    variant: str
    budget: int
    row: int
    proxy_evaluations: int
    truth_queries: int
    curve: tuple[float, ...] = ()
