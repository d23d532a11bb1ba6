"""``check [OVERRIDES...] [--all-sweeps]``: which data files are there, and which sweeps can run.

Every file is looked up exactly as a sweep looks it up (``benchdata.root.find_data``):
under the data root first, then among the embedded defaults (``benchdata/embedded``), else it
is missing. The sweeps come from ``conf/sweep/*.yaml``, each composed with the user's
overrides by ``orchestrator.config.compose_config`` (the composer ``python -m orchestrator``
uses) and checked by ``orchestrator.settings.load_settings(check_files=False)``; what a
sweep reads is ``orchestrator.settings.data_needs``, so the answer cannot drift from what
the sweep command demands.

The files listed are every one a sweep file or the root config names: each space's tables
and each dataset's images under ``data.images``. The sweeps judged are the one named by a
``+sweep=NAME`` override, or every sweep file when there is none or with ``--all-sweeps``;
the exit status is 0 when each judged sweep has everything, 1 otherwise (2 for a bad
override, as every user error of the data command).
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from orchestrator.config import CONF_DIR, compose_config
from orchestrator.data import DataError
from orchestrator.data.fetch import DATASETS
from orchestrator.errors import SweepError
from benchdata.root import EMBEDDED_DIR, ENV_VAR, find_data, resolve_root
from spaces import SPACES

SWEEP_OVERRIDE = re.compile(r"^\+{1,2}sweep=(.+)$")


def sweep_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml"))


def split_sweep(overrides: Sequence[str]) -> tuple[str | None, list[str]]:
    """(the sweep a ``+sweep=NAME`` override names, the other overrides)."""
    named, rest = None, []
    for o in overrides:
        m = SWEEP_OVERRIDE.match(o)
        if m:
            named = m.group(1)
        else:
            rest.append(o)
    return named, rest


def root_source(overrides: Sequence[str]) -> str:
    """Which setting chose the data root, as conf/config.yaml resolves ``data.root``."""
    if any(re.match(r"^\+{0,2}data\.root=", o) for o in overrides):
        return "from the data.root override"
    if os.environ.get(ENV_VAR):
        return f"from ${ENV_VAR}"
    return f"the default ./data; set data.root=... or ${ENV_VAR}"


@dataclass(frozen=True)
class Found:
    """Where a data file is: ``data root``, ``embedded``, ``path`` (given absolute) or ``missing``."""

    name: str
    where: str
    path: Path


def locate(root: Path, name: str) -> Found:
    path = find_data(root, name)
    if not path.exists():
        return Found(name, "missing", path)
    if Path(name).is_absolute():
        return Found(name, "path", path)
    if path.parent.resolve() == EMBEDDED_DIR.resolve():
        return Found(name, "embedded", path)
    return Found(name, "data root", path)


def how_to_get(name: str, datasets: Sequence[str], how: str, root: Path) -> str:
    """The command that provides a missing file, else the space's or reader's own advice."""
    if datasets:
        d = datasets[0]
        if d not in DATASETS:
            return f"{d} images: {how}"
        folder = DATASETS[d].folder
        then = "" if name == folder else f", then add data.images.{d}={folder}"
        return f"{d} images: python -m orchestrator.data fetch {d}{then}"
    for entry in SPACES.values():  # a space that converts official files says how
        hint = getattr(entry.cls, "convert_hint", None)
        command = hint(name, root / name) if hint else None
        if command:
            return command
    return how


@dataclass
class SweepReport:
    name: str
    needs: list[tuple[str, str]] = field(default_factory=list)
    images: dict[str, list[str]] = field(default_factory=dict)  # file name -> datasets
    root: Path | None = None  # the data root this sweep's settings resolve
    error: str | None = None


def _images_by_name(images: Mapping[str, Any], datasets: Sequence[str] | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d, name in images.items():
        if datasets is None or d in datasets:
            out.setdefault(str(name), []).append(str(d))
    return out


def inspect_sweep(name: str, overrides: Sequence[str]) -> SweepReport:
    from orchestrator.settings import data_needs, load_settings

    report = SweepReport(name)
    try:
        settings = load_settings(compose_config([*overrides, f"+sweep={name}"]), check_files=False)
        report.needs = data_needs(settings)
        report.root = settings.data_root
    except (SweepError, KeyError, ValueError) as exc:
        report.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return report
    report.images = _images_by_name(settings.image_names)
    return report


def known_files(base: Mapping[str, Any], root: Path, reports: Sequence[SweepReport]) -> dict[str, tuple[list[str], str]]:
    """Every data file the root config or a sweep names: name -> (datasets, advice)."""
    from spaces import SPACES, make_space
    from benchdata.images import HOW_TO_OBTAIN

    files: dict[str, tuple[list[str], str]] = {}
    for space, settings in (base.get("space") or {}).items():
        if space in SPACES and isinstance(settings, Mapping):
            try:
                needs = make_space(space, settings, root).required_files()
            except ValueError:  # a bad setting: the report of each sweep that uses the space names it
                continue
            for rel, how in needs:
                files.setdefault(str(rel), ([], how))
    for rel, datasets in _images_by_name((base.get("data") or {}).get("images") or {}).items():
        files.setdefault(rel, (datasets, HOW_TO_OBTAIN.get(datasets[0], "see the README section 'Data'")))
    for r in reports:
        for rel, how in r.needs:
            files.setdefault(rel, (r.images.get(rel, []), how))
    return files


def run_check(overrides: Sequence[str], all_sweeps: bool = False, out: Any = None) -> int:
    """Print the report; 0 when every judged sweep can run, else 1. DataError for a bad override."""
    out = out or sys.stdout
    named, rest = split_sweep(overrides)
    known = sweep_names()
    if named is not None and named not in known:
        raise DataError(f"unknown sweep {named!r}; known: {', '.join(known)}")
    try:
        base_cfg = compose_config(rest)
        base = OmegaConf.to_container(base_cfg, resolve=True)
    except SweepError as exc:
        raise DataError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - an interpolation that does not resolve: the user's override
        raise DataError(f"bad override: {str(exc).splitlines()[0]}") from None
    assert isinstance(base, dict)
    root = resolve_root((base.get("data") or {}).get("root") or ".")
    judged = known if (named is None or all_sweeps) else [named]
    reports = [inspect_sweep(n, rest) for n in known]
    if named is not None and not all_sweeps:
        mine = next(r for r in reports if r.name == named)
        if mine.error:
            raise DataError(f"sweep {named}: {mine.error}")

    state = "exists" if root.is_dir() else "does not exist"
    print(f"data root: {root} ({state}; {root_source(rest)})", file=out)
    print(f"embedded defaults: {EMBEDDED_DIR}", file=out)
    print("\ndata files:", file=out)
    files = known_files(base, root, reports)
    width = max(len(n) for n in files)
    found = {n: locate(root, n) for n in files}
    for name, (datasets, how) in files.items():
        f = found[name]
        detail = how_to_get(name, datasets, how, root) if f.where == "missing" else str(f.path)
        print(f"  {name:<{width}}  {f.where:<9}  {detail}", file=out)

    print("\nsweeps:", file=out)
    ok = True
    sw = max(len(n) for n in known)
    for r in reports:
        if r.name not in judged:
            continue
        if r.error:
            line, ready = f"cannot run: {r.error}", False
        else:
            where = {n: locate(r.root or root, n).where for n, _ in r.needs}
            lacking = [n for n, w in where.items() if w == "missing"]
            embedded = [n for n, w in where.items() if w == "embedded"]
            ready = not lacking
            line = ("ready" + (f" (embedded: {', '.join(embedded)})" if embedded else "")
                    if ready else f"lacks {', '.join(lacking)}")
        ok &= ready
        print(f"  {r.name:<{sw}}  {line}", file=out)
    return 0 if ok else 1
