"""Build the next cells' networks in a process of the actor's own while the actor scores.

On a GPU, building a network on the CPU costs more than scoring it (benchmarks/README.md),
so a scorer actor hands the cells it will score next to a builder process and takes each
network from it when its turn comes: the GPU no longer waits for a build.

Why a process and not a thread: ``build_cell`` seeds the global torch RNG and initialises
the network from it (``nn.Module`` initialisers draw from the global default generator,
which no thread can have for itself), while the actor's own thread seeds and draws from
that same generator for its proxies. In a process of its own the builder does exactly
what the actor would do, seed then build on the CPU, with nothing else drawing in
between, so the network is bit for bit the one the actor would have built
(tests/test_gpu_fill.py checks the scores). The network comes back pickled (tensors by
value, so no shared-memory file descriptor is held per tensor) and is unpickled by the
reader thread, which draws no random numbers.

The builder is ``python -m orchestrator.builder``, not a ``multiprocessing`` child: a
spawned child would re-import the Ray worker's main module, and a forked one would copy a
process full of threads. Requests and replies are length-prefixed pickles over its
stdin/stdout, answered in order. If the process dies the actor builds in-process (the
same network) and starts a new builder on the next request.
"""
from __future__ import annotations

import itertools
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO, Any, Mapping

from orchestrator.scoring import BuiltCell

log = logging.getLogger(__name__)

FRAME = struct.Struct("<Q")
#: (cell seed, cell string, head size): what a build depends on
BuildKey = tuple[int, str, int]
#: seconds to wait for one network before building it in the actor instead
BUILD_TIMEOUT = 300.0
#: new builder processes after which an actor builds in-process for good
MAX_STARTS = 3


@dataclass(frozen=True)
class BuilderSpec:
    """What the builder process needs to build like the actor: the space, its settings,
    the plugins that may register it, and the actor's torch threads."""

    space: str
    space_settings: Mapping[str, Any]
    plugins: tuple[str, ...]
    threads: int


def send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(data)) + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next message; EOFError when the other side has gone."""
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        raise EOFError
    (size,) = FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class Builder:
    """The actor's side: ``request`` cells ahead, ``take`` a cell's network when it is due.

    At most ``keep`` requested networks are held; older ones are dropped (a dropped or
    never-requested cell is built by the actor itself, giving the same network)."""

    def __init__(self, spec: BuilderSpec, keep: int) -> None:
        self.spec = spec
        self.keep = max(1, keep)
        self._pending: OrderedDict[BuildKey, Future] = OrderedDict()
        self._futures: dict[int, Future] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._starts = 0

    def _running(self) -> subprocess.Popen | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self._starts >= MAX_STARTS:
            return None
        self._starts += 1
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator.builder"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)
        send(proc.stdin, self.spec)
        threading.Thread(target=self._read, args=(proc,), name="builder-reader", daemon=True).start()
        self._proc = proc
        return proc

    def _read(self, proc: subprocess.Popen) -> None:
        """Resolve each request's future with its unpickled network (None: not picklable,
        or the builder died: the actor builds the cell itself)."""
        try:
            while True:
                rid, blob = receive(proc.stdout)
                built = pickle.loads(blob) if blob is not None else None
                with self._lock:
                    future = self._futures.pop(rid, None)
                if future is not None:
                    future.set_result(built)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            if proc.poll() is None and not isinstance(exc, EOFError):
                proc.kill()
            with self._lock:  # every request still unanswered by this process
                lost = list(self._futures.items())
                self._futures.clear()
            for _rid, future in lost:
                future.set_result(None)

    def request(self, key: BuildKey) -> None:
        """Have the builder build ``key`` next, unless it already is."""
        if key in self._pending:
            return
        proc = self._running()
        if proc is None:
            return
        future: Future = Future()
        rid = next(self._ids)
        with self._lock:
            self._futures[rid] = future
        try:
            send(proc.stdin, (rid, key))
        except OSError:  # the builder died: its reader thread answers the rest with None
            with self._lock:
                self._futures.pop(rid, None)
            return
        self._pending[key] = future
        while len(self._pending) > self.keep:
            self._pending.popitem(last=False)

    def take(self, key: BuildKey) -> BuiltCell | None:
        """The network of ``key`` if it was requested (waiting for it), else None. Requests
        older than ``key`` are dropped: calls come in the order they were requested."""
        if key not in self._pending:
            return None
        while True:
            older, future = self._pending.popitem(last=False)
            if older == key:
                break
        try:
            return future.result(timeout=BUILD_TIMEOUT)
        except TimeoutError:
            log.warning("the builder process took over %.0f s for one network; it is restarted", BUILD_TIMEOUT)
            self.close()
            return None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self._pending.clear()


def main() -> None:
    """The builder process: read the spec, then build each requested cell, in order."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the replies
    inp = sys.stdin.buffer
    spec: BuilderSpec = receive(inp)

    import torch

    from orchestrator.plugins import load_plugins
    from orchestrator.scoring import build_cell
    from spaces.registry import make_space

    load_plugins(spec.plugins)
    torch.set_num_threads(max(1, spec.threads))
    space = make_space(spec.space, spec.space_settings)
    while True:
        try:
            rid, (seed, arch, num_classes) = receive(inp)
        except EOFError:  # the actor has gone
            return
        built = build_cell(space, arch, num_classes, seed)
        try:
            blob = pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a network that does not pickle: the actor builds it
            blob = None
        try:
            send(out, (rid, blob))
        except OSError:
            return


if __name__ == "__main__":
    main()
