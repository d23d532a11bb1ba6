"""Small helpers for tests that run servers on loopback: free ports, HTTP polling, and
reading Prometheus text."""
from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, TypeVar

T = TypeVar("T")

LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports free right now on ``host`` (held open together so they are distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def http_json(url: str, timeout: float = 5.0) -> Any:
    return json.loads(http_get(url, timeout))


def poll(check: Callable[[], T | None], timeout: float, every: float = 0.5, what: str = "condition",
         alive: Callable[[], bool] = lambda: True) -> T:
    """Call ``check`` until it returns something truthy; AssertionError after ``timeout``
    or as soon as ``alive()`` says the thing being waited on is gone."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error = exc
        assert alive(), f"gave up waiting for {what}: the process it depends on ended"
        assert time.monotonic() < deadline, f"no {what} after {timeout:g}s (last error: {last_error})"
        time.sleep(every)


def prometheus_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of metric ``name`` in Prometheus text format."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, labels = head.partition("{")
        if metric != name:
            continue
        out.append(({k: v for k, v in LABEL.findall(labels)}, float(value)))
    return out
