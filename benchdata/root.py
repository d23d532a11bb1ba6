"""Where the benchmark tables and images live, and the error users see when one is missing.

A data file is looked up under the data root first (``data.root``, or ``$PROXYSWEEP_DATA``)
and then among the small tables proxysweep ships as embedded defaults
(``benchdata/embedded``, provenance in its README), so a fresh clone runs its smoke sweep with
nothing downloaded while a user's own file of the same name always wins.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PROXYSWEEP_DATA"
#: the embedded defaults: package data of ``benchdata``
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"


class MissingDataError(FileNotFoundError):
    """A data file a sweep needs is absent; the message says which and how to get it."""

    def __init__(self, path: Path, how_to_obtain: str) -> None:
        self.path = Path(path)
        self.how_to_obtain = how_to_obtain
        super().__init__(
            f"missing data file {self.path}: {how_to_obtain} "
            f"(the data root is set by data.root=... or the {ENV_VAR} environment variable)"
        )


def resolve_root(configured: str | os.PathLike[str]) -> Path:
    """The absolute data root; relative settings are taken from the current directory."""
    return Path(os.path.expanduser(os.fspath(configured))).resolve()


def embedded(name: str) -> Path | None:
    """The embedded default called ``name``, or None if proxysweep ships none."""
    path = EMBEDDED_DIR / name
    return path if name and "/" not in name and path.is_file() and name != "README.md" else None


def find_data(root: Path | None, name: str | os.PathLike[str]) -> Path:
    """Where the data file (or folder) ``name`` is: under ``root`` if it is there, else
    the embedded default of that name, else ``root / name`` (which does not exist, so the
    caller's error names the place the user should put it)."""
    rel = Path(name)
    if rel.is_absolute():
        return rel
    wanted = (root or Path(".")) / rel
    if wanted.exists():
        return wanted
    return embedded(rel.as_posix()) or wanted


def require_data(root: Path | None, name: str | os.PathLike[str], how_to_obtain: str) -> Path:
    """``find_data``, raising MissingDataError when neither place has the file."""
    path = find_data(root, name)
    if not path.exists():
        raise MissingDataError(path, how_to_obtain)
    return path
