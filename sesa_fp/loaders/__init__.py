"""Loaders: stages that write records to a target and yield one result per input record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sesa_fp.loaders.files import FilesLoader, load_files

if TYPE_CHECKING:
    from sesa_fp.loaders.search import SearchLoader, load_es

__all__ = ["FilesLoader", "SearchLoader", "load_es", "load_files"]


def __getattr__(name: str) -> object:
    # The search loader (and the retry library under it) loads on first use, so importing
    # `load_files` does not pay for it.
    if name in ("SearchLoader", "load_es"):
        from sesa_fp.loaders import search

        return getattr(search, name)
    raise AttributeError(f"module 'sesa_fp.loaders' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
