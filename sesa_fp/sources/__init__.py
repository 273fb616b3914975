"""Sources: lazy iterators of records (and dead letters for unreadable input)."""

from typing import TYPE_CHECKING

from sesa_fp.sources.files import JsonlSource, read_jsonl

if TYPE_CHECKING:
    from sesa_fp.sources.search import SearchSource, es_source
    from sesa_fp.sources.sql import SqlSource, sql_source

__all__ = ["JsonlSource", "SearchSource", "SqlSource", "es_source", "read_jsonl", "sql_source"]

_LAZY = {"SearchSource": "search", "es_source": "search", "SqlSource": "sql",
         "sql_source": "sql"}
#: submodules this package imported eagerly before: still reachable as attributes
_SUBMODULES = ("search", "sql", "sql_values")


def __getattr__(name: str) -> object:
    # The search and SQL sources (and the retry library under them) load on first use, so
    # importing `read_jsonl` does not pay for them.
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f"sesa_fp.sources.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"sesa_fp.sources.{name}")
    raise AttributeError(f"module 'sesa_fp.sources' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
