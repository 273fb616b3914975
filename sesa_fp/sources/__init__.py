"""Sources: lazy iterators of records (and dead letters for unreadable input)."""

from typing import TYPE_CHECKING

from sesa_fp.lazy import lazy_attribute as _lazy_attribute
from sesa_fp.lazy import lazy_dir as _lazy_dir
from sesa_fp.sources.files import JsonlSource, read_jsonl

if TYPE_CHECKING:
    from sesa_fp.sources.search import SearchSource, es_source
    from sesa_fp.sources.sql import SqlSource, sql_source

__all__ = ["JsonlSource", "SearchSource", "SqlSource", "es_source", "read_jsonl", "sql_source"]

_LAZY = {"SearchSource": "sesa_fp.sources.search", "es_source": "sesa_fp.sources.search",
         "SqlSource": "sesa_fp.sources.sql", "sql_source": "sesa_fp.sources.sql"}
#: submodules this package imported eagerly before: still reachable as attributes
_SUBMODULES = ("search", "sql", "sql_values")


def __getattr__(name: str) -> object:
    # The search and SQL sources (and the retry library under them) load on first use, so
    # importing `read_jsonl` does not pay for them.
    return _lazy_attribute(__name__, name, _LAZY, _SUBMODULES)


def __dir__() -> list[str]:
    return _lazy_dir(globals(), __all__, _SUBMODULES)
