"""The pool of scorer actors and the driver loop that feeds them shards.

Several actors per GPU (each holding a fraction of it) or, without GPUs, one per
``threads_per_actor`` CPUs (``orchestrator.placement``), each pinned to its node with a soft
node affinity and named after node and device so the dashboard tells them apart. The
driver hands out one shard per idle actor and consumes each actor's per-cell stream,
telling each call which cells come next so the actor's builder can build them. When an
actor dies, the cells it had not yet returned go back to the front of the queue and the
actor is replaced; a cell during which workers died ``max_cell_attempts`` times becomes
error rows.

A death is counted against a cell only when that cell was the actor's one call in flight:
a process that dies with a later call queued may have finished the older cell and lost
only its reply, so those cells are retried one call at a time before anyone is blamed.

A cell that runs out of GPU memory on an actor sharing its GPU (``CellOutOfMemory``) is
not blamed either: it is retried alone on the GPU. The pool stops sending work to the
other actors of that GPU, sends each of them a ``release`` call (answered once the calls
queued before it have run, so the GPU is then idle) and only then sends the cell again,
with ``alone=True``; the GPU's actors get work again once it is answered. Its rows are
then whatever it gives alone (error rows if it still runs out).
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import ray
from ray.exceptions import ActorDiedError, OutOfMemoryError, RayActorError, RayTaskError, WorkerCrashedError

from orchestrator.payload import JobPayload
from orchestrator.placement import Slot, cluster_has_gpus, node_affinity, plan_slots
from orchestrator.plan import Shard
from orchestrator.scoring import CellOutOfMemory, Row, describe_error

__all__ = ["Slot", "ShardWork", "cluster_has_gpus", "node_affinity", "plan_slots", "run_pool"]

log = logging.getLogger(__name__)

# What ray.get of an actor call raises when the call failed, or its process was lost:
# the scorer raised (RayTaskError), the actor died or became unreachable (RayActorError),
# Ray's memory monitor killed its process (OutOfMemoryError) or the process crashed.
CALL_FAILURES = (RayActorError, RayTaskError, OutOfMemoryError, WorkerCrashedError)
#: seconds to wait for an actor to say which GPU it holds before treating it as alone
PLACEMENT_TIMEOUT = 60.0


@dataclass
class ShardWork:
    """A shard in progress: rows of the cells done so far, and per-cell death counts."""

    shard: Shard
    job: JobPayload
    rows: list[list[Row]] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)
    careful_until: int = -1  # cells up to this index are sent alone (see module docstring)
    alone: set[int] = field(default_factory=set)  # cells to retry alone on their GPU

    @property
    def next_cell(self) -> int:
        return len(self.rows)

    @property
    def done(self) -> bool:
        return self.next_cell >= len(self.shard)


ActorFactory = Callable[[Slot], Any]


@dataclass
class Assignment:
    """A shard being scored by one actor: the calls in flight, oldest first."""

    slot: Slot
    item: ShardWork
    calls: deque[tuple[int, Any]] = field(default_factory=deque)
    alone: bool = False  # its one call is a cell scored alone on the GPU


@dataclass
class Drain:
    """A GPU being emptied so that ``slot`` can score the next cell of ``item`` alone:
    ``waiting`` holds the other actors' ``release`` calls not yet answered."""

    slot: Slot
    item: ShardWork
    waiting: set[Any] = field(default_factory=set)


def _out_of_memory(exc: Exception) -> bool:
    return isinstance(exc, CellOutOfMemory) or isinstance(getattr(exc, "cause", None), CellOutOfMemory)


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

    def start(slot: Slot) -> Any:
        actor = make_actor(slot)
        slot.group = None
        slot.placement = actor.placement.remote() if slot.shares_gpu else None
        return actor

    for slot in slots:
        slot.actor = start(slot)
        idle.append(slot)
    busy: dict[Any, Assignment] = {}  # oldest call in flight -> its assignment
    drains: dict[Any, Drain] = {}  # GPU group -> the cell waiting to be scored alone on it
    releases: dict[Any, Drain] = {}  # release call -> its drain

    def group(slot: Slot) -> Any:
        """The GPU a sharing slot's actor holds (None for the others)."""
        if not slot.shares_gpu:
            return None
        if slot.group is None:
            try:
                slot.group = ray.get(slot.placement, timeout=PLACEMENT_TIMEOUT)
            except Exception:  # no answer: it shares with no known actor
                slot.group = ("unknown", slot.name)
        return slot.group

    def drained(slot: Slot) -> bool:
        return bool(drains) and slot.shares_gpu and group(slot) in drains

    def needs_alone(slot: Slot, item: ShardWork) -> bool:
        return slot.shares_gpu and item.next_cell in item.alone

    def submit(a: Assignment) -> None:
        item, slot = a.item, a.slot
        if a.alone or drained(slot):
            return
        nxt = a.calls[-1][0] + 1 if a.calls else item.next_cell
        while nxt < len(item.shard):
            careful = (a.calls[0][0] if a.calls else nxt) <= item.careful_until
            if len(a.calls) >= (1 if careful else window) or (slot.shares_gpu and nxt in item.alone):
                break
            kwargs = {}
            if slot.build_ahead:
                stop = min(nxt + 1 + slot.build_ahead, len(item.shard))
                kwargs["ahead"] = tuple(zip(item.shard.ids[nxt + 1:stop], item.shard.archs[nxt + 1:stop]))
            ref = slot.actor.score_cell.remote(item.job, item.shard.ids[nxt], item.shard.archs[nxt],
                                               item.shard.proxies, **kwargs)
            a.calls.append((nxt, ref))
            nxt += 1

    def begin_drain(slot: Slot, item: ShardWork) -> None:
        gpu = group(slot)
        drain = Drain(slot, item)
        for other in slots:
            if other is not slot and other.actor is not None and other.shares_gpu and group(other) == gpu:
                ref = other.actor.release.remote()
                drain.waiting.add(ref)
                releases[ref] = drain
        drains[gpu] = drain
        log.warning("cell %s of %s ran out of GPU memory beside %d other actor(s) of its GPU; it is retried "
                    "alone once they are done", item.shard.ids[item.next_cell], item.shard.name, len(drain.waiting))

    def send_alone(drain: Drain) -> None:
        """The GPU is empty: score the cell alone on it."""
        slot, item = drain.slot, drain.item
        if slot.actor is None:  # its slot was given up meanwhile: another will take the shard
            del drains[group(slot)]
            queue.appendleft(item)
            return
        pos = item.next_cell
        ref = slot.actor.score_cell.remote(item.job, item.shard.ids[pos], item.shard.archs[pos],
                                           item.shard.proxies, alone=True)
        a = Assignment(slot, item, deque([(pos, ref)]), alone=True)
        busy[ref] = a

    def send_ready() -> None:
        for drain in list(drains.values()):
            if not drain.waiting and not any(a.alone and a.slot is drain.slot for a in busy.values()):
                send_alone(drain)

    def assign() -> None:
        send_ready()  # may put a shard back in the queue
        held = []
        while idle and queue:
            slot = idle.popleft()
            if drained(slot):  # its GPU is being emptied: it waits
                held.append(slot)
                continue
            item = queue.popleft()
            if needs_alone(slot, item):
                begin_drain(slot, item)
                continue
            a = Assignment(slot, item)
            submit(a)
            busy[a.calls[0][1]] = a
        idle.extend(held)
        send_ready()  # a drain just begun on a GPU with no other actor

    try:
        while queue or busy or drains:
            assign()
            if not busy and not releases:
                raise RuntimeError(
                    f"every scorer actor died and none could be restarted; {len(queue)} shard(s) "
                    "were not scored (rerun the same command to resume)"
                )
            ready, _ = ray.wait([*busy, *releases], num_returns=1, timeout=wait_seconds)
            for ref in ready:
                if ref in releases:  # answered or failed: either way that actor is off the GPU
                    releases.pop(ref).waiting.discard(ref)
                    continue
                a = busy.pop(ref)
                item, slot = a.item, a.slot
                a.calls.popleft()
                if a.alone:
                    del drains[group(slot)]
                try:
                    rows = ray.get(ref)
                except CALL_FAILURES as exc:
                    if _out_of_memory(exc) and slot.shares_gpu and not a.alone:
                        item.alone.add(item.next_cell)
                        queue.appendleft(item)
                        idle.append(slot)
                        continue
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
                    if isinstance(exc, RayTaskError) or _replace(slot, start, max_actor_restarts):
                        idle.append(slot)
                    continue
                if a.alone:
                    item.alone.discard(item.next_cell)
                    a.alone = False
                item.rows.append(rows)
                on_cell(rows)
                submit(a)
                if a.calls:
                    busy[a.calls[0][1]] = a
                else:
                    if item.done:
                        on_shard(item)
                    else:  # stopped for a cell to score alone, or for its GPU's drain
                        queue.appendleft(item)
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

