"""Where the benchmark tables and images live, and the error users see when one is missing."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PROXYSWEEP_DATA"


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
