"""Sources: lazy iterators of records (and dead letters for unreadable input)."""

from sesa_fp.sources.files import JsonlSource, read_jsonl
from sesa_fp.sources.search import SearchSource, es_source

__all__ = ["JsonlSource", "SearchSource", "es_source", "read_jsonl"]
