"""Sources: lazy iterators of records (and dead letters for unreadable input)."""

from sesa_fp.sources.files import JsonlSource, read_jsonl

__all__ = ["JsonlSource", "read_jsonl"]
