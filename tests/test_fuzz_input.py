"""Bad input, fuzzed (issue 12, part 4): every input either runs or stops with one line
before Ray starts, and a stop leaves the output folder as it was.

"Before Ray starts" is, concretely, ``prepare(load_settings(compose_config(overrides)))``:
compose the Hydra config, check the settings, take the output folder, check the stored
shards, plan the missing work, read the images, draw the fixed batches, write
``sweep.json`` and ``config.yaml``. ``before_ray`` runs that path in this process with
``cluster.address`` at a closed port and with ``ray.init`` and the driver's ``connect``
replaced by functions that fail the test, so reaching Ray would be seen. For every
generated input, exactly one of:

- ``prepare`` returns pending shards, and the new output folder holds exactly ``.lock``,
  ``sweep.json`` and ``config.yaml`` (no ``scores/``); the settings carry what was asked;
- it raises SweepError whose message is one line, and NOTHING was written: the output
  folder, absent before, is still absent (not even ``.lock`` or an empty folder), and the
  temporary place around it is empty.

Any other exception is a bug of the module that owns the check. Most properties also have
an oracle, a rule for the value stated here independently (a positive integer, an id of the
space, pixels 0..255, ...), that says which outcome is due; an error must then name the
setting or the file at fault. Where a rule cannot say (a flipped byte may land in a field
nobody reads), either outcome is allowed but a success must give the undamaged data.

Hypothesis runs derandomized (the same examples on every run, no example database) with
small example counts, so the module takes about two minutes on two cores. The few
``python -m orchestrator`` runs at the end check the command line itself: exactly one
``proxysweep: error:`` line, exit status 2, nothing in ``out_dir`` (Hydra makes the folder).
"""
from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray
from conftest import DATA_ROOT, HAVE_SHARED, REPO, data_file
from handmade import manifest, row, store_pending, write_folder
from hypothesis import HealthCheck, event, given, settings as hyp_settings, strategies as st
from hypothesis.control import currently_in_test_context
from omegaconf import OmegaConf

from orchestrator.config import compose_config
from orchestrator.errors import SweepError
from orchestrator.manifest import image_digest
from orchestrator.plan import Job
from orchestrator.reduce import compute_metrics
from orchestrator.settings import Settings, load_settings
from orchestrator.store import ScoreStore, StoredShard
from orchestrator.sweep import Prepared, cells_with_truth, prepare
from proxies import PROXIES
from benchdata.batches import BatchSpec
from benchdata.root import EMBEDDED_DIR

NB201_CELLS = 15625
SMOKE_IMAGES = 1000  # cifar10_smoke.npz, the smoke sweep's images
SMOKE = ("+sweep=nb201_smoke", "cluster.address=127.0.0.1:1")
NB101 = ("+sweep=nb101_sample", "cluster.address=127.0.0.1:1", "data.images.cifar10=cifar10_smoke.npz")
FOLDER_AFTER_PREPARE = {".lock", "sweep.json", "config.yaml"}


def fuzz(examples: int) -> Callable:
    """Hypothesis settings of this module: reproducible, no deadline (two shared cores)."""
    return hyp_settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                               HealthCheck.filter_too_much])


# --- the pre-Ray path, once per example -------------------------------------------------
class RayReached(AssertionError):
    """Raised by the stand-ins for ray.init and the driver's connect."""


@dataclass
class Run:
    """What one pass through the pre-Ray path gave."""

    error: str | None = None
    settings: Settings | None = None
    prepared: Prepared | None = None

    def expect(self, valid: bool | None, names: Sequence[str] = ()) -> None:
        """The oracle's verdict: success when ``valid``, else an error naming one of
        ``names`` (``None``: either outcome)."""
        if currently_in_test_context():  # --hypothesis-show-statistics shows the mix
            event("runs" if self.error is None else "stops")
        if valid is True:
            assert self.error is None, f"refused a valid input: {self.error}"
        elif valid is False:
            assert self.error is not None, "accepted an invalid input"
            assert not names or any(n in self.error for n in names), f"{self.error!r} names none of {names}"


def before_ray(overrides: Sequence[str], data_root: Path = DATA_ROOT, base: Sequence[str] = SMOKE) -> Run:
    """Compose, check and prepare in this process; assert the one-of-two contract."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        place = Path(tmp)
        out = place / "out"
        args = [*base, f"data.root={data_root}", *overrides, f"out_dir={out}"]
        run = Run()
        with mock.patch.object(ray, "init", side_effect=RayReached("ray.init called before Ray may start")), \
                mock.patch("orchestrator.sweep.connect", side_effect=RayReached("connect called")):
            try:
                run.settings = load_settings(compose_config(args))
                prepared = prepare(run.settings)
            except SweepError as exc:
                run.error = str(exc)
                assert run.error.strip(), "an empty error message"
                assert len(run.error.splitlines()) == 1, f"not one line: {run.error!r}"
                assert not any(place.iterdir()), f"a stopped run wrote {sorted(p.name for p in place.rglob('*'))}"
                return run
        try:
            written = {str(p.relative_to(out)) for p in out.rglob("*")}
            assert written == FOLDER_AFTER_PREPARE, written
            assert prepared.pending and prepared.pending_cells > 0
            run.prepared = prepared
        finally:
            prepared.store.unlock()
        return run


# --- Hydra values -----------------------------------------------------------------------
#: text that survives Hydra's quoted strings and OmegaConf untouched: no quotes, backslash,
#: interpolation, line breaks or control characters, no '?' ('???' is OmegaConf's MISSING)
TEXT = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"),
                             exclude_characters="'\"\\$?"), max_size=10)
SCALARS = st.one_of(
    st.integers(-3, 40), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(), TEXT,
)
#: any value a user may type: scalars, lists of them, nested lists
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


def hydra(value: Any) -> str:
    """``value`` as Hydra override text that parses back to ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "[" + ",".join(hydra(v) for v in value) + "]"
    raise TypeError(value)


def is_int(v: Any) -> bool:
    return type(v) is int


def positive(v: Any) -> bool:
    return is_int(v) and v >= 1


def number(v: Any) -> bool:
    return type(v) in (int, float)


def finite(v: Any) -> bool:
    try:
        return number(v) and math.isfinite(v)
    except OverflowError:  # an int past float's range
        return False


def names_of(v: Any) -> list[str] | None:
    """A name list as settings read it (one name, or a list of names or ints)."""
    v = [v] if isinstance(v, str) else v
    if not isinstance(v, list) or not v or not all(isinstance(x, str) or is_int(x) for x in v):
        return None
    return [str(x) for x in v]


# --- properties: one setting at a time, with its rule -------------------------------------
@dataclass(frozen=True)
class Field:
    """A setting, values worth trying (besides any value), its rule, and what a success
    must show."""

    key: str
    good: st.SearchStrategy
    rule: Callable[[Any], bool]
    names: tuple[str, ...] = ()
    shows: Callable[[Run, Any], bool] | None = None
    prefix: tuple[str, ...] = ()


def _proxy_needs(name: str, params: dict) -> int:
    """Images a proxy reads: a batch per one of its num_batches, or per repeat (TE-NAS)."""
    if not PROXIES[name].uses_images:
        return 0
    return params["batch_size"] * params.get("num_batches", params.get("repeat", 1))


def _proxies_rule(v: Any) -> bool:
    names = names_of(v)
    return (names is not None and len(set(names)) == len(names) and all(n in PROXIES for n in names)
            and all(_proxy_needs(n, dict(PROXIES[n].defaults)) <= SMOKE_IMAGES for n in names))


def _datasets_rule(v: Any) -> bool:
    names = names_of(v)
    usable = {"cifar10", "cifar100"} if HAVE_SHARED else {"cifar10"}  # cifar100's images are the shared sample
    return names is not None and len(set(names)) == len(names) and set(names) <= usable


@lru_cache(maxsize=None)
def nb201_table() -> pa.Table:
    """The real NB201 table, read once for the module."""
    return pq.read_table(data_file("nb201_accuracy.parquet"))


def nb201_numeric_columns() -> list[str]:
    return [f.name for f in nb201_table().schema if f.name not in ("arch_index", "arch_str")
            and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]


def _seeds(v: Any) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, list) else (v,)


FIELDS = [
    Field("sweep.seeds", st.integers(0, 9) | st.lists(st.integers(-5, 2**40), min_size=1, max_size=3, unique=True),
          lambda v: (is_int(v) and -(2**63) <= v < 2**63) or (
              isinstance(v, list) and bool(v) and all(is_int(x) and -(2**63) <= x < 2**63 for x in v)
              and len(set(v)) == len(v)),
          shows=lambda r, v: r.settings.seeds == _seeds(v) and {j.seed for j in r.prepared.plan.jobs} == set(_seeds(v))),
    Field("sweep.shard_size", st.integers(1, 70), positive,
          shows=lambda r, v: r.settings.shard_size == v and max(len(s) for s in r.prepared.pending) == min(v, 60)),
    Field("sweep.max_cell_attempts", st.integers(1, 5), positive, shows=lambda r, v: r.settings.max_cell_attempts == v),
    Field("sweep.retry_errors", st.booleans(), lambda v: type(v) is bool, shows=lambda r, v: r.settings.retry_errors is v),
    Field("reduce", st.booleans(), lambda v: type(v) is bool, shows=lambda r, v: r.settings.reduce is v),
    Field("sweep.datasets", st.sampled_from(["cifar10", "cifar100", ["cifar100", "cifar10"], ["ImageNet16-120"], ["mnist"]]),
          _datasets_rule, names=("dataset", "ImageNet16"),
          shows=lambda r, v: list(r.settings.datasets) == names_of(v)
          and {j.dataset for j in r.prepared.plan.jobs} == set(names_of(v))),
    Field("sweep.proxies", st.lists(st.sampled_from(sorted(PROXIES) + ["snap", "NASWOT"]), min_size=1, max_size=3),
          _proxies_rule, names=("sweep.proxies", "unknown proxy", "proxy."),
          shows=lambda r, v: [p.name for p in r.settings.proxies] == names_of(v)
          and {p for s in r.prepared.pending for p in s.proxies} == set(names_of(v))),
    Field("space.nb201.channels", st.integers(1, 64), positive, shows=lambda r, v: r.settings.space_settings["channels"] == v),
    Field("space.nb201.cells_per_stage", st.integers(1, 6), positive,
          shows=lambda r, v: r.settings.space_settings["cells_per_stage"] == v),
    Field("space.nb201.truth.cifar10", st.sampled_from(nb201_numeric_columns() + ["arch_str", "arch_index", "nope"]),
          lambda v: v in nb201_numeric_columns(), shows=lambda r, v: r.settings.truth_columns("cifar10") == (v,)),
    Field("space.nb201.truth_file", st.sampled_from(["nb201_accuracy.parquet", "nope.parquet", "cifar10_sample.npz", "README.md"]),
          lambda v: v == "nb201_accuracy.parquet",
          names=("space.nb201.truth_file", "missing data file", "is not a", ".parquet", ".npz", "README.md"),
          shows=lambda r, v: r.settings.space_settings["truth_file"] == v),
    Field("metrics.top_k_percent", st.lists(st.floats(0.01, 100) | st.integers(1, 100), min_size=1, max_size=4),
          lambda v: isinstance(v, list) and bool(v) and all(number(x) and 0 < x <= 100 for x in v),
          shows=lambda r, v: r.settings.metrics.top_k_percent == tuple(float(x) for x in v)),
    Field("metrics.kendall_top_percent", st.floats(0.01, 100) | st.integers(1, 100), lambda v: number(v) and 0 < v <= 100,
          shows=lambda r, v: r.settings.metrics.kendall_top_percent == float(v)),
    Field("cluster.num_cpus", st.none() | st.integers(1, 64), lambda v: v is None or positive(v),
          shows=lambda r, v: r.settings.cluster.num_cpus == v),
    Field("cluster.num_gpus", st.none() | st.integers(0, 8), lambda v: v is None or (is_int(v) and v >= 0),
          shows=lambda r, v: r.settings.cluster.num_gpus == v),
    Field("cluster.num_actors", st.none() | st.integers(1, 8), lambda v: v is None or positive(v),
          shows=lambda r, v: r.settings.cluster.num_actors == v),
    Field("cluster.actors_per_gpu", st.none() | st.integers(0, 70), lambda v: v is None or (is_int(v) and 1 <= v <= 64),
          shows=lambda r, v: r.settings.cluster.actors_per_gpu == v),
    Field("cluster.threads_per_actor", st.none() | st.integers(0, 8), lambda v: v is None or (is_int(v) and 1 <= v <= 1024),
          shows=lambda r, v: r.settings.cluster.threads_per_actor == v),
    Field("cluster.build_ahead", st.none() | st.integers(-1, 20), lambda v: v is None or (is_int(v) and 0 <= v <= 16),
          shows=lambda r, v: r.settings.cluster.build_ahead == v),
    Field("cluster.max_actor_restarts", st.integers(0, 5), lambda v: is_int(v) and v >= 0,
          shows=lambda r, v: r.settings.cluster.max_actor_restarts == v),
    Field("cluster.dashboard", st.booleans(), lambda v: type(v) is bool, shows=lambda r, v: r.settings.cluster.dashboard is v),
    Field("cluster.dashboard_port", st.integers(1, 65535), lambda v: is_int(v) and 0 < v < 65536,
          shows=lambda r, v: r.settings.cluster.dashboard_port == v),
    Field("cluster.dashboard_host", TEXT, lambda v: isinstance(v, str), shows=lambda r, v: r.settings.cluster.dashboard_host == v),
    Field("cluster.address", st.none() | st.sampled_from(["auto", "127.0.0.1:1", "ray://head:10001"]),
          lambda v: v is None or isinstance(v, str), shows=lambda r, v: r.settings.cluster.address == (v or None)),
    Field("device", st.sampled_from(["auto", "cpu", "cuda", "gpu", "CPU"]), lambda v: v in ("auto", "cpu", "cuda"),
          shows=lambda r, v: r.settings.device == v),
    Field("data.images.cifar10",
          st.sampled_from(["cifar10_smoke.npz", "cifar10_sample.npz", "nope.npz", "nb201_accuracy.parquet", "cifar-10-batches-py"]),
          lambda v: v == "cifar10_smoke.npz" or (v == "cifar10_sample.npz" and HAVE_SHARED), names=("data.images", "missing data file", ".npz", ".parquet"),
          shows=lambda r, v: r.prepared.manifest.images["cifar10"]["name"] == v),
]


def _proxy_rule(name: str, key: str, v: Any) -> bool:
    """A proxy setting's rule: the type of its default (a positive default stays positive,
    floats finite, None takes None or a positive integer), its choices, and the images."""
    proxy = PROXIES[name]
    default = proxy.defaults[key]
    if key == "mode" and v not in ("train", "eval"):
        return False
    if key in proxy.choices and v not in proxy.choices[key]:
        return False
    if type(default) is bool:
        ok = type(v) is bool
    elif type(default) is int:
        ok = is_int(v) and (v >= 1 or default < 1)
    elif type(default) is float:
        ok = finite(v)
    elif default is None:
        ok = v is None or positive(v)
    else:
        ok = isinstance(v, str)
    params = {**proxy.defaults, key: v}
    if ok and params.get("network") == "thin":  # a thin network: whole layers, and image channels without a stem
        ok = params["depth"] >= 0 and (params["stem"] or params["channels"] <= 3)
    return ok and _proxy_needs(name, params) <= SMOKE_IMAGES


def _good_for(default: Any, choices: Sequence[Any] | None, key: str) -> st.SearchStrategy:
    if choices:
        return st.sampled_from(list(choices))
    if key == "mode":
        return st.sampled_from(["train", "eval"])
    if type(default) is bool:
        return st.booleans()
    if type(default) is int:
        return st.integers(1, 6) if key in ("num_batches", "repeat", "channels") else st.integers(1, 300)
    if type(default) is float:
        return st.floats(-1e3, 1e3) | st.integers(-5, 5)
    if default is None:
        return st.none() | st.integers(1, 16)
    return TEXT


PROXY_FIELDS = [
    Field(f"proxy.{name}.{key}", _good_for(default, p.choices.get(key), key),
          (lambda n, k: lambda v: _proxy_rule(n, k, v))(name, key), names=(f"proxy.{name}",),
          shows=(lambda n, k, as_float: lambda r, v: next(x for x in r.settings.proxies if x.name == n).params[k]
                 == (float(v) if as_float else v))(name, key, type(default) is float),
          prefix=(f"sweep.proxies=[{name}]",))
    for name, p in sorted(PROXIES.items()) for key, default in sorted(p.defaults.items())
    if not isinstance(default, dict) and key not in p.from_space and _proxy_needs(name, dict(p.defaults)) <= SMOKE_IMAGES
] + [
    Field(where, st.lists(st.floats(-10, 10) | st.integers(-3, 3), min_size=2, max_size=2),
          lambda v: isinstance(v, list) and len(v) == 2 and all(finite(x) for x in v), names=("proxy.epsinas.weights",),
          shows=lambda r, v: list(r.settings.proxies[0].params["weights"]) == v,
          prefix=("sweep.proxies=[epsinas]",))
    for where in ("proxy.epsinas.weights", "space.nb201.proxy_constants.epsinas.weights")
]


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types (1 is not True, nan is nan)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def check_field(f: Field, value: Any) -> None:
    """One setting set to ``value``: the outcome the rule says, naming the setting."""
    override = f"{f.key}={hydra(value)}"
    cfg_value = None
    try:
        cfg_value = OmegaConf.to_container(compose_config([*SMOKE, *f.prefix, override]), resolve=False)
        for part in f.key.split("."):
            cfg_value = cfg_value[part]
    except SweepError:
        pass  # Hydra refused it: before_ray sees that too and must say so in one line
    else:
        assert same(cfg_value, value), f"Hydra read {override} as {cfg_value!r}: this test's rendering is wrong"
    run = before_ray([*f.prefix, override])
    valid = f.rule(value)
    run.expect(valid, (*(f.names or (f.key,)), "bad override"))
    if valid and f.shows is not None:
        assert f.shows(run, value), f"{override}: the settings do not show it"


@fuzz(60)
@given(st.sampled_from(FIELDS).flatmap(lambda f: st.tuples(st.just(f), st.one_of(f.good, f.good, VALUES))))
def test_each_setting_runs_or_names_itself(case: tuple[Field, Any]) -> None:
    """sweep.*, space.nb201.*, metrics.*, cluster.*, device, data.images.*: good values and
    any other value (ints, negatives, huge, floats, nan, strings, unicode, lists, nested
    lists, null)."""
    check_field(*case)


@fuzz(40)
@given(st.sampled_from(PROXY_FIELDS).flatmap(lambda f: st.tuples(st.just(f), st.one_of(f.good, f.good, VALUES))))
def test_each_proxy_setting_runs_or_names_itself(case: tuple[Field, Any]) -> None:
    """Every setting of every proxy, checked against the default it was registered with."""
    check_field(*case)


# --- many overrides at once, no rule: the contract alone -------------------------------
CHAOS_KEYS = [f.key for f in FIELDS] + [
    "cells", "cells.select", "cells.n", "cells.seed", "sweep.name", "space", "cluster", "proxy",
    "ensembles.vote", "ensembles.mean_rank", "proxy.naswot", "space.nb201", "metrics", "data.images",
]
#: raw override text, often malformed: brackets, quotes, interpolations, escapes
RAW = st.lists(st.sampled_from(list("[]{}(),:=' \"\\$%@#~+-_.*/0123456789abenlrtuéσ漢") + ["${", "nan", "null"]),
               max_size=10).map("".join)


@fuzz(80)
@given(st.lists(st.tuples(st.sampled_from(CHAOS_KEYS), st.one_of(VALUES.map(hydra), RAW)), min_size=1, max_size=4,
                unique_by=lambda kv: kv[0]))
def test_any_overrides_run_or_stop_in_one_line(pairs: list[tuple[str, str]]) -> None:
    """Up to four overrides of any kind together, malformed text included: the contract
    of ``before_ray`` holds (a success is a prepared sweep, a stop one line and nothing
    written); and a refused override is named as one."""
    run = before_ray([f"{k}={v}" for k, v in pairs])
    if run.error is not None and run.error.startswith("bad override"):
        assert run.error.count("bad override") == 1


# --- cell selections --------------------------------------------------------------------
@dataclass(frozen=True)
class Cells:
    overrides: tuple[str, ...]
    valid: bool
    names: tuple[str, ...]
    ids: Callable[[list[str]], bool]


def _ints(v: Any) -> bool:
    return is_int(v)


@st.composite
def cell_selections(draw: st.DrawFn) -> Cells:
    kind = draw(st.sampled_from(["sample", "range", "truth", "all", "select"]))
    if kind == "sample":
        n = draw(st.integers(1, NB201_CELLS + 3) | st.integers(-2, 0) | VALUES)
        seed = draw(st.integers(0, 2**70) | st.integers(-4, -1) | VALUES)
        valid = positive(n) and n <= NB201_CELLS and is_int(seed) and seed >= 0
        return Cells(("cells=sample", f"cells.n={hydra(n)}", f"cells.seed={hydra(seed)}"), valid,
                     ("cells.n", "cells.seed", "larger than"),
                     lambda ids: len(ids) == n and len(set(ids)) == n)
    if kind == "range":
        start = draw(st.integers(0, 200) | st.integers(-5, -1) | VALUES)
        stop = draw(st.integers(1, NB201_CELLS + 5) | VALUES)
        valid = _ints(start) and _ints(stop) and 0 <= start < stop <= NB201_CELLS
        return Cells(("cells=range", f"cells.start={hydra(start)}", f"cells.stop={hydra(stop)}"), valid,
                     ("cells.start", "cells.stop"), lambda ids: ids == [str(i) for i in range(start, stop)])
    if kind == "truth":
        n = draw(st.none() | st.integers(1, NB201_CELLS + 3) | VALUES)
        seed = draw(st.integers(0, 99) | VALUES)
        valid = n is None or (positive(n) and n <= NB201_CELLS and is_int(seed) and seed >= 0)
        return Cells(("cells=truth", f"cells.n={hydra(n)}", f"cells.seed={hydra(seed)}"), valid,
                     ("cells.n", "cells.seed", "larger than"),
                     lambda ids: len(ids) == (NB201_CELLS if n is None else n))
    if kind == "all":
        return Cells(("cells=all",), True, (), lambda ids: ids == [str(i) for i in range(NB201_CELLS)])
    select = draw(st.sampled_from(["sample", "truth", "all", "range", "ids", "file", "everything"]) | VALUES)
    return Cells((f"cells.select={hydra(select)}",), select in ("sample", "truth", "all"),
                 ("cells.select", "cells="), lambda ids: len(ids) == (NB201_CELLS if select == "all" else 60))


def _sorted_ids(ids: Sequence[str]) -> bool:
    return list(ids) == sorted(ids, key=int)


@fuzz(30)
@given(cell_selections())
def test_cell_selections(case: Cells) -> None:
    """cells=sample/range/truth/all and cells.select with n, seed, start, stop of any
    value: the ids the rule says, in official order, or an error naming the setting."""
    run = before_ray(case.overrides)
    run.expect(case.valid, (*case.names, "bad override"))
    if case.valid:
        ids = list(run.prepared.plan.ids)
        assert case.ids(ids) and _sorted_ids(ids)


def _id_rule(ids: Any) -> tuple[bool, list[str] | None]:
    """cells.ids: a non-empty list (or one id) of ints or strings, each an index of the
    space written as settings write it (str), none twice."""
    if isinstance(ids, (str, int)) and not isinstance(ids, bool):
        ids = [ids]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
        return False, None
    as_str = [str(i) for i in ids]
    known = {str(i) for i in range(NB201_CELLS)}
    return all(i in known for i in as_str) and len(set(as_str)) == len(as_str), as_str


ID_ELEMENTS = st.one_of(
    st.integers(0, NB201_CELLS - 1), st.integers(0, NB201_CELLS - 1).map(str), st.integers(NB201_CELLS, 10**6),
    st.integers(-10, -1), st.integers(), st.sampled_from(["007", " 17", "17 ", "1e3", "0x10", "", "ÿ", "١٢"]),
    TEXT, st.floats(0, 100), st.booleans(), st.none(), st.lists(st.integers(0, 9), max_size=2),
)


@st.composite
def id_lists(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["list", "list", "duplicates", "huge", "scalar"]))
    if shape == "scalar":
        return draw(ID_ELEMENTS)
    if shape == "huge":
        return draw(st.lists(st.integers(0, NB201_CELLS - 1), min_size=200, max_size=600, unique=True))
    ids = draw(st.lists(ID_ELEMENTS, max_size=12))
    if shape == "duplicates" and ids:
        ids.append(draw(st.sampled_from(ids)))
    return ids


@fuzz(35)
@given(id_lists())
def test_cell_id_lists(ids: Any) -> None:
    """cells=ids with ints and strings in and out of the space, duplicates, empty, huge,
    nested, floats, bools, null: exactly those cells in official order, or an error."""
    run = before_ray(("cells=ids", f"cells.ids={hydra(ids)}"))
    valid, as_str = _id_rule(ids)
    run.expect(valid, ("cells.ids", "cells=ids", "not in the space", "twice", "bad override"))
    if valid:
        assert list(run.prepared.plan.ids) == sorted(as_str, key=int)


LINE_PARTS = st.one_of(
    st.integers(0, NB201_CELLS - 1).map(str), st.integers(NB201_CELLS, 99999).map(str), st.just(""), st.just("   "),
    st.sampled_from(["# a comment", "#", "12 # trailing comment", "\t33\t", "１２", "-4", "3.0"]), TEXT,
)


@fuzz(25)
@given(st.lists(LINE_PARTS, max_size=15), st.sampled_from(["\n", "\r\n"]),
       st.sampled_from([b"", b"", b"\xff\xfe", b"\x80abc", b"\xef\xbb\xbf"]))
def test_cell_id_files(lines: list[str], newline: str, raw: bytes) -> None:
    """cells=file with ids, comments, blanks, CRLF, junk, and bytes that are not UTF-8
    (or a byte-order mark): the ids the README's rule reads, or an error."""
    with tempfile.TemporaryDirectory(prefix="ids-") as tmp:
        path = Path(tmp) / "ids.txt"
        path.write_bytes(raw + newline.join(lines).encode())
        run = before_ray(("cells=file", f"cells.path={path}"))
        try:
            text = (raw + newline.join(lines).encode()).decode("utf-8")
        except UnicodeDecodeError:
            run.expect(False, ("not a text file",))
            return
        ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        ids = [i for i in ids if i]
        valid = bool(ids) and all(i in {str(n) for n in range(NB201_CELLS)} for i in ids) and len(set(ids)) == len(ids)
        run.expect(valid, ("lists no ids", "not in the space", "twice"))
        if valid:
            assert list(run.prepared.plan.ids) == sorted(ids, key=int)


# --- truth tables -------------------------------------------------------------------------
TRUTH = "cifar10_valid_test"


def _set(table: pa.Table, name: str, array: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, array)


def _with_values(table: pa.Table, name: str, rows: np.ndarray, value: Any) -> pa.Table:
    values = table.column(name).to_pylist()
    for i in rows:
        values[i] = value
    return _set(table, name, pa.array(values, type=table.schema.field(name).type))


#: table mutation -> (group, is the table still good, how to make it from the table and three
#: random rows of it); one mutation per group (two of one column would undo each other), and
#: the "rows" group last (it may leave no row for the others)
TABLE_MUTATIONS: dict[str, tuple[str, bool, Callable[[pa.Table, np.ndarray], pa.Table]]] = {
    "nan": ("truth", True, lambda t, r: _with_values(t, TRUTH, r, float("nan"))),
    "null": ("truth", True, lambda t, r: _with_values(t, TRUTH, r, None)),
    "inf": ("truth", True, lambda t, r: _with_values(t, TRUTH, r, float("inf"))),
    "all nan": ("truth", True, lambda t, r: _set(t, TRUTH, pa.array(np.full(len(t), np.nan)))),
    "int accuracy": ("truth", True, lambda t, r: _set(t, TRUTH, pc.cast(pc.round(t[TRUTH]), pa.int64()))),
    "string accuracy": ("truth", False, lambda t, r: _set(t, TRUTH, pc.cast(t[TRUTH], pa.string()))),
    "bool accuracy": ("truth", False, lambda t, r: _set(t, TRUTH, pc.greater(t[TRUTH], 50))),
    "list accuracy": ("truth", False, lambda t, r: _set(t, TRUTH, pa.array([[v] for v in t[TRUTH].to_pylist()]))),
    "no truth column": ("truth", False, lambda t, r: t.drop_columns([TRUTH])),
    "int64 index": ("index", True, lambda t, r: _set(t, "arch_index", pc.cast(t["arch_index"], pa.int64()))),
    "uint16 index": ("index", True, lambda t, r: _set(t, "arch_index", pc.cast(t["arch_index"], pa.uint16()))),
    "duplicate index": ("index", False, lambda t, r: _with_values(t, "arch_index", r[:1], t["arch_index"][int((r[0] + 1) % len(t))].as_py())),
    "float index": ("index", False, lambda t, r: _set(t, "arch_index", pc.cast(t["arch_index"], pa.float64()))),
    "string index": ("index", False, lambda t, r: _set(t, "arch_index", pc.cast(t["arch_index"], pa.string()))),
    "null index": ("index", False, lambda t, r: _with_values(t, "arch_index", r[:1], None)),
    "no arch_index": ("index", False, lambda t, r: t.drop_columns(["arch_index"])),
    "swapped cells": ("cell", True, lambda t, r: _set(t, "arch_str", pa.array(
        [t["arch_str"][int(r[-1])].as_py() if i == int(r[0]) else t["arch_str"][int(r[0])].as_py() if i == int(r[-1])
         else a for i, a in enumerate(t["arch_str"].to_pylist())]))),
    "int cell strings": ("cell", False, lambda t, r: _set(t, "arch_str", pa.array(range(len(t))))),
    "null cell string": ("cell", False, lambda t, r: _with_values(t, "arch_str", r[:1], None)),
    "mangled cell string": ("cell", False, lambda t, r: _with_values(t, "arch_str", r[:1], "|conv~0|+|none~0|none~1|")),
    "a cell string twice": ("cell", False, lambda t, r: _with_values(t, "arch_str", r[:1], t["arch_str"][int((r[0] + 1) % len(t))].as_py())),
    "no arch_str": ("cell", False, lambda t, r: t.drop_columns(["arch_str"])),
    "extra column": ("extra", True, lambda t, r: t.append_column("note", pa.array(["x"] * len(t)))),
    "shuffled rows": ("order", True, lambda t, r: t.take(pa.array(np.random.default_rng(int(r[0])).permutation(len(t))))),
    "too few rows": ("rows", False, lambda t, r: t.slice(0, int(r[0]))),
    "a row twice": ("rows", False, lambda t, r: pa.concat_tables([t, t.slice(int(r[0]), 1)])),
}
GROUP_ORDER = ["truth", "index", "cell", "extra", "order", "hash", "columns", "rows"]


def mutate(table: pa.Table, names: Sequence[str], mutations: dict, rng: np.random.Generator) -> pa.Table:
    """``table`` with each named mutation applied, the "rows" group last."""
    for name in sorted(names, key=lambda n: GROUP_ORDER.index(mutations[n][0])):
        table = mutations[name][2](table, rng.integers(0, len(table), size=3))
    return table


def mutation_lists(mutations: dict) -> st.SearchStrategy:
    return st.lists(st.sampled_from(sorted(mutations)), max_size=2, unique_by=lambda n: mutations[n][0]).map(tuple)


#: file-level damage: never a good table
FILE_DAMAGE: dict[str, Callable[[Path, bytes, np.random.Generator], None]] = {
    "random bytes": lambda p, b, g: p.write_bytes(g.bytes(int(g.integers(0, 300)))),
    "cut short": lambda p, b, g: p.write_bytes(b[: int(g.integers(0, len(b)))]),
    "empty file": lambda p, b, g: p.write_bytes(b""),
    "a folder": lambda p, b, g: p.mkdir(),
    "an npz": lambda p, b, g: np.savez(open(p, "wb"), train_images=np.zeros((1, 3, 32, 32), np.uint8)),
}


@dataclass
class TableCase:
    mutations: tuple[str, ...]
    damage: str | None
    seed: int

    @property
    def table_good(self) -> bool:
        return self.damage is None and all(TABLE_MUTATIONS[m][1] for m in self.mutations)


TABLE_CASES = st.builds(
    TableCase,
    mutation_lists(TABLE_MUTATIONS),
    st.none() | st.none() | st.sampled_from(sorted(FILE_DAMAGE)),
    st.integers(0, 2**31),
)


def write_table(case: TableCase, source: pa.Table, path: Path) -> pa.Table | None:
    """The mutated table written at ``path`` (damaged as the case says); returns the
    table when the file holds one."""
    rng = np.random.default_rng(case.seed)
    table = mutate(source, case.mutations, TABLE_MUTATIONS, rng)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    data = buffer.getvalue().to_pybytes()
    if case.damage is None:
        path.write_bytes(data)
        return table
    FILE_DAMAGE[case.damage](path, data, rng)
    return None


def finite_ids(table: pa.Table, id_column: str, column: str) -> list[str]:
    acc = pc.cast(table[column], pa.float64()).to_numpy(zero_copy_only=False)
    return [str(i) for i, a in zip(table[id_column].to_pylist(), acc) if np.isfinite(a)]


def tiny_shards(space: str, ids: Sequence[str], folder: Path) -> list[StoredShard]:
    """Ten cells' scores of one proxy and seed, stored as a sweep stores them (the reducer's
    input)."""
    made = manifest(space, {"params": True})
    job = Job(space, "cifar10", 0)
    write_folder(folder, made, [row(job, c, "params", float(k)) for k, c in enumerate(ids)], {})
    return ScoreStore(folder).scan(made, quarantine=False).shards


def check_reducer(settings: Settings, space: str, ids: Sequence[str], with_truth: set[str] | None, path: Path) -> None:
    """The reducer's truth join on ten scored cells: metrics over the cells with a finite
    truth value, or (bad table) a one-line ValueError naming the file, which reduce_sweep
    turns into a SweepError."""
    with tempfile.TemporaryDirectory(prefix="reduce-") as tmp:
        shards = tiny_shards(space, ids, Path(tmp))
        if with_truth is None:
            with pytest.raises(ValueError) as caught:
                compute_metrics(shards, settings, lambda p: True)
            message = str(SweepError(caught.value))
            assert str(path) in message and len(message.splitlines()) == 1, message
            return
        metrics = compute_metrics(shards, settings, lambda p: True)[0]
    usable = sum(1 for c in ids if c in with_truth)
    counts = set(metrics.filter(pc.equal(metrics["aggregate"], "seed"))["n_cells"].to_pylist())
    assert counts == ({usable} if usable >= 2 else set()), (counts, usable)


@fuzz(30)
@given(TABLE_CASES, st.sampled_from(["truth", "sample"]))
def test_nb201_truth_tables(case: TableCase, select: str) -> None:
    """The NB201 table (the space's cell table and its truth) with duplicate or float
    indices, nan, null and inf accuracies, missing columns, text where numbers are, too few
    rows, bad cell strings, or not Parquet at all; with cells=truth and cells=sample, and
    through the reducer's truth join."""
    source = nb201_table()
    with tempfile.TemporaryDirectory(prefix="truth-") as tmp:
        root = Path(tmp)
        path = root / "fuzz.parquet"
        table = write_table(case, source, path)
        cells = ("cells=truth", "cells.n=null") if select == "truth" else ("cells=sample", "cells.n=20", "cells.seed=1")
        run = before_ray(("space.nb201.truth_file=fuzz.parquet", "sweep.proxies=[params,naswot]", *cells), data_root=root)
        good = case.table_good
        have = finite_ids(table, "arch_index", TRUTH) if good else []
        valid = good and (select == "sample" or bool(have))
        run.expect(valid, (str(path), "ground truth"))
        if valid:
            ids = list(run.prepared.plan.ids)
            if select == "truth":
                assert ids == sorted(have, key=int)
            else:
                assert len(ids) == 20 and _sorted_ids(ids)
        settings = load_settings(compose_config([*SMOKE, f"data.root={root}", "space.nb201.truth_file=fuzz.parquet"]),
                                 check_files=False)
        check_reducer(settings, "nb201", [str(i) for i in range(10)], set(have) if good else None, path)


@lru_cache(maxsize=None)
def nb101_table() -> pa.Table:
    return pq.read_table(data_file("nb101_sample_accuracy.parquet"))


NB101_TRUTH = "val_acc_108"
NB101_MUTATIONS: dict[str, tuple[str, bool, Callable[[pa.Table, np.ndarray], pa.Table]]] = {
    "nan": ("truth", True, lambda t, r: _with_values(t, NB101_TRUTH, r, float("nan"))),
    "null": ("truth", True, lambda t, r: _with_values(t, NB101_TRUTH, r, None)),
    "all nan": ("truth", True, lambda t, r: _set(t, NB101_TRUTH, pa.array(np.full(len(t), np.nan)))),
    "int accuracy": ("truth", True, lambda t, r: _set(t, NB101_TRUTH, pc.cast(pc.round(pc.multiply(t[NB101_TRUTH], 100)), pa.int32()))),
    "string accuracy": ("truth", False, lambda t, r: _set(t, NB101_TRUTH, pc.cast(t[NB101_TRUTH], pa.string()))),
    "bool accuracy": ("truth", False, lambda t, r: _set(t, NB101_TRUTH, pc.greater(t[NB101_TRUTH], 0.9))),
    "no truth column": ("truth", False, lambda t, r: t.drop_columns([NB101_TRUTH])),
    "a hash twice": ("hash", False, lambda t, r: _with_values(t, "hash", r[:1], t["hash"][int((r[0] + 1) % len(t))].as_py())),
    "int hash": ("hash", False, lambda t, r: _set(t, "hash", pa.array(range(len(t))))),
    "null hash": ("hash", False, lambda t, r: _with_values(t, "hash", r[:1], None)),
    "no hash": ("hash", False, lambda t, r: t.drop_columns(["hash"])),
    "no adjacency": ("columns", True, lambda t, r: t.drop_columns(["adjacency", "operations"])),
    "fewer rows": ("rows", True, lambda t, r: t.slice(0, int(r[0]) + 2)),
    "no rows": ("rows", True, lambda t, r: t.slice(0, 0)),
    "a row twice": ("rows", False, lambda t, r: pa.concat_tables([t, t.slice(int(r[0]), 1)])),
}


@fuzz(20)
@given(mutation_lists(NB101_MUTATIONS),
       st.none() | st.none() | st.sampled_from(sorted(FILE_DAMAGE)), st.integers(0, 2**31))
def test_nb101_truth_tables(mutations: tuple[str, ...], damage: str | None, seed: int) -> None:
    """The NB101 truth table with duplicate, null or integer hashes, nan and null
    accuracies, missing columns, text or booleans for accuracies, or not Parquet at all. A
    bad one stops prepare (cells=truth) before the cell table is built: the cache folder
    stays empty, so no enumeration started. A good one gives exactly the hashes with a
    finite value (``cells_with_truth``, what cells=truth selects from) and the reducer's
    join; prepare is not run on it, as it would enumerate 423,624 cells (test_nb101_sweep
    does that once)."""
    source = nb101_table()
    with tempfile.TemporaryDirectory(prefix="truth101-") as tmp:
        root = Path(tmp) / "data"
        cache = Path(tmp) / "cache"
        root.mkdir()
        cache.mkdir()
        path = root / "fuzz.parquet"
        rng = np.random.default_rng(seed)
        table = mutate(source, mutations, NB101_MUTATIONS, rng)
        good = damage is None and all(NB101_MUTATIONS[m][1] for m in mutations)
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        if damage is None:
            path.write_bytes(buffer.getvalue().to_pybytes())
        else:
            FILE_DAMAGE[damage](path, buffer.getvalue().to_pybytes(), rng)
        overrides = ("space.nb101.truth_file=fuzz.parquet", f"space.nb101.cache_dir={cache}")
        have = set(finite_ids(table, "hash", NB101_TRUTH)) if good else set()
        if not (good and have):
            run = before_ray(overrides, data_root=root, base=NB101)
            run.expect(False, (str(path), "ground truth"))
            assert not any(cache.iterdir()), "the cell table was built for a sweep that had to stop"
        settings = load_settings(compose_config([*NB101, f"data.root={root}", *overrides]))
        if good:
            assert cells_with_truth(settings) == have
        ids = source["hash"].to_pylist()[:10]
        check_reducer(settings, "nb101", ids, have if good else None, path)


# --- image files ----------------------------------------------------------------------------
NAS_BATCH = 16  # naswot's batch in these examples: the images must hold at least this many


@dataclass(frozen=True)
class NpzCase:
    count: int
    layout: str
    pixels: str
    labels: str
    split: str
    damage: str
    compressed: bool
    seed: int

    @property
    def valid(self) -> bool | None:
        good = (self.layout == "nchw" and self.pixels in ("uint8", "int64 in range") and self.labels in ("ok", "int32")
                and self.split in ("train", "test", "test fine") and self.count >= NAS_BATCH)
        if self.damage == "flip a byte":
            return None if good else False  # a byte nobody checks (a time stamp) may flip unseen
        return good and self.damage == "none"


#: each attribute of an .npz case: (good values, bad values)
NPZ_ATTRIBUTES: dict[str, tuple[list[Any], list[Any]]] = {
    "count": ([NAS_BATCH, 40], [0, 8]),
    "layout": (["nchw"], ["nhwc", "flat", "five dims", "one channel", "16 pixels", "scalar"]),
    "pixels": (["uint8", "int64 in range"], ["int64 past 255", "negative int16", "float32", "float64 0..1", "bool"]),
    "labels": (["ok", "int32"], ["too few", "too many", "past the classes", "negative", "float", "2-D", "bool", "text"]),
    "split": (["train", "test", "test fine"], ["no labels", "no images"]),
    "damage": (["none"], ["cut short", "flip a byte", "empty", "random bytes", "a bare .npy"]),
}


@st.composite
def npz_cases(draw: st.DrawFn) -> NpzCase:
    """A good file with none, one or two things wrong with it."""
    faults = draw(st.sets(st.sampled_from(sorted(NPZ_ATTRIBUTES)), max_size=2))
    values = {name: draw(st.sampled_from(bad if name in faults else good))
              for name, (good, bad) in NPZ_ATTRIBUTES.items()}
    return NpzCase(**values, compressed=draw(st.booleans()), seed=draw(st.integers(0, 2**31)))


def _pixels(case: NpzCase, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """(what the file holds, what a good read must give or None)."""
    n = case.count
    base = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    shaped = {"nchw": base, "nhwc": base.transpose(0, 2, 3, 1).copy(), "flat": base.reshape(n, 3 * 32 * 32),
              "five dims": base[:, None], "one channel": base[:, :1].copy(), "16 pixels": base[:, :, :16, :16].copy(),
              "scalar": np.array(7, np.uint8)}[case.layout]
    stored = {"uint8": shaped, "int64 in range": shaped.astype(np.int64),
              "int64 past 255": shaped.astype(np.int64) + 256, "negative int16": shaped.astype(np.int16) - 300,
              "float32": shaped.astype(np.float32), "float64 0..1": shaped / 255.0, "bool": shaped > 127}[case.pixels]
    return stored, base


def _labels(case: NpzCase, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = case.count
    good = rng.integers(0, 10, size=n)
    stored = {"ok": good, "int32": good.astype(np.int32), "too few": good[: max(n - 3, 0)],
              "too many": np.concatenate([good, [1, 2]]), "past the classes": good + 10, "negative": good - 10,
              "float": good + 0.5, "2-D": good[:, None], "bool": good > 4, "text": good.astype(str)}[case.labels]
    return stored, good.astype(np.int64)


def write_npz(case: NpzCase, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Write the case's file; returns the images and labels a good read gives."""
    rng = np.random.default_rng(case.seed)
    images, want_x = _pixels(case, rng)
    labels, want_y = _labels(case, rng)
    prefix = "test" if case.split.startswith("test") else "train"
    arrays = {f"{prefix}_images": images, f"{prefix}_fine_labels" if case.split == "test fine" else f"{prefix}_labels": labels}
    if case.split == "no labels":
        arrays = {"train_images": images, "labels": labels}
    elif case.split == "no images":
        arrays = {"images": images, "train_labels": labels}
    with open(path, "wb") as fh:
        (np.savez_compressed if case.compressed else np.savez)(fh, **arrays)
    data = path.read_bytes()
    if case.damage == "cut short":
        path.write_bytes(data[: int(rng.integers(0, len(data)))])
    elif case.damage == "flip a byte":
        at = int(rng.integers(0, len(data)))
        path.write_bytes(data[:at] + bytes([data[at] ^ (1 << int(rng.integers(0, 8)))]) + data[at + 1:])
    elif case.damage == "empty":
        path.write_bytes(b"")
    elif case.damage == "random bytes":
        path.write_bytes(rng.bytes(int(rng.integers(1, 400))))
    elif case.damage == "a bare .npy":
        with open(path, "wb") as fh:
            np.save(fh, images)
    return want_x, want_y


def check_images_run(run: Run, want_x: np.ndarray, want_y: np.ndarray, dataset: str = "cifar10") -> None:
    """A success read exactly the good images: their digest, batches of their shape."""
    assert run.prepared.manifest.images[dataset]["sha256"] == image_digest(want_x, want_y)
    batch, labels = run.prepared.inputs[(dataset, 0)].batches[BatchSpec(NAS_BATCH, False)]
    assert tuple(batch.shape) == (NAS_BATCH, *want_x.shape[1:]) and set(labels.tolist()) <= set(want_y.tolist())


IMAGE_RUN = ("sweep.proxies=[naswot,params]", f"proxy.naswot.batch_size={NAS_BATCH}", "sweep.seeds=[0]")


@fuzz(45)
@given(npz_cases())
def test_npz_image_files(case: NpzCase) -> None:
    """.npz images in NHWC, 2-D, 5-D, one channel or 16 pixels; float, int64 past 255,
    negative, bool pixels; missing keys; labels too few, too many, past the classes,
    negative, float, 2-D, bool, text; fewer images than the batch; cut, flipped, empty or
    random files, a bare .npy."""
    with tempfile.TemporaryDirectory(prefix="npz-") as tmp:
        path = Path(tmp) / "images.npz"
        want_x, want_y = write_npz(case, path)
        run = before_ray((*IMAGE_RUN, f"data.images.cifar10={path}"))
    run.expect(case.valid, (str(path),))
    if run.error is None:
        check_images_run(run, want_x, want_y)


class _Planted:
    """A pickle that runs a command when loaded: what a poisoned download could hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


CIFAR_DAMAGE = ["none", "none", "none", "protocol 5", "cut short", "not a dict", "no data", "no labels", "int64 data",
                "rows of 3071", "labels too few", "labels past the classes", "labels as text", "runs a command",
                "file missing", "a folder", "garbage"]


@fuzz(25)
@given(st.sampled_from(CIFAR_DAMAGE), st.integers(1, 5), st.integers(0, 2**31))
def test_cifar10_python_batches(damage: str, which: int, seed: int) -> None:
    """A CIFAR-10 python folder with one batch file cut short, of another object, missing
    a key, of the wrong type or width, with bad labels, missing, a folder, or a pickle that
    would run a command (refused: the command never runs)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="cifar-") as tmp:
        folder = Path(tmp) / "cifar-10-batches-py"
        folder.mkdir()
        marker = Path(tmp) / "ran"
        xs, ys = [], []
        for i in range(1, 6):
            x = rng.integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
            y = [int(v) for v in rng.integers(0, 10, size=8)]
            xs.append(x)
            ys.extend(y)
            entry: Any = {"batch_label": f"batch {i}", "data": x.reshape(8, 3072), "labels": y}
            proto = 2
            if i == which:
                proto = 5 if damage == "protocol 5" else 2
                entry = {
                    "not a dict": [x, y], "no data": {"labels": y}, "no labels": {"data": entry["data"]},
                    "int64 data": {**entry, "data": entry["data"].astype(np.int64)},
                    "rows of 3071": {**entry, "data": entry["data"][:, :3071].copy()},
                    "labels too few": {**entry, "labels": y[:-1]}, "labels past the classes": {**entry, "labels": [v + 10 for v in y]},
                    "labels as text": {**entry, "labels": [str(v) for v in y]},
                    "runs a command": {**entry, "data": _Planted(marker)},
                }.get(damage, entry)
            path = folder / f"data_batch_{i}"
            data = pickle.dumps(entry, protocol=proto)
            if i == which and damage == "cut short":
                data = data[: int(rng.integers(0, len(data)))]
            if i == which and damage == "garbage":
                data = rng.bytes(64)
            if i == which and damage == "file missing":
                continue
            if i == which and damage == "a folder":
                path.mkdir()
                continue
            path.write_bytes(data)
        run = before_ray((*IMAGE_RUN, f"data.images.cifar10={folder}"))
        assert not marker.exists(), "a pickle ran a command"
    valid = damage in ("none", "protocol 5")
    run.expect(valid, (str(folder),))
    if valid:
        check_images_run(run, np.concatenate(xs), np.asarray(ys, dtype=np.int64))


@pytest.mark.parametrize("damage", ["none", "cut short", "labels as text", "runs a command"])
def test_imagenet16_batches(tmp_path, damage: str) -> None:
    """ImageNet16-120 (16-pixel images, labels 1..1000 of which 1..120 are kept) read from
    a folder of python batches: good, cut short, text labels, a command in the pickle."""
    folder = tmp_path / "ImageNet16"
    folder.mkdir()
    marker = tmp_path / "ran"
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(60, 3, 16, 16), dtype=np.uint8)
    y = [int(v) for v in rng.integers(1, 121, size=60)]
    entry: Any = {"data": x.reshape(60, -1), "labels": y, "mean": np.zeros(768)}
    if damage == "labels as text":
        entry["labels"] = [str(v) for v in y]
    if damage == "runs a command":
        entry["labels"] = _Planted(marker)
    data = pickle.dumps(entry, protocol=2)
    (folder / "train_data_batch_1").write_bytes(data[: len(data) // 2] if damage == "cut short" else data)
    run = before_ray((*IMAGE_RUN, "sweep.datasets=[ImageNet16-120]", f"data.images.ImageNet16-120={folder}"))
    assert not marker.exists()
    run.expect(damage == "none", (str(folder),))
    if damage == "none":
        check_images_run(run, x, np.asarray(y, dtype=np.int64) - 1, "ImageNet16-120")


# --- the output folder --------------------------------------------------------------------
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")}


def test_a_refused_rerun_changes_nothing_in_its_folder(tmp_path) -> None:
    """A folder with a stored shard, then reruns with cut images, another batch size and a
    truth column that is not there: each stops, and every file is as it was, byte for byte."""
    out = tmp_path / "out"
    first = ["+sweep=nb201_smoke", f"data.root={DATA_ROOT}", f"out_dir={out}", "sweep.proxies=[naswot]", "sweep.seeds=[0]"]
    prepared = prepare(load_settings(compose_config(first)))
    prepared.store.unlock()
    store_pending(prepared, count=1)  # more to score: the images are read
    before = _snapshot(out)
    cut = tmp_path / "cut.npz"
    cut.write_bytes((EMBEDDED_DIR / "cifar10_smoke.npz").read_bytes()[:5000])
    for bad, fragment in [(f"data.images.cifar10={cut}", "not a readable .npz"),
                          ("proxy.naswot.batch_size=64", "proxy.naswot.batch_size: stored 128, now 64"),
                          ("space.nb201.truth.cifar10=nope", "no truth column 'nope'")]:
        with pytest.raises(SweepError) as caught:
            prepare(load_settings(compose_config([*first, bad])))
        assert fragment in str(caught.value)
        assert _snapshot(out) == before, bad


def test_a_stopped_run_removes_the_folders_it_made(tmp_path) -> None:
    """out_dir three folders deep, bad images: none of the three is left; an out_dir that is
    a file stays that file."""
    cut = tmp_path / "cut.npz"
    cut.write_bytes(b"PK\x03\x04 not really")
    deep = tmp_path / "a" / "b" / "c"
    with pytest.raises(SweepError, match="not a readable .npz"):
        prepare(load_settings(compose_config(["+sweep=nb201_smoke", f"data.root={DATA_ROOT}", f"out_dir={deep}",
                                              f"data.images.cifar10={cut}"])))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.npz"]
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(SweepError, match="cannot write to out_dir"):
        prepare(load_settings(compose_config(["+sweep=nb201_smoke", f"data.root={DATA_ROOT}", f"out_dir={afile}"])))
    assert afile.read_text() == "mine"


# --- the command line -------------------------------------------------------------------------
def _planted_cifar(folder: Path) -> list[str]:
    batches = folder / "cifar-10-batches-py"
    batches.mkdir()
    for i in range(1, 6):
        (batches / f"data_batch_{i}").write_bytes(pickle.dumps({"data": _Planted(folder / "ran"), "labels": [0]}, protocol=2))
    return [f"data.images.cifar10={batches}"]


def _table_without_index(folder: Path) -> list[str]:
    pq.write_table(nb201_table().drop_columns(["arch_index"]), folder / "fuzz.parquet")
    return ["space.nb201.truth_file=fuzz.parquet"]


#: the nastiest inputs the properties found, each once through ``python -m orchestrator``:
#: Hydra's traceback for a group given a number, Hydra's four-line parse error, a newline
#: inside an id, a pickle that runs a command, pyarrow's multi-line schema dump,
#: and a batch count that made the driver hang
CLI_CASES = {
    "a group given a number": lambda d: ["cluster=5"],
    "a list override cut short": lambda d: ["sweep.seeds=[0,"],
    "a newline inside an id": lambda d: ["cells=ids", "cells.ids=['7\n8']"],
    "a pickle that runs a command": _planted_cifar,
    "a table without arch_index": _table_without_index,
    "10^8 batches": lambda d: ["sweep.proxies=[zico]", "proxy.zico.num_batches=100000000"],
}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every CLI case, started together (each process spends its seconds importing torch
    and Ray, so together they take little more than one)."""
    started = {}
    for name, make in CLI_CASES.items():
        folder = tmp_path_factory.mktemp("cli")
        overrides = make(folder)
        root = folder if (folder / "fuzz.parquet").exists() else DATA_ROOT
        args = [sys.executable, "-m", "orchestrator", "+sweep=nb201_smoke", f"data.root={root}",
                "cluster.address=127.0.0.1:1", *overrides, f"out_dir={folder / 'out'}"]
        started[name] = (subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env={**os.environ, "PYTHONWARNINGS": "ignore"}), args, folder)
    done = {}
    for name, (proc, args, folder) in started.items():
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done[name] = (subprocess.CompletedProcess(args, proc.returncode, out, err), folder)
    return done


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_the_command_line_prints_one_line(cli_runs, name: str) -> None:
    """``python -m orchestrator``: exit status 2, exactly one ``proxysweep: error:`` line on
    stderr, nothing on stdout about Ray, and nothing in out_dir (Hydra makes the folder
    before the driver runs; it stays empty)."""
    proc, folder = cli_runs[name]
    out = folder / "out"
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("proxysweep: error: "), proc.stderr
    assert "Ray" not in proc.stdout
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.rglob("*"))
    assert not (folder / "ran").exists()


def test_a_run_that_passes_the_checks_gets_hydras_record(tmp_path) -> None:
    """The other side of the command-line contract: once prepare has passed, Hydra's record
    of the run (.hydra/: the composed config, Hydra's own, the overrides) is written. Every
    shard is stored beforehand, so nothing is pending and the run needs no Ray."""
    out = tmp_path / "out"
    overrides = ["+sweep=nb201_smoke", f"data.root={DATA_ROOT}", "sweep.proxies=[params]", "sweep.seeds=[0]",
                 "cells=ids", "cells.ids=[0,1,2]", f"out_dir={out}"]
    prepared = prepare(load_settings(compose_config(overrides)))
    prepared.store.unlock()
    store_pending(prepared)
    proc = subprocess.run([sys.executable, "-m", "orchestrator", *overrides, "cluster.address=127.0.0.1:1", "reduce=false"],
                          cwd=REPO, capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert "0 of 3 scores to compute" in proc.stdout
    record = out / ".hydra"
    assert sorted(p.name for p in record.iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert "reduce=false" in (record / "overrides.yaml").read_text()
    assert OmegaConf.load(record / "config.yaml").sweep.proxies == ["params"]
    assert "output_subdir: null" in (record / "hydra.yaml").read_text()
