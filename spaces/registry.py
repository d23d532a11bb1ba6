"""One registry of search spaces: a space is a class registered with its default settings.

As for proxies (``proxies.registry``), the registration is the only description of a
space: the Hydra config (``space.<name>.<setting>``) is built from it, and a user's module
registers a space the same way. A space family lives in its own module or subpackage and
registers itself on import; ``spaces/__init__.py`` imports the built-in ones.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from omegaconf import OmegaConf

if TYPE_CHECKING:
    from spaces.base import SearchSpace

#: settings that say where the truth is or where caches go: they never change a score
NOT_SCORE_RELEVANT = ("truth", "truth_file", "cache_dir", "cells_file")


@dataclass(frozen=True)
class SpaceEntry:
    """A registered space: its class, its default settings and where it was registered."""

    name: str
    cls: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    module: str = ""

    def settings(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides`` applied (mappings merged one level deep) and
        interpolations of the defaults resolved (the overrides come resolved: a literal
        ``${...}`` a user escaped stays literal); ValueError naming an unknown setting, or
        a value of another type than its default (``_check_like``)."""
        defaults: dict[str, Any] = OmegaConf.to_container(OmegaConf.create(dict(self.defaults)), resolve=True)  # type: ignore[assignment]
        out = copy.deepcopy(defaults)
        for key, value in (overrides or {}).items():
            if key not in out:
                known = ", ".join(sorted(out)) or "none"
                raise ValueError(f"space.{self.name}.{key} is not a setting of {self.name} (its settings: {known})")
            if isinstance(out[key], Mapping) and isinstance(value, Mapping):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
        for key, default in defaults.items():
            if key == "truth":
                check_truth(out[key], f"space.{self.name}.truth")
            else:
                _check_like(out[key], default, f"space.{self.name}.{key}")
        return out


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite, an int past float's range excluded:
    what a numeric setting of a space or a proxy may hold."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past float's range
        return False


def check_truth(value: Any, where: str) -> None:
    """ValueError unless ``value`` maps each dataset to a truth column or to a list of them
    (the first is the space's main one; the metrics are computed against each)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must map each dataset to an accuracy column; got {value!r}")
    for dataset, columns in value.items():
        listed = [columns] if isinstance(columns, str) else columns
        ok = (isinstance(listed, (list, tuple)) and len(listed) > 0
              and all(isinstance(c, str) and c.strip() for c in listed) and len(set(listed)) == len(listed))
        if not ok:
            raise ValueError(f"{where}.{dataset} must be a column name or a list of distinct column names; "
                             f"got {columns!r}")


def truth_columns(truth: Mapping[str, Any], dataset: str) -> tuple[str, ...]:
    """The truth columns a space's ``truth`` setting names for ``dataset``, main one first."""
    columns = truth[dataset]
    return (columns,) if isinstance(columns, str) else tuple(columns)


def _check_like(value: Any, default: Any, where: str) -> None:
    """ValueError unless ``value`` has the type of ``default``: the space builds networks
    and finds files from these, so ``channels=abc`` or ``truth_file=5`` must stop here,
    not in the middle of planning (a positive default stays positive, as for proxies)."""
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or default < 1)
        want = "a positive integer" if default >= 1 else "an integer"
    elif isinstance(default, float):
        ok = is_finite_number(value)
        want = "a finite number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str) and bool(value.strip()), "a non-empty string"
    elif isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be a mapping; got {value!r}")
        for key, inner in default.items():
            if key in value:
                _check_like(value[key], inner, f"{where}.{key}")
        return
    else:
        return
    if not ok:
        raise ValueError(f"{where} must be {want}; got {value!r}")


SPACES: dict[str, SpaceEntry] = {}


def register_space(name: str, *, defaults: Mapping[str, Any] | None = None) -> Callable[[type], type]:
    """Class decorator adding a search space (see ``spaces.base.SearchSpace``) under ``name``
    with its default settings (plain values; strings may use OmegaConf interpolations)."""

    def add(cls: type) -> type:
        if name in SPACES:
            raise KeyError(f"search space {name!r} is registered twice (by {SPACES[name].module} and {cls.__module__})")
        SPACES[name] = SpaceEntry(name, cls, dict(defaults or {}), cls.__module__)
        return cls

    return add


def get_space(name: str) -> SpaceEntry:
    """The space called ``name``; KeyError listing the known names otherwise."""
    try:
        return SPACES[name]
    except KeyError:
        raise KeyError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}") from None


def make_space(name: str, settings: Mapping[str, Any] | None = None, data_root: Path | None = None) -> "SearchSpace":
    """An instance of the space called ``name`` with its defaults overridden by ``settings``."""
    entry = get_space(name)
    return entry.cls(entry.settings(settings), data_root)


def score_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a space that a score depends on (how networks are built)."""
    return {k: v for k, v in settings.items() if k not in NOT_SCORE_RELEVANT}
