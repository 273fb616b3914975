"""Loaders: stages that write records to a target and yield one result per input record."""

from sesa_fp.loaders.files import FilesLoader, load_files
from sesa_fp.loaders.search import SearchLoader, load_es

__all__ = ["FilesLoader", "SearchLoader", "load_es", "load_files"]
