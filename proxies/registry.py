"""One registry of proxies: a proxy is a function of a scoring context and its settings.

A proxy is added by one decorated function, carrying its default settings (its reference's
hyperparameters), so the registry is the only place a proxy is described: the Hydra config
(``proxy.<name>.<setting>``) is built from it, and a user's own module registers proxies
the same way (``plugins=[my_module]``). Settings are checked against the defaults before
any work starts: a bad value is one line, never a row of errors.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from spaces.registry import is_finite_number

if TYPE_CHECKING:
    from proxies.context import ScoringContext

ProxyFn = Callable[["ScoringContext", Mapping[str, Any]], float]
ParamsCheck = Callable[[Mapping[str, Any]], None]

#: settings every image-reading proxy has; ``mode`` is shared by all
IMAGE_SETTINGS = ("batch_size", "augment")
MODES = ("train", "eval")


@dataclass(frozen=True)
class Proxy:
    """A registered proxy.

    ``defaults`` are its settings as the reference runs it; ``choices`` restricts string
    settings to named values; ``check`` may reject values the type rules let through.
    ``higher_is_better`` orients the metrics; ``uses_images`` says whether the score reads
    the fixed batch (synflow, for instance, reads only its shape), and ``uses_labels``
    whether it reads the labels. ``from_space`` names settings whose reference value
    depends on the search space (epsinas's weights): left empty, each is taken from the
    space's ``proxy_constants.<proxy>.<setting>``. ``module`` is where it was registered
    (plugins are told apart from built-ins by it).
    """

    name: str
    fn: ProxyFn
    defaults: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    check: ParamsCheck | None = None
    higher_is_better: bool = True
    uses_images: bool = True
    uses_labels: bool = False
    from_space: tuple[str, ...] = ()
    module: str = ""

    def settings(self, overrides: Mapping[str, Any] | None = None, space: str = "",
                 space_constants: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides`` applied, the ``from_space`` settings left empty
        filled from ``space_constants`` (the space's ``proxy_constants``), checked;
        ValueError with one line naming the setting otherwise."""
        params = copy.deepcopy(dict(self.defaults))
        for key, value in (overrides or {}).items():
            if key not in self.defaults:
                known = ", ".join(sorted(self.defaults)) or "none"
                raise ValueError(f"proxy.{self.name}.{key} is not a setting of {self.name} (its settings: {known})")
            params[key] = _checked(self.name, key, value, self.defaults[key], self.choices.get(key))
        mine = (space_constants or {}).get(self.name) or {}
        for key in self.from_space:
            if params[key] in (None, [], {}, ""):
                if key not in mine:
                    raise ValueError(f"proxy.{self.name}.{key} is not set and search space {space or '(none given)'} "
                                     f"has no value for it: set proxy.{self.name}.{key} or "
                                     f"space.{space or '<space>'}.proxy_constants.{self.name}.{key}")
                params[key] = _checked(self.name, key, copy.deepcopy(mine[key]), self.defaults[key],
                                       self.choices.get(key))
        if self.uses_images:
            missing = [k for k in IMAGE_SETTINGS if k not in params]
            if missing:
                raise ValueError(f"proxy {self.name} reads images but has no default {', '.join(missing)}")
        if self.check is not None:
            self.check(params)
        return params


PROXIES: dict[str, Proxy] = {}


def register(
    name: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    check: ParamsCheck | None = None,
    higher_is_better: bool = True,
    uses_images: bool = True,
    uses_labels: bool = False,
    from_space: Sequence[str] = (),
) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator that adds a proxy function to the registry under ``name``.

    ``defaults`` (a dict of plain values) are the settings it runs with unless a sweep
    overrides them; a proxy that reads images needs ``batch_size`` and ``augment``, and
    every proxy may have ``mode`` (``train`` or ``eval``). Overrides must keep each
    setting's type: an integer stays an integer (and positive if its default is), a float
    takes any number, a setting whose default is None takes None or a positive integer.
    ``from_space``: settings whose empty default means "the search space's value" (see
    ``Proxy``).
    """
    params = dict(defaults or {})
    for key in from_space:
        if key not in params:
            raise ValueError(f"proxy {name!r}: from_space names {key!r}, which has no default")
    for key, values in (choices or {}).items():
        if params.get(key) not in values:
            raise ValueError(f"proxy {name!r}: default {key}={params.get(key)!r} is not among its choices {list(values)}")

    def add(fn: ProxyFn) -> ProxyFn:
        if name in PROXIES:
            raise KeyError(f"proxy {name!r} is registered twice (by {PROXIES[name].module} and {fn.__module__})")
        PROXIES[name] = Proxy(name, fn, params, dict(choices or {}), check, higher_is_better,
                              uses_images, uses_labels, tuple(from_space), fn.__module__)
        return fn

    return add


def get_proxy(name: str) -> Proxy:
    """The proxy called ``name``; KeyError listing the known names otherwise."""
    try:
        return PROXIES[name]
    except KeyError:
        raise KeyError(f"unknown proxy {name!r}; known: {', '.join(sorted(PROXIES))}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked(proxy: str, key: str, value: Any, default: Any, choices: Sequence[Any] | None) -> Any:
    """``value`` if it fits the type of ``default`` (ints as floats where a float is due)."""
    where = f"proxy.{proxy}.{key}"
    if key == "mode" and value not in MODES:
        raise ValueError(f"{where} must be train or eval; got {value!r}")
    if choices is not None and value not in choices:
        raise ValueError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        want = "true or false"
    elif _is_int(default):
        ok = _is_int(value) and (value >= 1 or default < 1)
        want = "a positive integer" if default >= 1 else "an integer"
    elif isinstance(default, float):
        ok = _is_int(value) or isinstance(value, float)
        want = "a number"
        if ok:
            if not is_finite_number(value):  # nan or inf would turn every score of the proxy into nan
                raise ValueError(f"{where} must be a finite number; got {value!r}")
            value = float(value)
    elif default is None:
        ok = value is None or (_is_int(value) and value >= 1)
        want = "null or a positive integer"
    elif isinstance(default, str):
        ok = isinstance(value, str)
        want = "a string"
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        want = "a list"
    elif isinstance(default, Mapping):
        ok = isinstance(value, Mapping)
        want = "a mapping"
    else:
        ok, want = True, ""
    if not ok:
        raise ValueError(f"{where} must be {want}; got {value!r}")
    return value
