"""Sources: lazy iterators of records (and dead letters for unreadable input)."""

from sesa_fp.sources.files import JsonlSource, read_jsonl
from sesa_fp.sources.search import SearchSource, es_source
from sesa_fp.sources.sql import SqlSource, sql_source

__all__ = ["JsonlSource", "SearchSource", "SqlSource", "es_source", "read_jsonl", "sql_source"]
