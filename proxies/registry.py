"""One registry of proxies: a proxy is a function of a scoring context and its settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from proxies.context import ScoringContext

ProxyFn = Callable[["ScoringContext", Mapping[str, Any]], float]


@dataclass(frozen=True)
class Proxy:
    """A registered proxy.

    ``higher_is_better`` orients the metrics; ``uses_images`` says whether the score reads
    the fixed batch (synflow, for instance, reads only its shape), and ``uses_labels``
    whether it reads the labels.
    """

    name: str
    fn: ProxyFn
    higher_is_better: bool = True
    uses_images: bool = True
    uses_labels: bool = False


PROXIES: dict[str, Proxy] = {}


def register(
    name: str, *, higher_is_better: bool = True, uses_images: bool = True, uses_labels: bool = False
) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator that adds a proxy function to the registry under ``name``."""

    def add(fn: ProxyFn) -> ProxyFn:
        if name in PROXIES:
            raise KeyError(f"proxy {name!r} registered twice")
        PROXIES[name] = Proxy(name, fn, higher_is_better, uses_images, uses_labels)
        return fn

    return add


def get_proxy(name: str) -> Proxy:
    """The proxy called ``name``; KeyError listing the known names otherwise."""
    try:
        return PROXIES[name]
    except KeyError:
        raise KeyError(f"unknown proxy {name!r}; known: {', '.join(sorted(PROXIES))}") from None
