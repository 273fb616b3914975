"""Loaders: stages that write records to a target and yield one result per input record."""

from typing import TYPE_CHECKING

from sesa_fp.loaders.files import FilesLoader, load_files

if TYPE_CHECKING:
    from sesa_fp.loaders.search import SearchLoader, load_es

__all__ = ["FilesLoader", "SearchLoader", "load_es", "load_files"]

_LAZY = {"SearchLoader": "search", "load_es": "search"}
#: submodules this package imported eagerly before: still reachable as attributes
_SUBMODULES = ("search",)


def __getattr__(name: str) -> object:
    # The search loader (and the retry library under it) loads on first use, so importing
    # `load_files` does not pay for it.
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f"sesa_fp.loaders.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"sesa_fp.loaders.{name}")
    raise AttributeError(f"module 'sesa_fp.loaders' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
