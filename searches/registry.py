"""One registry of search methods: a method is a function of one run and its inputs.

As for proxies and spaces, the registration is the only description of a method: its
default settings (its reference's), whether it reads stored proxy scores (``table``) or
scores networks itself (``network``), which cells' scores a run will read (so the driver
can score them first, through the normal sweep path), and which proxies besides the run's
own it needs. ``python -m orchestrator +search=NAME`` finds methods here; a user's module
registers one the same way (``plugins=[my_module]``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import numpy as np

    from searches.base import Choice, SearchInputs, SearchRun, SearchTable

SearchFn = Callable[["SearchRun", "SearchInputs"], "list[Choice]"]
#: the table rows whose proxy scores a run reads; drawn from ``table.drawable`` with the
#: run's own random generators, so the driver knows them before any score exists
CellsFn = Callable[["SearchRun", "SearchTable"], "np.ndarray"]
#: ValueError (one line) for settings that cannot work with this table, e.g. a budget
#: larger than the cells it may draw from
CheckFn = Callable[[Mapping[str, Any], "SearchTable"], None]
KINDS = ("table", "network")


@dataclass(frozen=True)
class SearchMethod:
    """A registered search method.

    ``kind``: ``table`` methods read stored scores and truth only (cheap; any CPU runs
    them); ``network`` methods build and score networks (a scorer's CPU or GPU).
    ``proxy_cells``: the rows a run reads scores of (table methods). ``extra_proxies``:
    proxies the run reads beside its own (HNAS's condition number), from its settings.
    ``uses_proxy``: False for baselines that read no proxy at all.
    """

    name: str
    fn: SearchFn
    kind: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    spaces: tuple[str, ...] = ("nb201",)
    proxy_cells: CellsFn | None = None
    extra_proxies: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    check: CheckFn | None = None
    module: str = ""

    def settings(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides``, each key known and of its default's type;
        ValueError with one line otherwise."""
        params = copy.deepcopy(dict(self.defaults))
        for key, value in (overrides or {}).items():
            if key not in params:
                known = ", ".join(sorted(params)) or "none"
                raise ValueError(f"search.settings.{key} is not a setting of {self.name} (its settings: {known})")
            params[key] = _like(value, params[key], f"search.settings.{key}")
        return params

    def proxies_of(self, proxy: str, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Every proxy a run with ``proxy`` reads: its own first."""
        extra = self.extra_proxies(params) if self.extra_proxies else ()
        return tuple(dict.fromkeys((proxy, *extra)))


SEARCHES: dict[str, SearchMethod] = {}


def register_search(
    name: str,
    *,
    kind: str,
    defaults: Mapping[str, Any] | None = None,
    spaces: Sequence[str] = ("nb201",),
    proxy_cells: CellsFn | None = None,
    extra_proxies: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None,
    check: CheckFn | None = None,
) -> Callable[[SearchFn], SearchFn]:
    """Decorator adding a search method under ``name`` (see ``SearchMethod``)."""
    if kind not in KINDS:
        raise ValueError(f"search {name!r}: kind must be one of {KINDS}; got {kind!r}")
    if kind == "table" and proxy_cells is None:
        raise ValueError(f"search {name!r}: a table method must say which cells it reads (proxy_cells)")

    def add(fn: SearchFn) -> SearchFn:
        if name in SEARCHES:
            raise KeyError(f"search {name!r} is registered twice (by {SEARCHES[name].module} and {fn.__module__})")
        SEARCHES[name] = SearchMethod(name, fn, kind, dict(defaults or {}), tuple(spaces), proxy_cells,
                                      extra_proxies, check, fn.__module__)
        return fn

    return add


def get_search(name: str) -> SearchMethod:
    try:
        return SEARCHES[name]
    except KeyError:
        raise KeyError(f"unknown search method {name!r}; known: {', '.join(sorted(SEARCHES))}") from None


def _like(value: Any, default: Any, where: str) -> Any:
    """``value`` if it has ``default``'s type (an int where a float is due becomes one)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif is_int(default):
        ok = is_int(value)
    elif isinstance(default, float):
        ok = is_int(value) or isinstance(value, float)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        if ok and default:
            value = [_like(v, default[0], where) for v in value]
    elif isinstance(default, Mapping):
        ok = isinstance(value, Mapping)
    else:
        ok = True
    if not ok:
        raise ValueError(f"{where} must be like its default {default!r}; got {value!r}")
    return value
