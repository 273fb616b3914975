"""Loaders: stages that write records to a target and yield one result per input record."""

from typing import TYPE_CHECKING

from sesa_fp.lazy import lazy_attribute as _lazy_attribute
from sesa_fp.lazy import lazy_dir as _lazy_dir
from sesa_fp.loaders.files import FilesLoader, load_files

if TYPE_CHECKING:
    from sesa_fp.loaders.search import SearchLoader, load_es

__all__ = ["FilesLoader", "SearchLoader", "load_es", "load_files"]

_LAZY = {"SearchLoader": "sesa_fp.loaders.search", "load_es": "sesa_fp.loaders.search"}
#: submodules this package imported eagerly before: still reachable as attributes
_SUBMODULES = ("search",)


def __getattr__(name: str) -> object:
    # The search loader (and the retry library under it) loads on first use, so importing
    # `load_files` does not pay for it.
    return _lazy_attribute(__name__, name, _LAZY, _SUBMODULES)


def __dir__() -> list[str]:
    return _lazy_dir(globals(), __all__, _SUBMODULES)
