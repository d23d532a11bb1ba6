"""Search spaces by name; each module documents the benchmark it follows."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from spaces.base import CellTable, SearchSpace
from spaces.nb101 import NB101Space
from spaces.nb201 import NB201Space

SPACES: dict[str, type] = {"nb201": NB201Space, "nb101": NB101Space}


def make_space(name: str, settings: Mapping, data_root: Path | None = None) -> SearchSpace:
    """The space called ``name``; KeyError with the known names otherwise."""
    try:
        cls = SPACES[name]
    except KeyError:
        raise KeyError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}") from None
    return cls(settings, data_root)


__all__ = ["CellTable", "SearchSpace", "SPACES", "make_space"]
