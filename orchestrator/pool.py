"""The pool of scorer actors and the driver loop that feeds them shards.

One actor per GPU of the cluster (``num_gpus=1``) or, without GPUs, per CPU slot
(``num_cpus=1``, one torch thread), each pinned to its node with a soft node affinity and
named after node and device so the dashboard tells them apart. The driver hands out one
shard per idle actor and consumes each actor's per-cell stream. When an actor dies, the
cells it had not yet returned go back to the front of the queue and the actor is
replaced; a cell during which workers died ``max_cell_attempts`` times becomes error rows.

A death is counted against a cell only when that cell was the actor's one call in flight:
a process that dies with a later call queued may have finished the older cell and lost
only its reply, so those cells are retried one call at a time before anyone is blamed.
"""
from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import ray
from ray.exceptions import ActorDiedError, OutOfMemoryError, RayActorError, RayTaskError, WorkerCrashedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from orchestrator.payload import JobPayload
from orchestrator.plan import Shard
from orchestrator.scoring import Row, describe_error

log = logging.getLogger(__name__)

# What ray.get of an actor call raises when the call failed, or its process was lost:
# the scorer raised (RayTaskError), the actor died or became unreachable (RayActorError),
# Ray's memory monitor killed its process (OutOfMemoryError) or the process crashed.
CALL_FAILURES = (RayActorError, RayTaskError, OutOfMemoryError, WorkerCrashedError)


@dataclass
class Slot:
    """A place for one actor: a node and a device kind; the actor in it may be replaced."""

    name: str
    node_id: str
    host: str
    kind: str  # "gpu" or "cpu"
    threads: int
    restarts: int = 0
    actor: Any = None


@dataclass
class ShardWork:
    """A shard in progress: rows of the cells done so far, and per-cell death counts."""

    shard: Shard
    job: JobPayload
    rows: list[list[Row]] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)
    careful_until: int = -1  # cells up to this index are sent alone (see module docstring)

    @property
    def next_cell(self) -> int:
        return len(self.rows)

    @property
    def done(self) -> bool:
        return self.next_cell >= len(self.shard)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "node"


def plan_slots(sweep_name: str, use_gpus: bool, num_actors: int | None) -> list[Slot]:
    """Slots on the live nodes, round-robin across nodes, at most ``num_actors``."""
    per_node: list[list[Slot]] = []
    for node in sorted(ray.nodes(), key=lambda n: n["NodeManagerAddress"]):
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 0))
        host = _safe(node.get("NodeManagerHostname") or node["NodeManagerAddress"])
        ip = _safe(node["NodeManagerAddress"])
        count, kind = (gpus, "gpu") if use_gpus else (cpus, "cpu")
        threads = max(1, cpus // max(gpus, 1)) if use_gpus else 1
        per_node.append([
            Slot(f"scorer-{_safe(sweep_name)}-{host}-{ip}-{kind}{k}", node["NodeID"], host, kind, threads)
            for k in range(count)
        ])
    slots = [s for group in _round_robin(per_node) for s in group]
    return slots[:num_actors] if num_actors else slots


def _round_robin(groups: list[list[Slot]]) -> list[list[Slot]]:
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.append([g[i] for g in groups if i < len(g)])
    return out


def cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0


ActorFactory = Callable[[Slot], Any]


@dataclass
class Assignment:
    """A shard being scored by one actor: the calls in flight, oldest first."""

    slot: Slot
    item: ShardWork
    calls: deque[tuple[int, Any]] = field(default_factory=deque)


def run_pool(
    work: list[ShardWork],
    slots: list[Slot],
    make_actor: ActorFactory,
    on_cell: Callable[[list[Row]], None],
    on_shard: Callable[[ShardWork], None],
    failed_rows: Callable[[Shard, int, str], list[Row]],
    max_cell_attempts: int = 2,
    max_actor_restarts: int = 3,
    window: int = 2,
    wait_seconds: float = 1.0,
) -> None:
    """Score every shard of ``work``; ``on_shard`` is called once per finished shard.

    Each cell is one actor call, and an actor has at most ``window`` calls queued so it
    never waits for the driver between cells. An actor runs its calls in order, so the
    oldest call in flight is the cell it was working on when it failed.
    """
    queue = deque(work)
    idle: deque[Slot] = deque()
    for slot in slots:
        slot.actor = make_actor(slot)
        idle.append(slot)
    busy: dict[Any, Assignment] = {}  # oldest call in flight -> its assignment

    def submit(a: Assignment) -> None:
        item = a.item
        nxt = a.calls[-1][0] + 1 if a.calls else item.next_cell
        while nxt < len(item.shard):
            careful = (a.calls[0][0] if a.calls else nxt) <= item.careful_until
            if len(a.calls) >= (1 if careful else window):
                break
            ref = a.slot.actor.score_cell.remote(item.job, item.shard.ids[nxt], item.shard.archs[nxt],
                                                 item.shard.proxies)
            a.calls.append((nxt, ref))
            nxt += 1

    try:
        while queue or busy:
            while idle and queue:
                a = Assignment(idle.popleft(), queue.popleft())
                submit(a)
                busy[a.calls[0][1]] = a
            if not busy:
                raise RuntimeError(
                    f"every scorer actor died and none could be restarted; {len(queue)} shard(s) "
                    "were not scored (rerun the same command to resume)"
                )
            ready, _ = ray.wait(list(busy), num_returns=1, timeout=wait_seconds)
            for ref in ready:
                a = busy.pop(ref)
                item, slot = a.item, a.slot
                a.calls.popleft()
                try:
                    rows = ray.get(ref)
                except CALL_FAILURES as exc:
                    blamed = _blames_the_cell(exc)
                    if blamed and a.calls and not isinstance(exc, RayTaskError):
                        item.careful_until = a.calls[-1][0]
                        log.warning("scorer %s died with %d call(s) queued (%s); cells %s to %s "
                                    "of %s are retried one at a time", slot.name, len(a.calls) + 1,
                                    describe_error(exc), item.shard.ids[item.next_cell],
                                    item.shard.ids[item.careful_until], item.shard.name)
                    elif blamed:
                        _cell_failed(item, exc, max_cell_attempts, on_cell, failed_rows)
                    else:
                        log.warning("scorer %s was lost (%s); its shard goes back to the queue",
                                    slot.name, describe_error(exc))
                    if item.done:
                        on_shard(item)
                    else:
                        queue.appendleft(item)
                    # calls still queued behind the failed one are abandoned: the cells
                    # are handed out again from the first one not done
                    if isinstance(exc, RayTaskError) or _replace(slot, make_actor, max_actor_restarts):
                        idle.append(slot)
                    continue
                item.rows.append(rows)
                on_cell(rows)
                submit(a)
                if a.calls:
                    busy[a.calls[0][1]] = a
                else:
                    on_shard(item)
                    idle.append(slot)
    finally:
        for slot in slots:
            if slot.actor is not None:
                ray.kill(slot.actor)
                slot.actor = None


def _blames_the_cell(exc: Exception) -> bool:
    """Whether a failure counts against the cell in flight.

    An exception raised by the scorer, or its process dying while it ran (a crash, or
    Ray's memory monitor or the kernel killing it for memory), may be the cell's doing.
    An actor that never started, failed in its constructor, was preempted, or merely
    became unreachable (its node or the network failed) says nothing about the cell, so
    the cell is retried without counting."""
    if isinstance(exc, (RayTaskError, OutOfMemoryError, WorkerCrashedError)):
        return True
    if not isinstance(exc, ActorDiedError):
        return False  # e.g. ActorUnavailableError: the task may never have run
    if exc.actor_init_failed or exc.preempted:
        return False
    text = str(exc)
    return "never ran" not in text and "owner has died" not in text and "node has crashed" not in text


def _cell_failed(
    item: ShardWork, exc: Exception, max_attempts: int, on_cell: Callable[[list[Row]], None],
    failed_rows: Callable[[Shard, int, str], list[Row]],
) -> None:
    """Count a failure against the cell in flight; past the limit it becomes error rows."""
    pos = item.next_cell
    item.attempts[pos] = item.attempts.get(pos, 0) + 1
    log.warning("cell %s of %s/%s failed (attempt %d): %s", item.shard.ids[pos],
                item.shard.job.folder, item.shard.name, item.attempts[pos], describe_error(exc))
    if item.attempts[pos] < max_attempts:
        return
    what = "the worker raised" if isinstance(exc, RayTaskError) else "the worker died"
    error = f"{what} {item.attempts[pos]} times while scoring this cell: {describe_error(exc)}"
    rows = failed_rows(item.shard, pos, error)
    item.rows.append(rows)
    on_cell(rows)


def _replace(slot: Slot, make_actor: ActorFactory, max_restarts: int) -> bool:
    """Start a new actor in ``slot`` unless its node is gone or it has been restarted too
    often. A slot of a lost node is given up: the node's resources went with it, so a new
    actor would wait for them forever; the other slots finish its shards."""
    if slot.actor is not None:
        ray.kill(slot.actor)
        slot.actor = None
    alive = {node["NodeID"] for node in ray.nodes() if node.get("Alive")}
    if not alive:
        raise RuntimeError("the Ray cluster has no live node left; rerun the same command to resume")
    if slot.node_id not in alive:
        log.warning("the node of slot %s is gone; its work goes to the other actors", slot.name)
        return False
    if slot.restarts >= max_restarts:
        log.warning("giving up slot %s after %d restarts", slot.name, slot.restarts)
        return False
    slot.restarts += 1
    slot.actor = make_actor(slot)
    return True


def node_affinity(slot: Slot) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=slot.node_id, soft=True)
