"""Loaders: stages that write records to a target and yield one result per input record."""

from sesa_fp.loaders.files import FilesLoader, load_files

__all__ = ["FilesLoader", "load_files"]
