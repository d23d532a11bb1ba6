"""Turn the composed Hydra config into checked, typed settings, failing with one clear line.

Everything a user can get wrong is checked here, before Ray starts: names of the space,
datasets and proxies, the proxies' settings, seeds, shard size, the cell selection's form,
the data files. Cell ids themselves are checked against the space in ``plan``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import proxies as proxy_registry
from orchestrator.ensembles import parse_ensembles
from orchestrator.errors import SweepError
from spaces import SPACES, make_space
from spaces.base import require_files
from spaces.batches import NORMALIZATION, BatchSpec
from spaces.data_root import MissingDataError, find_data, resolve_root
from spaces.images import HOW_TO_OBTAIN

CELL_SELECTIONS = {
    "all": (),
    "sample": ("n", "seed"),
    "range": ("start", "stop"),
    "ids": ("ids",),
    "file": ("path",),
    "truth": (),  # optional n and seed: a seeded sample of n of them
}


@dataclass(frozen=True)
class ProxyRun:
    """A proxy requested by the sweep, with its settings from ``proxy.<name>``."""

    name: str
    params: Mapping[str, Any]

    @property
    def batch(self) -> BatchSpec | None:
        """The (first) fixed batch this proxy reads, or None if it reads no images."""
        if not proxy_registry.get_proxy(self.name).uses_images:
            return None
        return proxy_registry.batch_spec(self.params)

    @property
    def batches(self) -> tuple[BatchSpec, ...]:
        """Every fixed batch this proxy reads: ``num_batches`` of them (default 1)."""
        if not proxy_registry.get_proxy(self.name).uses_images:
            return ()
        return proxy_registry.batch_specs(self.params)


@dataclass(frozen=True)
class Settings:
    """A checked sweep."""

    name: str
    space: str
    space_settings: Mapping[str, Any]
    datasets: tuple[str, ...]
    proxies: tuple[ProxyRun, ...]
    seeds: tuple[int, ...]
    cells: Mapping[str, Any]
    shard_size: int
    max_cell_attempts: int
    retry_errors: bool
    data_root: Path
    images: Mapping[str, Path]
    out_dir: Path
    device: str
    cluster: Mapping[str, Any]
    metrics: Mapping[str, Any]
    reduce: bool
    resolved: Mapping[str, Any] = field(repr=False)

    def truth_column(self, dataset: str) -> str:
        return str(self.space_settings["truth"][dataset])

    def batch_specs(self) -> tuple[BatchSpec, ...]:
        """Every distinct fixed batch the requested proxies read."""
        return tuple(sorted({spec for p in self.proxies for spec in p.batches}))

    def score_fingerprint(self) -> dict[str, Any]:
        """What the scores of a shard depend on besides its job and cells; a rerun into the
        same folder must match it, so files of different settings never mix."""
        space = {k: v for k, v in self.space_settings.items() if k not in ("truth", "cache_dir")}
        return {
            "space": self.space,
            "space_settings": space,
            "cells": dict(self.cells),
            "shard_size": self.shard_size,
            "proxies": {p.name: dict(p.params) for p in self.proxies},
            "images": {d: self.images[d].name for d in self.datasets},
        }


def _container(node: Any, where: str) -> Any:
    try:
        return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) or OmegaConf.is_list(node) else node
    except OmegaConfBaseException as exc:
        raise SweepError(f"bad value in {where}: {exc}".splitlines()[0]) from None


def _int_list(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise SweepError(f"{where} must be a non-empty list of integers, e.g. {where}=[0,1,2]")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            raise SweepError(f"{where} must hold integers; got {v!r}")
        out.append(v)
    if len(set(out)) != len(out):
        raise SweepError(f"{where} lists a value twice: {out}")
    return tuple(out)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise SweepError(f"{where} must be a non-empty list, e.g. {where}=[a,b]")
    out = tuple(str(v) for v in value)
    if len(set(out)) != len(out):
        raise SweepError(f"{where} lists a name twice: {list(out)}")
    return out


def _check_sample(n: Any, seed: Any, n_must_be: str) -> None:
    """The size and seed of a seeded sample of cells."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SweepError(f"cells.n must be {n_must_be}; got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SweepError(f"cells.seed must be an integer; got {seed!r}")


def _check_cells(cells: Mapping[str, Any]) -> dict[str, Any]:
    select = cells.get("select")
    if select not in CELL_SELECTIONS:
        raise SweepError(f"cells.select must be one of {sorted(CELL_SELECTIONS)}; got {select!r}")
    picked = {"select": select}
    for key in CELL_SELECTIONS[select]:
        if cells.get(key) is None:
            raise SweepError(f"cells={select} needs cells.{key}")
        picked[key] = cells[key]
    if select == "sample":
        _check_sample(picked["n"], picked["seed"], "a positive integer")
    elif select == "truth":
        n, seed = cells.get("n"), cells.get("seed", 0)
        if n is not None:
            _check_sample(n, seed, "a positive integer or null (every cell with truth)")
            picked.update(n=n, seed=seed)
    elif select == "range":
        start, stop = picked["start"], picked["stop"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop)) or not 0 <= start < stop:
            raise SweepError(f"cells.start and cells.stop must be integers with 0 <= start < stop; got {start!r}, {stop!r}")
    elif select == "ids":
        ids = picked["ids"]
        if isinstance(ids, (str, int)):
            ids = [ids]
        if not isinstance(ids, list) or not ids:
            raise SweepError("cells=ids needs a non-empty list, e.g. cells.ids=[0,17,42]")
        picked["ids"] = [str(i) for i in ids]
    elif select == "file":
        path = Path(str(picked["path"])).expanduser().resolve()
        if not path.is_file():
            raise SweepError(f"cells.path: no such file {path}")
        picked["path"] = str(path)
    return picked


def _check_proxy(name: str, params: Any) -> ProxyRun:
    if not isinstance(params, Mapping):
        raise SweepError(f"proxy {name!r} has no settings under proxy.{name} (conf/proxy/{name}.yaml)")
    run = ProxyRun(name, dict(params))
    if proxy_registry.get_proxy(name).uses_images:
        for key in ("batch_size", "augment"):
            if key not in params:
                raise SweepError(f"proxy.{name}.{key} is missing")
        if not isinstance(params["batch_size"], int) or params["batch_size"] < 1:
            raise SweepError(f"proxy.{name}.batch_size must be a positive integer")
        count = params.get("num_batches", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise SweepError(f"proxy.{name}.num_batches must be a positive integer")
    mode = params.get("mode", "train")
    if mode not in ("train", "eval"):
        raise SweepError(f"proxy.{name}.mode must be train or eval; got {mode!r}")
    return run


def load_settings(cfg: DictConfig, check_files: bool = True) -> Settings:
    """Check ``cfg`` and return the settings; SweepError with one line if anything is off."""
    resolved = _container(cfg, "the config")
    sweep = resolved.get("sweep") or {}
    space = str(sweep.get("space"))
    if space not in SPACES:
        raise SweepError(f"unknown search space {space!r}; known: {', '.join(sorted(SPACES))}")
    space_settings = (resolved.get("space") or {}).get(space)
    if not isinstance(space_settings, Mapping):
        raise SweepError(f"space {space!r} has no settings under space.{space} (conf/space/{space}.yaml)")
    known_datasets = make_space(space, space_settings).num_classes
    datasets = _str_list(sweep.get("datasets"), "sweep.datasets")
    for d in datasets:
        if d not in known_datasets:
            raise SweepError(f"space {space} has no dataset {d!r}; known: {', '.join(known_datasets)}")
        if d not in space_settings.get("truth", {}):
            raise SweepError(f"space.{space}.truth has no column for dataset {d!r}")
        if d not in NORMALIZATION:
            raise SweepError(f"no image normalization known for dataset {d!r}")
    names = _str_list(sweep.get("proxies"), "sweep.proxies")
    for n in names:
        if n not in proxy_registry.PROXIES:
            raise SweepError(f"unknown proxy {n!r}; known: {', '.join(sorted(proxy_registry.PROXIES))}")
    proxy_settings = resolved.get("proxy") or {}
    runs = tuple(_check_proxy(n, proxy_settings.get(n)) for n in names)
    try:  # checked now so a typo fails before scoring, not in the reducer hours later
        parse_ensembles(resolved.get("ensembles"), known=proxy_registry.PROXIES)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    seeds = _int_list(sweep.get("seeds"), "sweep.seeds")
    shard_size = sweep.get("shard_size")
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise SweepError(f"sweep.shard_size must be a positive integer; got {shard_size!r}")
    attempts = sweep.get("max_cell_attempts", 2)
    if not isinstance(attempts, int) or attempts < 1:
        raise SweepError(f"sweep.max_cell_attempts must be a positive integer; got {attempts!r}")
    retry_errors = sweep.get("retry_errors", False)
    if not isinstance(retry_errors, bool):
        raise SweepError(f"sweep.retry_errors must be true or false; got {retry_errors!r}")
    cells = _check_cells(resolved.get("cells") or {})
    data = resolved.get("data") or {}
    root = resolve_root(data.get("root") or ".")
    images_cfg = data.get("images") or {}
    images = {}
    for d in datasets:
        if d not in images_cfg:
            raise SweepError(f"data.images has no entry for dataset {d!r}")
        images[d] = find_data(root, str(images_cfg[d]))
    device = str(resolved.get("device", "auto"))
    if device not in ("auto", "cpu", "cuda"):
        raise SweepError(f"device must be auto, cpu or cuda; got {device!r}")
    settings = Settings(
        name=str(sweep.get("name", "adhoc")),
        space=space,
        space_settings=space_settings,
        datasets=datasets,
        proxies=runs,
        seeds=seeds,
        cells=cells,
        shard_size=shard_size,
        max_cell_attempts=attempts,
        retry_errors=retry_errors,
        data_root=root,
        images=images,
        out_dir=Path(str(resolved.get("out_dir", "outputs"))).expanduser().resolve(),
        device=device,
        cluster=resolved.get("cluster") or {},
        metrics=resolved.get("metrics") or {},
        reduce=bool(resolved.get("reduce", True)),
        resolved=resolved,
    )
    if check_files:
        check_data_files(settings)
    return settings


def data_needs(settings: Settings) -> list[tuple[str, str]]:
    """Every data file the sweep reads, as (name under the data root, how to obtain it):
    the space's tables, then each dataset's images."""
    space = make_space(settings.space, settings.space_settings, settings.data_root)
    needs = list(space.required_files())
    for d in settings.datasets:
        needs.append((str((settings.resolved.get("data") or {})["images"][d]), HOW_TO_OBTAIN.get(d, "see the README")))
    return needs


def check_data_files(settings: Settings) -> None:
    """SweepError naming the first missing file (truth table, image files) and its source."""
    try:
        require_files(settings.data_root, data_needs(settings))
    except MissingDataError as exc:
        raise SweepError(str(exc)) from None
