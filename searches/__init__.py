"""Searches with proxies: NASWOT's best-of-N, epsinas's warm-started random search and
ageing evolution, HNAS's Bayesian optimisation and Zero-Cost-PT's supernet perturbation.

Each method is a function registered with ``register_search`` (``searches.registry``);
``orchestrator.search`` runs many of them on Ray, writes each run's result atomically and
resumes like a sweep. Importing this package imports every built-in method module.
"""
import importlib
import pkgutil

from searches.base import Choice, SearchInputs, SearchRun, SearchTable
from searches.registry import SEARCHES, get_search, register_search

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry") and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Choice", "SEARCHES", "SearchInputs", "SearchRun", "SearchTable", "get_search", "register_search"]
