"""The composed Hydra config, parsed once into typed, checked settings.

Everything a user can get wrong is checked here, before Ray starts, with one clear line:
names of the space, datasets and proxies, every proxy's and space's settings (against the
defaults they were registered with), whether the space builds the network each proxy asks
for, seeds, shard size, the cell selection, the cluster and metrics sections, ensembles,
plugins, the data files. Cell ids themselves are checked against the space in ``plan``.
The driver, the reducer and the report all take these objects; nothing downstream reads
the raw config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import proxies as proxy_registry
from orchestrator.ensembles import Ensemble, parse_ensembles
from orchestrator.errors import SweepError
from orchestrator.plugins import load_plugins
from proxies.networks import requested_variant
from spaces import SPACES, get_space
from spaces.base import SearchSpace, require_files, require_variant
from benchdata.batches import NORMALIZATION, BatchSpec
from benchdata.root import MissingDataError, find_data, resolve_root
from benchdata.images import HOW_TO_OBTAIN
from spaces.registry import score_settings, truth_columns

#: cell selections and the settings each needs
CELL_SELECTIONS = {
    "all": (),
    "sample": ("n", "seed"),
    "range": ("start", "stop"),
    "ids": ("ids",),
    "file": ("path",),
    "truth": (),  # optional n and seed: a seeded sample of n of them
}
DEVICES = ("auto", "cpu", "cuda")
#: Ray schedules GPU fractions to 1/10,000; past 64 actors a GPU's share of memory and
#: time per actor is too small to score any network
MAX_ACTORS_PER_GPU = 64
#: networks built ahead are held in memory (CPU) until scored
MAX_BUILD_AHEAD = 16


@dataclass(frozen=True)
class ProxyRun:
    """A proxy requested by the sweep, with its checked settings."""

    name: str
    params: Mapping[str, Any]

    @property
    def proxy(self) -> proxy_registry.Proxy:
        return proxy_registry.get_proxy(self.name)

    @property
    def batches(self) -> tuple[BatchSpec, ...]:
        """Every fixed batch this proxy reads: ``num_batches`` of them (default 1)."""
        if not self.proxy.uses_images:
            return ()
        return proxy_registry.batch_specs(self.params)


@dataclass(frozen=True)
class CellSelection:
    """Which cells of the space a sweep scores (``cells=...`` in the config)."""

    select: str
    n: int | None = None
    seed: int = 0
    start: int = 0
    stop: int = 0
    ids: tuple[str, ...] = ()
    path: str | None = None

    def describe(self) -> dict[str, Any]:
        """The settings that matter for this kind of selection."""
        keys = {"sample": ("n", "seed"), "range": ("start", "stop"), "ids": ("ids",), "file": ("path",),
                "truth": ("n", "seed") if self.n is not None else ()}.get(self.select, ())
        return {"select": self.select, **{k: getattr(self, k) for k in keys}}


@dataclass(frozen=True)
class ClusterSettings:
    """Where the scorer actors run (``cluster=...``)."""

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265
    num_actors: int | None = None
    max_actor_restarts: int = 3
    #: scorer actors sharing each GPU (None: chosen per node, ``orchestrator.placement``)
    actors_per_gpu: int | None = None
    #: torch threads of each scorer actor (None: 1 for a CPU actor, the GPU's CPUs shared
    #: among its actors for a GPU actor); a CPU actor holds that many CPUs
    threads_per_actor: int | None = None
    #: cells whose networks an actor builds ahead in its builder process while it scores
    #: (None: 2 for GPU actors, 0 for CPU actors; 0 builds in the actor, as before)
    build_ahead: int | None = None


@dataclass(frozen=True)
class BootstrapSettings:
    """How the reducer's intervals are computed (``metrics.bootstrap``): ``n_boot``
    resamples of cells (at least 100), a two-sided ``level`` in (0, 1), the resamples'
    ``seed``, and the number of cells above which the correlations get Fisher z intervals
    instead of bootstrap ones (``asymptotic_above``)."""

    n_boot: int = 1000
    level: float = 0.95
    seed: int = 0
    asymptotic_above: int = 2000


@dataclass(frozen=True)
class MetricSettings:
    """What the reducer computes (``metrics``)."""

    top_k_percent: tuple[float, ...] = (1, 5, 10, 50)
    kendall_top_percent: float = 10
    bootstrap: BootstrapSettings = BootstrapSettings()


@dataclass(frozen=True)
class Settings:
    """A checked sweep."""

    name: str
    space: str
    space_settings: Mapping[str, Any]
    datasets: tuple[str, ...]
    proxies: tuple[ProxyRun, ...]
    seeds: tuple[int, ...]
    cells: CellSelection
    shard_size: int
    max_cell_attempts: int
    retry_errors: bool
    data_root: Path
    image_names: Mapping[str, str]
    out_dir: Path
    device: str
    cluster: ClusterSettings
    metrics: MetricSettings
    ensembles: tuple[Ensemble, ...]
    plugins: tuple[str, ...]
    reduce: bool
    resolved: Mapping[str, Any] = field(repr=False)

    @cached_property
    def search_space(self) -> SearchSpace:
        """The space, built once per process (it caches its cell and truth tables)."""
        entry = get_space(self.space)
        return entry.cls(dict(self.space_settings), self.data_root)

    @property
    def images(self) -> dict[str, Path]:
        """Where each dataset's images are: under the data root, else embedded."""
        return {d: find_data(self.data_root, name) for d, name in self.image_names.items()}

    def truth_columns(self, dataset: str) -> tuple[str, ...]:
        """The accuracy columns the metrics of ``dataset`` are computed against, the main
        one first (``space.<name>.truth.<dataset>``: a column or a list of them)."""
        return truth_columns(self.space_settings["truth"], dataset)

    def batch_specs(self) -> tuple[BatchSpec, ...]:
        """Every distinct fixed batch the requested proxies read."""
        return tuple(sorted({spec for p in self.proxies for spec in p.batches}))

    def space_score_settings(self) -> dict[str, Any]:
        """The space settings a score depends on (not where truth or caches are)."""
        return score_settings(self.space_settings)


# --- small checks, each one line --------------------------------------------------------
def _container(node: Any, where: str) -> Any:
    try:
        if isinstance(node, DictConfig) or OmegaConf.is_list(node):
            return OmegaConf.to_container(node, resolve=True)
        return node
    except OmegaConfBaseException as exc:
        raise SweepError(f"bad value in {where}: {exc}".splitlines()[0]) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any, where: str) -> int:
    if not _is_int(value) or value < 1:
        raise SweepError(f"{where} must be a positive integer; got {value!r}")
    return value


def _optional_positive_int(value: Any, where: str) -> int | None:
    return None if value is None else _positive_int(value, where)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SweepError(f"{where} must be true or false; got {value!r}")
    return value


def _int_list(value: Any, where: str) -> tuple[int, ...]:
    if _is_int(value):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise SweepError(f"{where} must be a non-empty list of integers, e.g. {where}=[0,1,2]")
    for v in value:
        if not _is_int(v):
            raise SweepError(f"{where} must hold integers; got {v!r}")
        if not -2**63 <= v < 2**63:  # the scores' seed column is int64
            raise SweepError(f"{where} must hold 64-bit integers; got {v!r}")
    if len(set(value)) != len(value):
        raise SweepError(f"{where} lists a value twice: {list(value)}")
    return tuple(value)


def _str_list(value: Any, where: str, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if value is None and allow_empty:
        value = []
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise SweepError(f"{where} must be a non-empty list, e.g. {where}=[a,b]")
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise SweepError(f"{where} must hold names; got {list(value)}")
    out = tuple(str(v) for v in value)
    if len(set(out)) != len(out):
        raise SweepError(f"{where} lists a name twice: {list(out)}")
    return out


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SweepError(f"{where} must be a mapping of settings; got {value!r}")
    return value


def parse_cells(cells: Mapping[str, Any]) -> CellSelection:
    """The cell selection, its form checked (ids are checked against the space later)."""
    select = cells.get("select")
    if not isinstance(select, str) or select not in CELL_SELECTIONS:  # a list is no key of the dict
        raise SweepError(f"cells.select must be one of {sorted(CELL_SELECTIONS)}; got {select!r}")
    for key in CELL_SELECTIONS[select]:
        if cells.get(key) is None:
            raise SweepError(f"cells={select} needs cells.{key}")
    if select in ("sample", "truth"):
        n, seed = cells.get("n"), cells.get("seed", 0)
        if select == "sample" or n is not None:
            _positive_int(n, "cells.n")
            if not _is_int(seed) or seed < 0:  # numpy's generators take no negative seed
                raise SweepError(f"cells.seed must be a non-negative integer; got {seed!r}")
        return CellSelection(select, n=n, seed=seed if n is not None else 0)
    if select == "range":
        start, stop = cells["start"], cells["stop"]
        if not (_is_int(start) and _is_int(stop)) or not 0 <= start < stop:
            raise SweepError(f"cells.start and cells.stop must be integers with 0 <= start < stop; got {start!r}, {stop!r}")
        return CellSelection(select, start=start, stop=stop)
    if select == "ids":
        ids = cells["ids"]
        if isinstance(ids, (str, int)) and not isinstance(ids, bool):
            ids = [ids]
        if not isinstance(ids, (list, tuple)) or not ids:
            raise SweepError("cells=ids needs a non-empty list, e.g. cells.ids=[0,17,42]")
        if not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
            raise SweepError(f"cells.ids must hold cell ids; got {list(ids)}")
        return CellSelection(select, ids=tuple(str(i) for i in ids))
    if select == "file":
        path = Path(str(cells["path"])).expanduser().resolve()
        if not path.is_file():
            raise SweepError(f"cells.path: no such file {path}")
        return CellSelection(select, path=str(path))
    return CellSelection(select)


def parse_cluster(cluster: Mapping[str, Any]) -> ClusterSettings:
    address = cluster.get("address")
    if address is not None and not isinstance(address, str):
        raise SweepError(f"cluster.address must be auto, HOST:PORT or ray://HOST:PORT; got {address!r}")
    host = cluster.get("dashboard_host", "127.0.0.1")
    if not isinstance(host, str):
        raise SweepError(f"cluster.dashboard_host must be an address; got {host!r}")
    port = cluster.get("dashboard_port", 8265)
    if not _is_int(port) or not 0 < port < 65536:
        raise SweepError(f"cluster.dashboard_port must be a port number; got {port!r}")
    restarts = cluster.get("max_actor_restarts", 3)
    if not _is_int(restarts) or restarts < 0:
        raise SweepError(f"cluster.max_actor_restarts must be a non-negative integer; got {restarts!r}")
    return ClusterSettings(
        address=address or None,
        num_cpus=_optional_positive_int(cluster.get("num_cpus"), "cluster.num_cpus"),
        num_gpus=None if cluster.get("num_gpus") is None else _non_negative(cluster.get("num_gpus"), "cluster.num_gpus"),
        dashboard=_bool(cluster.get("dashboard", True), "cluster.dashboard"),
        dashboard_host=host, dashboard_port=port,
        num_actors=_optional_positive_int(cluster.get("num_actors"), "cluster.num_actors"),
        max_actor_restarts=restarts,
        actors_per_gpu=_bounded(cluster.get("actors_per_gpu"), "cluster.actors_per_gpu", 1, MAX_ACTORS_PER_GPU),
        threads_per_actor=_bounded(cluster.get("threads_per_actor"), "cluster.threads_per_actor", 1, 1024),
        build_ahead=_bounded(cluster.get("build_ahead"), "cluster.build_ahead", 0, MAX_BUILD_AHEAD),
    )


def _bounded(value: Any, where: str, low: int, high: int) -> int | None:
    """null, or an integer from ``low`` to ``high``."""
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise SweepError(f"{where} must be null (automatic) or an integer from {low} to {high}; got {value!r}")
    return value


def _non_negative(value: Any, where: str) -> int:
    if not _is_int(value) or value < 0:
        raise SweepError(f"{where} must be a non-negative integer; got {value!r}")
    return value


def _percent(value: Any, where: str) -> float:
    if not (_is_int(value) or isinstance(value, float)) or not 0 < value <= 100:
        raise SweepError(f"{where} must be a percentage in (0, 100]; got {value!r}")
    return float(value)


def parse_bootstrap(boot: Mapping[str, Any]) -> BootstrapSettings:
    """``metrics.bootstrap``, every key checked (an unknown key is a typo, not ignored)."""
    default = BootstrapSettings()
    unknown = sorted(set(boot) - {"n_boot", "level", "seed", "asymptotic_above"})
    if unknown:
        raise SweepError(f"unknown setting metrics.bootstrap.{unknown[0]}; known: asymptotic_above, level, n_boot, seed")
    n_boot = boot.get("n_boot", default.n_boot)
    if not _is_int(n_boot) or not 100 <= n_boot <= 1_000_000:
        raise SweepError(f"metrics.bootstrap.n_boot must be an integer from 100 to 1000000; got {n_boot!r}")
    level = boot.get("level", default.level)
    if not (_is_int(level) or isinstance(level, float)) or not 0 < level < 1:
        raise SweepError(f"metrics.bootstrap.level must be a confidence level in (0, 1), e.g. 0.95; got {level!r}")
    seed = boot.get("seed", default.seed)
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise SweepError(f"metrics.bootstrap.seed must be a non-negative 64-bit integer; got {seed!r}")
    above = boot.get("asymptotic_above", default.asymptotic_above)
    if not _is_int(above) or not 10 <= above < 2**63:
        raise SweepError(f"metrics.bootstrap.asymptotic_above must be an integer of at least 10 (cells); got {above!r}")
    return BootstrapSettings(n_boot=n_boot, level=float(level), seed=seed, asymptotic_above=above)


def parse_metrics(metrics: Mapping[str, Any]) -> MetricSettings:
    top = metrics.get("top_k_percent", (1, 5, 10, 50))
    if not isinstance(top, (list, tuple)) or not top:
        raise SweepError(f"metrics.top_k_percent must be a non-empty list of percentages; got {top!r}")
    return MetricSettings(
        top_k_percent=tuple(_percent(k, "metrics.top_k_percent") for k in top),
        kendall_top_percent=_percent(metrics.get("kendall_top_percent", 10), "metrics.kendall_top_percent"),
        bootstrap=parse_bootstrap(_mapping(metrics.get("bootstrap"), "metrics.bootstrap")),
    )


def parse_proxy(name: str, overrides: Any, space: str, space_settings: Mapping[str, Any]) -> ProxyRun:
    """The proxy's registered defaults with the config's values and the space's constants
    (``proxy_constants``) where a setting is left to the space; each value checked."""
    constants = space_settings.get("proxy_constants") or {}
    try:
        return ProxyRun(name, proxy_registry.get_proxy(name).settings(_mapping(overrides, f"proxy.{name}"), space,
                                                                      constants))
    except ValueError as exc:
        raise SweepError(str(exc)) from None


def check_proxy_constants(space: str, space_settings: Mapping[str, Any]) -> None:
    """SweepError unless every entry of the space's ``proxy_constants`` names a proxy and a
    setting that proxy takes from the space: a misspelt constant must not be ignored."""
    constants = _mapping(space_settings.get("proxy_constants"), f"space.{space}.proxy_constants")
    for name, values in constants.items():
        where = f"space.{space}.proxy_constants.{name}"
        if name not in proxy_registry.PROXIES:
            raise SweepError(f"{where}: unknown proxy {name!r}; known: {', '.join(sorted(proxy_registry.PROXIES))}")
        taken = proxy_registry.PROXIES[name].from_space
        for key in _mapping(values, where):
            if key not in taken:
                raise SweepError(f"{where}.{key}: {name} takes no setting {key!r} from the space "
                                 f"(it takes: {', '.join(taken) or 'none'})")


# --- the whole config -------------------------------------------------------------------
def load_settings(cfg: DictConfig | Mapping[str, Any], check_files: bool = True) -> Settings:
    """Check ``cfg`` and return the settings; SweepError with one line if anything is off."""
    resolved = _container(cfg, "the config")
    if not isinstance(resolved, Mapping):
        raise SweepError("the config must be a mapping")
    plugins = _str_list(resolved.get("plugins"), "plugins", allow_empty=True)
    load_plugins(plugins)
    sweep = _mapping(resolved.get("sweep"), "sweep")
    space = str(sweep.get("space"))
    if space not in SPACES:
        raise SweepError(f"unknown search space {space!r}; known: {', '.join(sorted(SPACES))}")
    try:
        space_settings = get_space(space).settings(_mapping((resolved.get("space") or {}).get(space), f"space.{space}"))
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    known_datasets = get_space(space).cls.num_classes
    datasets = _str_list(sweep.get("datasets"), "sweep.datasets")
    truth = _mapping(space_settings.get("truth"), f"space.{space}.truth")
    for d in datasets:
        if d not in known_datasets:
            raise SweepError(f"space {space} has no dataset {d!r}; known: {', '.join(known_datasets)}")
        if d not in truth:
            raise SweepError(f"space.{space}.truth has no column for dataset {d!r}")
        if d not in NORMALIZATION:
            raise SweepError(f"no image normalization known for dataset {d!r}")
    names = _str_list(sweep.get("proxies"), "sweep.proxies")
    for n in names:
        if n not in proxy_registry.PROXIES:
            raise SweepError(f"unknown proxy {n!r}; known: {', '.join(sorted(proxy_registry.PROXIES))}")
    proxy_cfg = _mapping(resolved.get("proxy"), "proxy")
    runs = tuple(parse_proxy(n, proxy_cfg.get(n), space, space_settings) for n in names)
    check_proxy_constants(space, space_settings)
    try:  # checked now so a typo fails before scoring, not in the reducer hours later
        ensembles = tuple(parse_ensembles(resolved.get("ensembles"), known=proxy_registry.PROXIES))
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    data = _mapping(resolved.get("data"), "data")
    images_cfg = _mapping(data.get("images"), "data.images")
    for d in datasets:
        if not isinstance(images_cfg.get(d), str) or not images_cfg.get(d):
            raise SweepError(f"data.images has no file for dataset {d!r}")
    device = resolved.get("device", "auto")
    if device not in DEVICES:
        raise SweepError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    out_dir = resolved.get("out_dir")
    if not isinstance(out_dir, str) or not out_dir.strip():
        raise SweepError(f"out_dir must be a folder path; got {out_dir!r}")
    settings = Settings(
        name=str(sweep.get("name", "adhoc")),
        space=space,
        space_settings=space_settings,
        datasets=datasets,
        proxies=runs,
        seeds=_int_list(sweep.get("seeds"), "sweep.seeds"),
        cells=parse_cells(_mapping(resolved.get("cells"), "cells")),
        shard_size=_positive_int(sweep.get("shard_size"), "sweep.shard_size"),
        max_cell_attempts=_positive_int(sweep.get("max_cell_attempts", 2), "sweep.max_cell_attempts"),
        retry_errors=_bool(sweep.get("retry_errors", False), "sweep.retry_errors"),
        data_root=resolve_root(str(data.get("root") or ".")),
        image_names={d: str(images_cfg[d]) for d in datasets},
        out_dir=Path(out_dir).expanduser().resolve(),
        device=device,
        cluster=parse_cluster(_mapping(resolved.get("cluster"), "cluster")),
        metrics=parse_metrics(_mapping(resolved.get("metrics"), "metrics")),
        ensembles=ensembles,
        plugins=plugins,
        reduce=_bool(resolved.get("reduce", True), "reduce"),
        resolved=resolved,
    )
    check_networks(settings)
    if check_files:
        check_data_files(settings)
    return settings


def check_networks(settings: Settings) -> None:
    """SweepError naming the proxy's ``network`` setting if the space cannot build the
    network a proxy asks for (``spaces.base.BuildsVariants``): once, before any work."""
    for run in settings.proxies:
        variant = requested_variant(run.params)
        if variant is None:
            continue
        try:
            require_variant(settings.search_space, variant)
        except ValueError as exc:
            network = run.params["network"]
            raise SweepError(f"proxy.{run.name}.network={network}: {exc}; set proxy.{run.name}.network=full "
                             f"to score the benchmark's network") from None


def data_needs(settings: Settings) -> list[tuple[str, str]]:
    """Every data file the sweep reads, as (name under the data root, how to obtain it):
    the space's tables, then each dataset's images."""
    needs = list(settings.search_space.required_files())
    for d in settings.datasets:
        needs.append((settings.image_names[d], HOW_TO_OBTAIN.get(d, "see the README")))
    return needs


def check_data_files(settings: Settings) -> None:
    """SweepError naming the first missing file (truth table, image files) and its source."""
    try:
        require_files(settings.data_root, data_needs(settings))
    except MissingDataError as exc:
        raise SweepError(str(exc)) from None
