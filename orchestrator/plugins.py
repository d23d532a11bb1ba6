"""A user's own proxies and spaces: modules named in ``plugins=[...]`` register them.

A plugin is any importable module that calls ``proxies.register`` (or
``spaces.register_space``) with its defaults, exactly as the built-ins do; nothing in the
repository changes. The driver imports plugins before it composes the config (so
``proxy.<name>.<setting>=...`` overrides work for them), checks them before Ray starts,
and ships their source to the Ray workers with the job's runtime environment (Ray's
``py_modules``), where each scorer imports them again.
"""
from __future__ import annotations

import importlib
import site
import sys
import sysconfig
from pathlib import Path
from typing import Iterable, Sequence

from orchestrator.errors import SweepError

#: plugin module -> (proxies, spaces) it registered, recorded at its first import
_REGISTERED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _registries() -> tuple[dict, dict]:
    from proxies import PROXIES
    from spaces import SPACES

    return PROXIES, SPACES


def load_plugins(names: Iterable[str]) -> None:
    """Import every plugin module; SweepError with one line if one does not import,
    registers nothing, or takes a name already registered."""
    proxies, spaces = _registries()
    for name in names:
        if name in _REGISTERED:
            continue
        before_p, before_s = set(proxies), set(spaces)
        already = name in sys.modules
        try:
            importlib.import_module(name)
        except (KeyError, ValueError) as exc:  # the registries' own complaints
            raise SweepError(f"plugin {name}: {exc.args[0] if exc.args else exc}") from None
        except Exception as exc:
            detail = " ".join(str(exc).split())
            raise SweepError(f"plugin {name} does not import: {type(exc).__name__}: {detail}") from None
        new_p = tuple(sorted(set(proxies) - before_p))
        new_s = tuple(sorted(set(spaces) - before_s))
        if already and not (new_p or new_s):  # imported earlier by someone else: attribute by module
            new_p = tuple(sorted(n for n, p in proxies.items() if _within(p.module, name)))
            new_s = tuple(sorted(n for n, s in spaces.items() if _within(s.module, name)))
        if not (new_p or new_s):
            raise SweepError(f"plugin {name} registers no proxy and no space: decorate its functions with "
                             "proxies.register (or its classes with spaces.register_space)")
        _REGISTERED[name] = (new_p, new_s)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def plugin_from_overrides(overrides: Sequence[str]) -> list[str]:
    """The modules a command line names in ``plugins=[...]`` (or ``+plugins=``), found
    before Hydra composes the config; unparsable overrides are left for Hydra to report."""
    wanted = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] == "plugins" and "=" in o]
    if not wanted:
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    names: list[str] = []
    try:
        for override in OverridesParser.create().parse_overrides(wanted):
            value = override.value()
            values = value if isinstance(value, list) else [value]
            names.extend(str(v) for v in values if v)
    except Exception:
        return []
    return names


def shipped_paths(names: Iterable[str]) -> list[str]:
    """Source paths to put in Ray's ``py_modules`` for these plugins: each one's top-level
    package folder (or single file). Modules installed in site-packages are expected to be
    installed on every node, as the project's own dependencies are, and are not shipped."""
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]}
    paths: list[str] = []
    for name in names:
        top = importlib.import_module(name.split(".")[0])
        source = Path(top.__path__[0] if hasattr(top, "__path__") else top.__file__).resolve()  # type: ignore[arg-type]
        if any(str(source).startswith(prefix + "/") for prefix in installed):
            continue
        if str(source) not in paths:
            paths.append(str(source))
    return paths
