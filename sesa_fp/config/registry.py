"""Plugins by name: built-ins first, then the entry-point groups of installed packages.

Like fsspec's ``known_implementations``: a known type whose client is not installed says
which extra to install; an unknown one lists the known names.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import attrs

from sesa_fp.errors import ConfigError

__all__ = ["GROUPS", "Plugin", "known_names", "register", "resolve"]

GROUPS = {
    "extractor": "sesa.extractors",
    "loader": "sesa.loaders",
    "transform": "sesa.transforms",
    "storage": "sesa.storage",
}


@attrs.frozen
class Plugin:
    """A built-in: its options class (attrs, without ``type``) and its build function."""

    name: str
    spec: type | None
    build: Callable[..., Any]
    requires: str | None = None
    extra: str | None = None


_BUILTINS: dict[str, dict[str, Plugin]] = {kind: {} for kind in GROUPS}


def register(kind: str, plugin: Plugin) -> Plugin:
    """Add a built-in plugin of ``kind`` (extractor, loader, transform, storage)."""
    _BUILTINS[kind][plugin.name] = plugin
    return plugin


def _entry_points(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def known_names(kind: str) -> list[str]:
    """Every name usable as ``type:`` for ``kind``."""
    return sorted(set(_BUILTINS[kind]) | set(_entry_points(kind)))


def resolve(kind: str, name: Any, where: str, key: str = "type") -> Plugin | Any:
    """The built-in `Plugin`, or the object a third-party entry point names."""
    where = f"{where}.{key}"
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected a name, got {name!r}; "
                          f"known: {', '.join(known_names(kind))}")
    plugin = _BUILTINS[kind].get(name)
    if plugin is not None:
        if plugin.requires and importlib.util.find_spec(plugin.requires) is None:
            raise ConfigError(
                f"{where}: {name!r} needs the {plugin.requires!r} client: "
                f"pip install 'sesa_fp[{plugin.extra}]'"
            )
        return plugin
    ep = _entry_points(kind).get(name)
    if ep is None:
        raise ConfigError(f"{where}: unknown {kind} {key} {name!r}; "
                          f"known: {', '.join(known_names(kind))}")
    try:
        return ep.load()
    except Exception as exc:
        raise ConfigError(f"{where}: plugin {name!r} ({ep.value}) failed to load: "
                          f"{type(exc).__name__}: {exc}") from exc
