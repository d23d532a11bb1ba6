"""``python -m orchestrator +search=NAME``: searches with proxies, run like sweeps.

A search belongs to the sweep its config describes (``sweep.*``, ``out_dir``): table
methods (best-of-N, evolution, HNAS) rank cells by the scores stored in that folder, and
cells they need that no shard holds are first scored through the normal sweep path
(``orchestrator.sweep.run_settings`` with those cells), so a search extends a sweep exactly as
a sweep extends itself. Network methods (Zero-Cost-PT) score networks themselves. Runs go
to Ray as tasks, table runs in groups (``search.runs_per_task``), each network run alone on
a CPU or a GPU; each finished run is written at once (``orchestrator.search_store``), so a
killed driver resumes with the runs it had not written. Everything a user can get wrong is
found before any work: the method, its settings, the proxies, the budget against the
cells, a folder without the scores ``search.cells=scored`` needs.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

import proxies as proxy_registry
import searches
from orchestrator.cluster import connect, disconnect
from orchestrator.errors import SweepError
from orchestrator.files import atomic_write
from orchestrator.plugins import load_plugins, shipped_paths
from orchestrator.pool import cluster_has_gpus
from orchestrator.reduce import CONFIG_FILE, reduce_sweep, stored_scores
from orchestrator.scoring import describe_error, exact_cuda
from orchestrator.search_report import format_search_summary, summarize, write_search_only_report
from orchestrator.search_settings import SearchSettings, parse_search, sweep_proxies
from orchestrator.search_store import (finished, read_results, result_files, result_rows, run_path, write_run,
                                       write_settings)
from orchestrator.settings import CellSelection, Settings, load_settings
from orchestrator.store import ScoreStore
from searches.base import Choice, SearchInputs, SearchRun, SearchTable
from benchdata.images import read_images


@dataclass
class SearchOutcome:
    out_dir: Path
    ran: int
    results: Any  # the summary table (pyarrow), or None


def base_table(settings: Settings) -> SearchTable:
    """Every cell of the space with every truth column of its table."""
    space = settings.search_space
    cells = space.cells()
    ids = np.asarray(cells.ids, dtype=str)  # fixed-width strings: Ray hands them to tasks without a copy
    index = {c: k for k, c in enumerate(cells.ids)}
    truth = {}
    for column in space.truth_columns():
        table = space.ground_truth(settings.datasets[0], column)
        values = np.full(len(ids), np.nan)
        rows = [index.get(str(i), -1) for i in table["arch_id"].to_pylist()]
        acc = table["accuracy"].to_numpy(zero_copy_only=False).astype(np.float64)
        keep = np.asarray(rows) >= 0
        values[np.asarray(rows)[keep]] = acc[keep]
        truth[column] = values
    return SearchTable(ids, np.asarray(cells.archs, dtype=str), truth)


def stored_tables(settings: Settings, search: SearchSettings,
                  base: SearchTable) -> tuple[dict[str, SearchTable], dict[str, dict[str, np.ndarray]]]:
    """Per dataset of the search, ``base`` with the folder's stored scores (read once) and
    the rows each needed proxy has a stored row for (see ``stored_table``)."""
    try:
        _manifest, rows = stored_scores(ScoreStore(settings.out_dir), quarantine=False)
    except SweepError:  # no sweep.json or no scores yet
        rows = None
    tables, covered = {}, {}
    for dataset in search.datasets:
        tables[dataset], covered[dataset] = stored_table(search, base, rows, dataset)
    return tables, covered


def stored_table(search: SearchSettings, base: SearchTable, rows: pa.Table | None,
                 dataset: str) -> tuple[SearchTable, dict[str, np.ndarray]]:
    """``base`` with the stored scores ``rows`` of ``dataset`` (seed ``score_seed``) and the
    rows each needed proxy has a stored row for (any status: a failed cell is not scored
    again); with ``search.cells=scored`` only cells with a stored row of every needed
    proxy are drawable."""
    proxies = search.needed_proxies()
    scores = {p: np.full(len(base), np.nan) for p in proxies}
    covered = {p: np.zeros(len(base), dtype=bool) for p in proxies}
    if rows is not None:
        rows = rows.filter(pc.and_(pc.equal(rows["dataset"], dataset), pc.equal(rows["seed"], search.score_seed)))
        index = base._index
        for proxy in proxies:
            mine = rows.filter(pc.equal(rows["proxy"], proxy))
            at = np.asarray([index.get(str(i), -1) for i in mine["arch_id"].to_pylist()], dtype=np.int64)
            value = mine["score"].to_numpy(zero_copy_only=False).astype(np.float64)
            ok = at >= 0
            scores[proxy][at[ok]] = value[ok]
            covered[proxy][at[ok]] = True
    direction = {p: proxy_registry.get_proxy(p).higher_is_better for p in proxies}
    drawable = None
    if search.cells == "scored":
        # a cell every proxy has a stored row of, failed ones included (they rank last): the
        # cells where proxies fail (no path from input to output) are part of the space
        drawable = np.flatnonzero(np.logical_and.reduce([covered[p] for p in proxies]))
    return dataclasses.replace(base, scores=scores, higher_is_better=direction, drawable=drawable), covered


def make_runs(search: SearchSettings) -> list[SearchRun]:
    return [SearchRun(search.method, p, d, s, search.params)
            for d in search.datasets for p in search.proxies for s in search.seeds]


def _check_tables(search: SearchSettings, tables: dict[str, SearchTable], covered: dict[str, dict[str, np.ndarray]],
                  out_dir: Path) -> None:
    """SweepError (one line) for a budget the cells cannot meet, or a scored-only search in
    a folder without the proxies' scores."""
    entry = search.entry
    for dataset, table in tables.items():
        if search.cells == "scored":
            for proxy in search.needed_proxies():
                if not covered[dataset][proxy].any():
                    raise SweepError(f"{out_dir} holds no scores of proxy {proxy} on {dataset} (seed {search.score_seed}), "
                                     "which search.cells=scored reads: score them with the sweep first, or set "
                                     "search.cells=space to score the cells the search draws")
        if entry.check is not None:
            try:
                entry.check(search.params, table)
            except ValueError as exc:
                raise SweepError(str(exc)) from None


def _score_missing(settings: Settings, search: SearchSettings, tables: dict[str, SearchTable],
                   covered: dict[str, dict[str, np.ndarray]], pending: Sequence[SearchRun]) -> bool:
    """Score, through the sweep path, the cells the pending runs read that no shard holds;
    True if it scored any."""
    entry = search.entry
    if entry.kind != "table" or search.cells != "space" or not pending:
        return False
    need: set[int] = set()
    for run in pending:
        table = tables[run.dataset]
        rows = np.asarray(entry.proxy_cells(run, table))  # type: ignore[misc]
        for proxy in entry.proxies_of(run.proxy, search.params):
            need.update(int(r) for r in rows[~covered[run.dataset][proxy][rows]])
    if not need:
        return False
    base = next(iter(tables.values()))
    ids = [str(base.ids[r]) for r in sorted(need)]
    print(f"Search {search.method}: {len(ids)} cell(s) it reads are not scored yet: scoring them with the sweep",
          flush=True)
    from orchestrator.sweep import run_settings

    run_settings(dataclasses.replace(settings, cells=CellSelection("ids", ids=tuple(ids)), seeds=(search.score_seed,),
                         reduce=False))
    return True


@ray.remote(max_retries=3)
def _execute(runs: Sequence[SearchRun], inputs: SearchInputs, plugins: Sequence[str]) -> list[tuple[list[Choice] | None, float, str | None]]:
    """Run ``runs`` in this worker: one (choices, seconds, error) per run; a run that
    raises gives its error, and the others go on."""
    load_plugins(plugins)
    if inputs.space is not None:  # a network method: this task's device and one torch thread per CPU
        gpu = torch.cuda.is_available() and bool(ray.get_gpu_ids())
        inputs = dataclasses.replace(inputs, device=torch.device("cuda:0" if gpu else "cpu"))
        if gpu:
            exact_cuda()  # float32 and deterministic kernels, as the sweep's scorers
        else:
            torch.set_num_threads(1)
    out = []
    for run in runs:
        start = time.perf_counter()
        try:
            choices: list[Choice] | None = list(searches.get_search(run.method).fn(run, inputs))
            error = None
        except Exception as exc:
            choices, error = None, describe_error(exc)
        out.append((choices, time.perf_counter() - start, error))
    return out


def _dispatch(settings: Settings, search: SearchSettings, tables: dict[str, SearchTable],
              pending: list[SearchRun], on_run: Callable[[SearchRun, list[Choice] | None, float, str | None], None]) -> None:
    """Run ``pending`` on Ray, calling ``on_run`` as each finishes."""
    entry = search.entry
    network = entry.kind == "network"
    connection = connect(settings.cluster, shipped_paths(settings.plugins))
    try:
        proxy_params = {p.name: dict(p.params) for p in settings.proxies}
        inputs = {}
        for dataset, table in tables.items():
            space = images = None
            if network:
                space = settings.search_space
                images = read_images(settings.images[dataset], dataset)
            inputs[dataset] = ray.put(SearchInputs(table, proxy_params, space, images,
                                                   settings.search_space.num_classes[dataset]))
        use_gpus = network and (settings.device == "cuda" or (settings.device == "auto" and cluster_has_gpus()))
        if network and settings.device == "cuda" and not cluster_has_gpus():
            raise SweepError("device=cuda, but the Ray cluster has no GPUs")
        resources = {"num_gpus": 1, "num_cpus": 0} if use_gpus else {"num_cpus": 1}
        size = 1 if network else search.runs_per_task
        refs = {}
        for dataset in tables:
            mine = [r for r in pending if r.dataset == dataset]
            for k in range(0, len(mine), size):
                group = mine[k:k + size]
                ref = _execute.options(**resources).remote(group, inputs[dataset], settings.plugins)
                refs[ref] = group
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            group = refs.pop(ready[0])
            try:
                results = ray.get(ready[0])
            except Exception as exc:  # the task's worker died past its retries
                results = [(None, 0.0, describe_error(exc))] * len(group)
            for run, (choices, seconds, error) in zip(group, results):
                on_run(run, choices, seconds, error)
    finally:
        disconnect(connection)


def prepare_search(cfg: DictConfig) -> tuple[Settings, SearchSettings]:
    """The checked sweep and search settings; the sweep's proxies include those the search reads."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    proxies = sweep_proxies(resolved.get("search"), resolved.get("sweep") or {})  # type: ignore[union-attr]
    if proxies:
        with open_dict(cfg):
            cfg.sweep.proxies = proxies
    settings = load_settings(cfg)
    search = parse_search(resolved.get("search"), settings.space, settings.datasets, settings.seeds,  # type: ignore[union-attr]
                          tuple(p.name for p in settings.proxies), tuple(settings.search_space.truth_columns()))
    return settings, search


def run_search(cfg: DictConfig, on_prepared: Callable[[Path], None] | None = None) -> SearchOutcome:
    """The whole search for a composed config (``python -m orchestrator +search=NAME``)."""
    settings, search = prepare_search(cfg)
    base = base_table(settings)
    tables, covered = stored_tables(settings, search, base)
    _check_tables(search, tables, covered, settings.out_dir)
    runs = make_runs(search)
    store = ScoreStore(settings.out_dir)
    store.lock()
    try:
        pending = [r for r in runs if not finished(run_path(search, settings.out_dir, r), search, settings.retry_errors)]
    finally:
        store.unlock()
    print(f"Search {search.method} on {settings.space} ({', '.join(search.datasets)}): {len(search.proxies)} "
          f"proxies x {len(search.seeds)} runs; {len(pending)} of {len(runs)} to run -> {search.folder(settings.out_dir)}",
          flush=True)
    if _score_missing(settings, search, tables, covered, pending):
        tables, covered = stored_tables(settings, search, base)
        atomic_write(settings.out_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(dict(settings.resolved))))
    store.lock()
    try:
        if on_prepared is not None:
            on_prepared(settings.out_dir)
        write_settings(search, settings.out_dir)
        if not (settings.out_dir / CONFIG_FILE).exists():
            atomic_write(settings.out_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(dict(settings.resolved))))
        done = 0

        def on_run(run: SearchRun, choices: list[Choice] | None, seconds: float, error: str | None) -> None:
            nonlocal done
            store.check_intact()
            write_run(run_path(search, settings.out_dir, run), search,
                      result_rows(search, run, tables[run.dataset], choices, seconds, error))
            done += 1
            if error:
                print(f"proxysweep: search run {run.stem} failed: {error}", file=sys.stderr, flush=True)
            if done % max(1, len(pending) // 10) == 0 or done == len(pending):
                print(f"[{done}/{len(pending)} runs]", flush=True)

        if pending:
            _dispatch(settings, search, tables, pending, on_run)
        results = read_results(result_files(settings.out_dir))
        summary = summarize(results) if results is not None else None
        if settings.reduce:
            if any(store.scores_dir.rglob("*.parquet")) if store.scores_dir.is_dir() else False:
                reduce_sweep(settings.out_dir, settings, store)
            else:
                write_search_only_report(settings.out_dir, settings)
    finally:
        store.unlock()
    if summary is not None:
        print(format_search_summary(summary, search))
    return SearchOutcome(settings.out_dir, len(pending), summary)
