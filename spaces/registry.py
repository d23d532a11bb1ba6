"""One registry of search spaces: a space is a class registered with its default settings.

As for proxies (``proxies.registry``), the registration is the only description of a
space: the Hydra config (``space.<name>.<setting>``) is built from it, and a user's module
registers a space the same way. A space family lives in its own module or subpackage and
registers itself on import; ``spaces/__init__.py`` imports the built-in ones.
"""
from __future__ import annotations

import copy
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
        interpolations resolved; ValueError naming an unknown setting."""
        out = copy.deepcopy(dict(self.defaults))
        for key, value in (overrides or {}).items():
            if key not in out:
                known = ", ".join(sorted(out)) or "none"
                raise ValueError(f"space.{self.name}.{key} is not a setting of {self.name} (its settings: {known})")
            if isinstance(out[key], Mapping) and isinstance(value, Mapping):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
        return OmegaConf.to_container(OmegaConf.create(out), resolve=True)  # type: ignore[return-value]


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
