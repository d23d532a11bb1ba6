"""Filling the GPU (issue 16) without a GPU: several actors per declared GPU, the pool
with GPU and CPU actors together, an out-of-memory cell retried alone on its GPU, and the
builder process giving bit-identical scores.

Ray may declare GPUs a machine does not have (``ray.init(num_gpus=2)``): it still gives
each GPU actor its fraction and ``CUDA_VISIBLE_DEVICES``, and such actors score on the CPU
(``device=auto``, no CUDA). That needs a Ray of its own, so those checks run in one
subprocess (one Ray start-up for all of them) that prints what it saw as JSON; the
session's Ray is left alone.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_config

from benchdata.batches import draw_batch
from benchdata.images import read_images
from orchestrator.builder import Builder, BuilderSpec
from orchestrator.errors import SweepError
from orchestrator.placement import auto_actors_per_gpu, memory_fraction
from orchestrator.plan import Job
from orchestrator.scoring import JobInputs, Worker, build_cell, cell_seed, score_cell
from orchestrator.settings import load_settings
from spaces.registry import make_space

TESTS = Path(__file__).resolve().parent
#: NB201 cells of the sweep on fake GPUs; the second (the one that runs out of memory) has
#: a parameter count no other has
CELLS = ["0", "1", "2", "3", "4", "5"]
SMALL = ["+sweep=nb201_smoke", "sweep.seeds=[0]", "proxy.grad_norm.batch_size=16", "proxy.naswot.batch_size=16"]
GIB = 2**30

SCRIPT = textwrap.dedent('''
    import json, os, sys, time
    import pyarrow.dataset as pads
    import ray
    from conftest import make_config
    from orchestrator.payload import ScorerSpec
    from orchestrator.placement import Slot, node_affinity, plan_slots
    from orchestrator.plan import Job, Shard
    from orchestrator.pool import ShardWork, run_pool
    from orchestrator.scorer import Scorer
    from orchestrator.settings import ClusterSettings
    from orchestrator.sweep import run_sweep

    out_dir, log_dir, oom_params = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             namespace="proxysweep", runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    node = ray.get_runtime_context().get_node_id()
    result = {}

    # 1. actors_per_gpu=4 on 2 declared GPUs: 8 real scorer actors, each describing itself
    slots = plan_slots("t", True, ClusterSettings(actors_per_gpu=4))
    remote = ray.remote(Scorer)
    actors = [remote.options(max_concurrency=1, scheduling_strategy=node_affinity(s), **s.resources()).remote(
        ScorerSpec(s.name, "nb201", {}, (), "auto", s.threads, (), s.gpu_share, 0)) for s in slots]
    result["slots"] = [{"name": s.name, "kind": s.kind, "resources": s.resources(), "threads": s.threads,
                        "build_ahead": s.build_ahead} for s in slots]
    result["actors"] = ray.get([a.describe.remote() for a in actors], timeout=300)
    result["gpu_left"] = ray.available_resources().get("GPU", 0.0)
    for a in actors:
        ray.kill(a)
    result["auto_slots"] = [s.resources() for s in plan_slots("t", True, ClusterSettings())]
    result["cpu_slots"] = [s.resources() for s in plan_slots("t", False, ClusterSettings(threads_per_actor=2))]

    # 2. the pool with 4 actors sharing GPUs and 1 CPU actor; cell g1 runs out of memory
    from orchestrator.scoring import CellOutOfMemory

    class FakeScorer:
        """Logs each call's interval; raises CellOutOfMemory for g1 unless sent alone."""
        def __init__(self, log, shares, seconds):
            self.log, self.shares, self.seconds = log, shares, seconds
        def placement(self):
            return ray.get_runtime_context().get_node_id(), tuple(str(g) for g in ray.get_gpu_ids())
        def release(self):
            now = time.time()
            with open(self.log, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                    "cell": None, "alone": False, "start": now, "end": now}) + "\\n")
        def score_cell(self, job, arch_id, arch, proxies, ahead=(), alone=False):
            start = time.time()
            time.sleep(self.seconds)
            gpu = os.environ.get("CUDA_VISIBLE_DEVICES") if self.shares else None
            with open(self.log, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "gpu": gpu, "cell": arch_id, "alone": alone,
                                    "start": start, "end": time.time()}) + "\\n")
            if arch_id == "g1" and self.shares and not alone:
                raise CellOutOfMemory("oom_probe: OutOfMemoryError: CUDA out of memory (fake)")
            return [{"arch_id": arch_id, "status": "ok", "alone": alone, "gpu": gpu, "ahead": list(ahead)}]

    fake = ray.remote(FakeScorer)
    log = os.path.join(log_dir, "pool.jsonl")
    pool_slots = [Slot("cpu0", node, "h", "cpu", 1)]
    pool_slots += [Slot(f"gpu{k}", node, "h", "gpu", 1, gpu_share=0.25, build_ahead=2) for k in range(4)]
    job = Job("s", "d", 0)
    shards = [Shard(job, tuple(f"{c}{k}" for k in range(4)), ("x",) * 4, ("p",)) for c in "cgxyz"]
    done = {}
    run_pool([ShardWork(s, {}) for s in shards], pool_slots,
             lambda s: fake.options(max_concurrency=1, **s.resources()).remote(log, s.kind == "gpu",
                                                                            1.5 if s.kind == "cpu" else 0.2),
             lambda rows: None, lambda item: done.update({item.shard.name: [r for rows in item.rows for r in rows]}),
             lambda shard, pos, error: [{"arch_id": shard.ids[pos], "status": "error", "error": error}])
    result["pool"] = {"shards": [[r["arch_id"] for r in done[s.name]] for s in shards],
                      "rows": [r for s in shards for r in done[s.name]],
                      "restarts": sum(s.restarts for s in pool_slots)}

    # 3. a real sweep on 4 actors sharing the fake GPUs, with builders; one cell runs out of memory
    sweep_log = os.path.join(log_dir, "sweep.jsonl")
    run_sweep(make_config([
        *json.loads(os.environ["SMALL"]), "cells=ids", f"cells.ids=[{','.join(json.loads(os.environ['CELLS']))}]",
        "sweep.shard_size=2", "cluster.actors_per_gpu=4", "cluster.num_actors=4", "reduce=false",
        "plugins=[example_plugin.gpu_faults]", "sweep.proxies=[grad_norm,naswot,oom_probe]",
        f"proxy.oom_probe.oom_params={oom_params}", f"proxy.oom_probe.log={sweep_log}",
        "proxy.oom_probe.seconds=0.3", f"out_dir={out_dir}"]))
    result["sweep"] = pads.dataset(os.path.join(out_dir, "scores"), format="parquet").to_table().to_pylist()
    print(json.dumps(result))
''')


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def overlapping(entry: dict, log: list[dict]) -> list[dict]:
    """Calls of other processes of the same GPU that ran while ``entry`` ran."""
    return [e for e in log if e["pid"] != entry["pid"] and e["gpu"] == entry["gpu"]
            and e["start"] < entry["end"] and entry["start"] < e["end"]]


def nb201_job(proxies: list[str], overrides: list[str] = ()) -> tuple:
    settings = load_settings(make_config([*SMALL, f"sweep.proxies=[{','.join(proxies)}]", *overrides,
                                          "out_dir=unused"]), check_files=False)
    space = make_space("nb201", settings.space_settings)
    x, y = read_images(settings.images["cifar10"], "cifar10")
    batches = {spec: draw_batch(x, y, "cifar10", 0, spec) for spec in settings.batch_specs()}
    return settings, space, JobInputs(Job("nb201", "cifar10", 0), 10, (3, 32, 32), batches)


@pytest.fixture(scope="module")
def fake_gpus(tmp_path_factory) -> dict:
    """What the subprocess saw on its Ray with two declared GPUs, and the OOM cell's params."""
    folder = tmp_path_factory.mktemp("fake_gpus")
    _settings, space, _job = nb201_job(["params"])
    archs = dict(zip(space.cells().ids, space.cells().archs))
    counts = {c: sum(p.numel() for p in build_cell(space, archs[c], 10, 0).model.parameters()) for c in CELLS}
    target = CELLS[1]
    assert list(counts.values()).count(counts[target]) == 1, counts  # the probe must single out one cell
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
           "SMALL": json.dumps(SMALL), "CELLS": json.dumps(CELLS)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(folder / "out"), str(folder), str(counts[target])],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "folder": folder, "target": target, "target_params": counts[target], "stdout": done.stdout,
            "archs": archs}


def test_four_actors_per_declared_gpu(fake_gpus) -> None:
    slots, actors = fake_gpus["slots"], fake_gpus["actors"]
    assert len(slots) == 8 and all(s["kind"] == "gpu" for s in slots)
    assert all(s["resources"] == {"num_gpus": 0.25, "num_cpus": 0} for s in slots)
    assert all(s["threads"] == 1 and s["build_ahead"] == 2 for s in slots)  # 2 CPUs for 8 actors; the default
    assert fake_gpus["gpu_left"] == 0  # the 8 shares fill both GPUs
    by_gpu: dict[str, list[dict]] = {}
    for a in actors:
        assert a["device"] == "cpu"  # no CUDA here: device=auto scores on the CPU
        assert a["memory_fraction"] == pytest.approx(0.225)  # what it would cap on CUDA
        assert a["gpu_ids"] == [a["cuda_visible_devices"]]
        by_gpu.setdefault(a["cuda_visible_devices"], []).append(a)
    assert sorted(by_gpu) == ["0", "1"]  # different GPUs, different ids
    assert [len(v) for v in by_gpu.values()] == [4, 4]  # the 4 actors of a GPU share its id
    assert len({a["pid"] for a in actors}) == 8


def test_automatic_counts_without_cuda(fake_gpus) -> None:
    """Declared GPUs without CUDA: the memory probe finds none, so one actor per GPU, as
    before; CPU actors of 2 threads on 2 CPUs: one, holding both."""
    assert fake_gpus["auto_slots"] == [{"num_gpus": 1.0, "num_cpus": 0}] * 2
    assert fake_gpus["cpu_slots"] == [{"num_cpus": 2}]


def test_the_pool_mixes_gpu_and_cpu_actors_and_retries_an_oom_cell_alone(fake_gpus) -> None:
    pool = fake_gpus["pool"]
    assert pool["shards"] == [[f"{c}{k}" for k in range(4)] for c in "cgxyz"]  # each cell once, in order
    rows = {r["arch_id"]: r for r in pool["rows"]}
    assert all(r["status"] == "ok" for r in rows.values())
    assert pool["restarts"] == 0  # running out of memory kills no actor
    assert rows["g1"]["alone"] and rows["g1"]["gpu"] is not None
    assert sum(r["alone"] for r in rows.values()) == 1
    assert any(r["gpu"] is None for r in rows.values()) and any(r["gpu"] is not None for r in rows.values())
    for r in rows.values():  # a GPU actor's calls name the next two cells of the shard for its builder
        if r["gpu"] is not None and not r["alone"]:
            k = int(r["arch_id"][1])
            assert r["ahead"] == [[f"{r['arch_id'][0]}{j}", "x"] for j in range(k + 1, min(k + 3, 4))]
    log = read_log(fake_gpus["folder"] / "pool.jsonl")
    tries = [e for e in log if e["cell"] == "g1"]
    assert [e["alone"] for e in tries] == [False, True]
    alone = tries[1]
    assert overlapping(alone, log) == []  # nothing else ran on that GPU meanwhile
    # because each other actor of that GPU was told to release it, and had answered, first
    others = {e["pid"] for e in log if e["gpu"] == alone["gpu"] and e["pid"] != alone["pid"]}
    released = {e["pid"] for e in log if e["cell"] is None and e["gpu"] == alone["gpu"] and e["end"] <= alone["start"]}
    assert others and released == others


def test_a_sweep_on_shared_fake_gpus_retries_an_oom_cell_alone_and_scores_as_before(fake_gpus) -> None:
    rows = fake_gpus["sweep"]
    assert "Scoring 3 shard(s) with 4 GPU actor(s) (4 per GPU, 1 torch thread(s) each, building 2 cell(s) ahead)" \
        in fake_gpus["stdout"]
    assert sorted((r["arch_id"], r["proxy"]) for r in rows) == sorted(
        (c, p) for c in CELLS for p in ("grad_norm", "naswot", "oom_probe"))
    target = fake_gpus["target"]
    oom = [r for r in rows if r["proxy"] == "oom_probe" and r["arch_id"] == target]
    assert oom[0]["status"] == "error" and oom[0]["score"] is None
    assert oom[0]["error"].startswith("OutOfMemoryError: CUDA out of memory (by design: oom_probe)")
    assert all(r["status"] == "ok" for r in rows if r is not oom[0])
    log = read_log(fake_gpus["folder"] / "sweep.jsonl")
    tries = sorted((e for e in log if e["params"] == fake_gpus["target_params"]), key=lambda e: e["start"])
    assert len(tries) == 2  # tried beside the GPU's other actors, then alone
    assert overlapping(tries[1], log) == []
    # the networks came from the builder processes: the scores are those of the plain path
    # with the actors' one torch thread (more threads sum gradients in another order)
    settings, space, job = nb201_job(["grad_norm", "naswot"])
    archs = fake_gpus["archs"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plain = {(r["arch_id"], r["proxy"]): (r["status"], r["score"])
                 for c in CELLS for r in score_cell(space, job, c, archs[c], list(settings.proxies),
                                                    Worker("t", torch.device("cpu"), "h"))}
    finally:
        torch.set_num_threads(threads)
    swept = {(r["arch_id"], r["proxy"]): (r["status"], r["score"]) for r in rows if r["proxy"] != "oom_probe"}
    assert swept == plain


def test_building_ahead_gives_bit_identical_scores() -> None:
    """The same cells scored with networks from a builder process and built in place:
    every score equal to the last bit, every status equal; a cell that cannot be built
    gives the same error either way."""
    proxies = ["grad_norm", "snip", "fisher", "synflow", "jacob_cov", "naswot"]
    settings, space, job = nb201_job(proxies, [f"proxy.{p}.batch_size=16" for p in ("snip", "fisher", "jacob_cov")])
    table = space.cells()
    ids = [table.ids[i] for i in (7, 5000, 11000)]
    archs = dict(zip(table.ids, table.archs))
    archs["broken"] = "|not_an_op~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    ids.append("broken")
    worker = Worker("t", torch.device("cpu"), "h")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a CPU actor and its builder
    builder = Builder(BuilderSpec("nb201", dict(settings.space_settings), (), 1), keep=4)
    ahead = []
    try:
        plain = [score_cell(space, job, c, archs[c], list(settings.proxies), worker) for c in ids]
        for k, c in enumerate(ids):
            for nxt in ids[k + 1:k + 3]:
                builder.request((cell_seed("nb201", 0, nxt), archs[nxt], 10))
            built = builder.take((cell_seed("nb201", 0, c), archs[c], 10))
            assert built is not None or k == 0  # the first cell is built in place, the others came built
            ahead.append(score_cell(space, job, c, archs[c], list(settings.proxies), worker, built))
    finally:
        builder.close()
        torch.set_num_threads(threads)

    def columns(rows: list[dict]) -> list[tuple]:
        return [(r["arch_id"], r["proxy"], r["status"], r["error"],
                 None if r["score"] is None else float(r["score"]).hex()) for r in rows]
    assert [columns(r) for r in ahead] == [columns(r) for r in plain]
    assert {r["status"] for r in plain[-1]} == {"error"}
    assert plain[-1][0]["error"].startswith("building the model failed:")
    assert all(r["status"] in ("ok", "nonfinite") for rows in plain[:-1] for r in rows)


def test_automatic_actors_per_gpu() -> None:
    assert auto_actors_per_gpu(16, 141 * GIB) == 8  # H200 with 16 cores
    assert auto_actors_per_gpu(12, 80 * GIB) == 6  # 8 x H100 on 96 cores: CPUs decide
    assert auto_actors_per_gpu(32, 40 * GIB) == 4  # A100 40GB: memory decides
    assert auto_actors_per_gpu(16, 16 * GIB) == 1
    assert auto_actors_per_gpu(1, 80 * GIB) == 1
    assert auto_actors_per_gpu(64, None) == 1  # memory unknown: as before
    assert memory_fraction(1 / 4) == pytest.approx(0.225)


@pytest.mark.parametrize("override, message", [
    ("cluster.actors_per_gpu=0", "cluster.actors_per_gpu must be null (automatic) or an integer from 1 to 64; got 0"),
    ("cluster.actors_per_gpu=1.5", "cluster.actors_per_gpu must be null (automatic) or an integer from 1 to 64; got 1.5"),
    ("cluster.actors_per_gpu=100", "cluster.actors_per_gpu must be null (automatic) or an integer from 1 to 64; got 100"),
    ("cluster.threads_per_actor=0", "cluster.threads_per_actor must be null (automatic) or an integer from 1 to 1024; got 0"),
    ("cluster.threads_per_actor=two", "cluster.threads_per_actor must be null (automatic) or an integer from 1 to 1024; got 'two'"),
    ("cluster.build_ahead=-1", "cluster.build_ahead must be null (automatic) or an integer from 0 to 16; got -1"),
    ("cluster.build_ahead=true", "cluster.build_ahead must be null (automatic) or an integer from 0 to 16; got True"),
])
def test_bad_cluster_settings_are_one_line(override: str, message: str) -> None:
    with pytest.raises(SweepError) as caught:
        load_settings(make_config([*SMALL, override, "out_dir=unused"]), check_files=False)
    assert str(caught.value) == message


def test_good_cluster_settings() -> None:
    cluster = load_settings(make_config([*SMALL, "cluster.actors_per_gpu=4", "cluster.threads_per_actor=2",
                                         "cluster.build_ahead=0", "out_dir=unused"]), check_files=False).cluster
    assert (cluster.actors_per_gpu, cluster.threads_per_actor, cluster.build_ahead) == (4, 2, 0)
    default = load_settings(make_config([*SMALL, "out_dir=unused"]), check_files=False).cluster
    assert (default.actors_per_gpu, default.threads_per_actor, default.build_ahead) == (None, None, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_memory_cap_on_a_real_gpu() -> None:
    """On CUDA, an actor's cap makes an allocation past its share fail in that process."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(memory_fraction(1 / 4), 0)
    try:
        with pytest.raises(torch.cuda.OutOfMemoryError):
            torch.empty(int(total * 0.3), dtype=torch.uint8, device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
