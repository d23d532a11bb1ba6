"""Score one cell with every requested proxy: the work an actor does per cell.

Determinism: the torch, numpy and Python RNGs are seeded from (sweep seed, space, cell id)
before the model is built, and again from (that seed, proxy name) before each proxy, so a
score depends on neither the shard, the worker, the order nor the other proxies requested.
A proxy that scores another network of the cell (``spaces.base.NetworkVariant``) builds it
under its own seed, on the CPU, so that network too is the same everywhere. A proxy that
raises gives an error row (score null), one that returns nan or inf a ``nonfinite`` row
that keeps the value; the other proxies go on.

Building is separate from scoring (``build_cell``) so that an actor can build the next
cells in another process while it scores this one (``orchestrator.builder``): the network
is built on the CPU right after seeding, wherever that happens, so it is the same network.
"""
from __future__ import annotations

import functools
import math
import random
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from proxies import ScoringContext, get_proxy
from spaces.base import SearchSpace

if TYPE_CHECKING:
    from orchestrator.plan import Job
    from orchestrator.settings import ProxyRun
from benchdata.batches import BatchSpec, derive_seed

Row = dict[str, Any]


class CellOutOfMemory(Exception):
    """A cell ran out of GPU memory on an actor that shares its GPU: the pool retries it
    alone on the GPU (``orchestrator.pool``) rather than recording an error now."""


@dataclass
class BuiltCell:
    """A cell's network built on the CPU from its seed, or why it could not be built
    (the error text of its rows); ``seconds``: what the build took where it ran."""

    model: torch.nn.Module | None
    error: str | None
    seconds: float


def build_cell(space: SearchSpace, arch: str, num_classes: int, seed: int) -> BuiltCell:
    """Seed every RNG from ``seed``, then parse and build the cell on the CPU: exactly the
    steps, in the same order, of every scoring of the cell, here or in a builder process."""
    seed_everything(seed)
    start = time.perf_counter()
    try:
        model = space.build(space.parse(arch), num_classes)
    except Exception as exc:  # a malformed or unbuildable cell: every proxy gets the error
        return BuiltCell(None, f"building the model failed: {describe_error(exc)}", 0.0)
    return BuiltCell(model, None, time.perf_counter() - start)


@dataclass(frozen=True)
class Worker:
    """Who scores: recorded in every row."""

    name: str
    device: torch.device
    host: str


@dataclass(frozen=True)
class JobInputs:
    """What every cell of a job shares, on the actor's device: the head size, the input
    shape and the fixed batches."""

    job: Job
    num_classes: int
    input_shape: tuple[int, ...]
    batches: Mapping[BatchSpec, tuple[torch.Tensor, torch.Tensor]]


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy's global RNG and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def exact_cuda() -> None:
    """Make CUDA scoring repeatable and plain float32: deterministic cuDNN algorithms, no
    autotuning, and no TF32 in convolutions or matrix products (PyTorch lets cuDNN use
    TF32 by default, which rounds inputs to 10 mantissa bits; the references ran in float32)."""
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def cell_seed(space: str, seed: int, arch_id: str) -> int:
    """The seed a cell's network is initialised with."""
    return derive_seed("cell", space, seed, arch_id)


def describe_error(exc: BaseException) -> str:
    """One line: exception type, message, and where in the code it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"[:2000]


@dataclass
class Outcome:
    """One proxy's result on one network: its score (None when it raised), status, the
    error text, what it cost alone and the shared part of that (see the scores schema)."""

    name: str
    score: float | None
    status: str
    error: str | None
    seconds: float
    shared_seconds: float
    exception: BaseException | None = None


def run_proxies(ctx: ScoringContext, proxies: Sequence[ProxyRun], seed: int, build_seconds: float = 0.0,
                raise_on_oom: bool = False) -> list[Outcome]:
    """Every proxy on the context's network, each after seeding from (``seed``, its name),
    each seeing the initial weights; a proxy that raises gives an error outcome and the
    others go on, except that with ``raise_on_oom`` a CUDA out-of-memory error raises
    ``CellOutOfMemory`` at once (the cell is to be scored again, alone on its GPU)."""
    out = []
    for run in proxies:
        seed_everything(derive_seed(seed, run.name))
        ctx.used.clear()
        computed_before = dict(ctx.pass_seconds)
        start = time.perf_counter()
        score: float | None = None
        error: str | None = None
        caught: BaseException | None = None
        try:
            score = float(get_proxy(run.name).fn(ctx, run.params))
            status = "ok" if math.isfinite(score) else "nonfinite"
            if status != "ok":  # the value is kept: -inf (a singular NASWOT kernel) still ranks
                error = f"the proxy returned {score}"
        except Exception as exc:
            status, error, caught = "error", describe_error(exc), exc
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
            if raise_on_oom and isinstance(exc, torch.cuda.OutOfMemoryError):
                raise CellOutOfMemory(f"{run.name}: {error}") from None
        finally:
            ctx.restore()
        elapsed = time.perf_counter() - start
        ran_here = sum(s for k, s in ctx.pass_seconds.items() if k not in computed_before)
        shared = build_seconds + sum(ctx.pass_seconds[k] for k in ctx.used)
        out.append(Outcome(run.name, score, status, error, (elapsed - ran_here) + shared, shared, caught))
    return out


def score_cell(
    space: SearchSpace,
    job: JobInputs,
    arch_id: str,
    arch: str,
    proxies: Sequence[ProxyRun],
    worker: Worker,
    built: BuiltCell | None = None,
    raise_on_oom: bool = False,
) -> list[Row]:
    """One row per requested proxy for the cell ``arch_id``, in the order given.

    ``built``: the cell's network as ``build_cell`` made it elsewhere (a builder process);
    without it the cell is built here. ``raise_on_oom``: see ``run_proxies`` (moving the
    network to the GPU may run out of memory too)."""
    base = {
        "space": job.job.space, "dataset": job.job.dataset, "seed": job.job.seed, "arch_id": arch_id,
        "arch": arch, "worker": worker.name, "device": str(worker.device), "host": worker.host,
    }
    seed = cell_seed(job.job.space, job.job.seed, arch_id)
    if built is None:
        built = build_cell(space, arch, job.num_classes, seed)
    error = built.error
    start = time.perf_counter()
    if built.model is not None:
        try:
            model = built.model.to(worker.device).train()
        except Exception as exc:
            if raise_on_oom and isinstance(exc, torch.cuda.OutOfMemoryError):
                raise CellOutOfMemory(f"moving the model to {worker.device}: {describe_error(exc)}") from None
            error = f"building the model failed: {describe_error(exc)}"
    if error is not None:
        return [
            {**base, "proxy": run.name, "score": None, "status": "error", "error": error,
             "seconds": 0.0, "shared_seconds": 0.0}
            for run in proxies
        ]
    build_seconds = built.seconds + time.perf_counter() - start
    build_variant = getattr(space, "build_variant", None)  # the optional hook (spaces.base.BuildsVariants)
    variants = (functools.partial(build_variant, space.parse(arch), job.num_classes)
                if build_variant is not None else None)
    ctx = ScoringContext(model, job.batches, job.input_shape, job.num_classes, worker.device, variants)
    return [
        {**base, "proxy": o.name, "score": o.score, "status": o.status, "error": o.error,
         "seconds": o.seconds, "shared_seconds": o.shared_seconds}
        for o in run_proxies(ctx, proxies, seed, build_seconds, raise_on_oom)
    ]
