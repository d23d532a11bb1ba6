"""The ``search`` section of the config, parsed once into typed, checked settings.

A search reads (and extends) the sweep its config describes: ``sweep.space``,
``sweep.datasets`` and ``out_dir`` are the sweep's; ``search.proxies`` (default: the
sweep's) are ranked; ``search.seeds`` or ``search.runs`` say which runs; ``search.cells``
whether cells are drawn from the whole space (missing scores are computed through the
normal sweep path first) or only from the cells the sweep already scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import proxies as proxy_registry
import searches
from orchestrator.errors import SweepError
from orchestrator.settings import _int_list, _is_int, _positive_int, _str_list
from searches.base import settings_key

SEARCH_DIR = "searches"
CELL_CHOICES = ("space", "scored")
SECTION_KEYS = ("method", "proxies", "seeds", "runs", "first_seed", "cells", "report_truth", "score_seed",
                "settings", "runs_per_task")


@dataclass(frozen=True)
class SearchSettings:
    """A checked search: ``method`` with its checked ``params``, run once per
    (proxy, dataset, seed); scores are read from the sweep's seed ``score_seed``."""

    method: str
    proxies: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    params: Mapping[str, Any]
    cells: str
    report_truth: tuple[str, ...]
    score_seed: int
    runs_per_task: int

    @property
    def entry(self) -> searches.registry.SearchMethod:
        return searches.get_search(self.method)

    @property
    def key(self) -> str:
        """Names the settings a result depends on: results of other settings live apart."""
        return settings_key(self.method, {"params": dict(self.params), "cells": self.cells,
                                          "score_seed": self.score_seed, "report_truth": list(self.report_truth)})

    def folder(self, out_dir: Path) -> Path:
        return Path(out_dir) / SEARCH_DIR / f"{self.method}-{self.key}"

    def needed_proxies(self) -> tuple[str, ...]:
        """Every proxy the runs read: each run's own, then the method's extra ones."""
        out: dict[str, None] = {}
        for proxy in self.proxies:
            out.update(dict.fromkeys(self.entry.proxies_of(proxy, self.params)))
        return tuple(out)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "params": dict(self.params), "cells": self.cells,
                "score_seed": self.score_seed, "report_truth": list(self.report_truth),
                "proxies": list(self.proxies), "datasets": list(self.datasets)}


def _seeds(section: Mapping[str, Any]) -> tuple[int, ...]:
    """``search.seeds``, or ``search.runs`` seeds from ``search.first_seed``."""
    if section.get("seeds") is not None:
        return _int_list(section["seeds"], "search.seeds")
    runs, first = section.get("runs", 1), section.get("first_seed", 0)
    if not _is_int(runs) or not 1 <= runs <= 1_000_000:
        raise SweepError(f"search.runs must be an integer from 1 to 1000000; got {runs!r}")
    if not _is_int(first) or first < 0:
        raise SweepError(f"search.first_seed must be a non-negative integer; got {first!r}")
    return tuple(range(first, first + runs))


def sweep_proxies(search: Mapping[str, Any] | None, sweep: Mapping[str, Any]) -> list[str] | None:
    """The sweep's proxies with those the search needs added (for the sweep that scores the
    missing cells); None when the config has no valid search section yet (the full check
    comes with ``parse_search``)."""
    if not isinstance(search, Mapping):
        return None
    try:
        entry = searches.get_search(str(search.get("method")))
        params = entry.settings(search.get("settings") or {})
    except (KeyError, ValueError):
        return None
    own = search.get("proxies") or sweep.get("proxies") or []
    own = [own] if isinstance(own, str) else list(own)
    out = dict.fromkeys(sweep.get("proxies") or [])
    for proxy in own:
        if isinstance(proxy, str):
            out.update(dict.fromkeys(entry.proxies_of(proxy, params)))
    return list(out)


def parse_search(section: Any, space: str, datasets: tuple[str, ...], sweep_seeds: tuple[int, ...],
                 sweep_proxies: tuple[str, ...], truth_columns: tuple[str, ...]) -> SearchSettings:
    """The checked ``search`` section; SweepError with one line for anything off."""
    if not isinstance(section, Mapping):
        raise SweepError(f"search must be a mapping of settings (choose one with +search=NAME); got {section!r}")
    unknown = sorted(set(section) - set(SECTION_KEYS))
    if unknown:
        raise SweepError(f"unknown setting search.{unknown[0]}; known: {', '.join(SECTION_KEYS)}")
    method = section.get("method")
    if method not in searches.SEARCHES:
        raise SweepError(f"unknown search method {method!r}; known: {', '.join(sorted(searches.SEARCHES))}")
    entry = searches.get_search(method)
    if space not in entry.spaces:
        raise SweepError(f"search {method} runs on {', '.join(entry.spaces)}, not on {space}")
    try:
        params = entry.settings(section.get("settings") or {})
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    proxies = _str_list(section.get("proxies") or list(sweep_proxies), "search.proxies")
    for name in proxies:
        if name not in proxy_registry.PROXIES:
            raise SweepError(f"unknown proxy {name!r} in search.proxies; known: {', '.join(sorted(proxy_registry.PROXIES))}")
    cells = section.get("cells", "space")
    if cells not in CELL_CHOICES:
        raise SweepError(f"search.cells must be space (draw from every cell; missing scores are computed) or "
                         f"scored (draw from the cells the sweep scored); got {cells!r}")
    report = _str_list(section.get("report_truth"), "search.report_truth")
    for column in report:
        if column not in truth_columns:
            raise SweepError(f"search.report_truth: no truth column {column!r} in {space}; known: {', '.join(truth_columns)}")
    for key, value in params.items():  # settings naming truth columns (oracle_truth, truth.<dataset>, objective)
        named = value.items() if isinstance(value, Mapping) else [(None, value)]
        for sub, column in named:
            if (key.endswith("truth") or key == "objective") and isinstance(column, str) and column not in truth_columns:
                where = f"search.settings.{key}" + (f".{sub}" if sub is not None else "")
                raise SweepError(f"{where}: no truth column {column!r} in {space}; known: {', '.join(truth_columns)}")
    score_seed = section.get("score_seed", sweep_seeds[0])
    if score_seed not in sweep_seeds:
        raise SweepError(f"search.score_seed={score_seed!r} is not among sweep.seeds {list(sweep_seeds)}")
    per_task = _positive_int(section.get("runs_per_task", 20), "search.runs_per_task")
    return SearchSettings(method, proxies, datasets, _seeds(section), params, cells, report, score_seed, per_task)
