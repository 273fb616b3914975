"""Staging on any fsspec filesystem: JSONL / JSONL.GZ parts plus a manifest written last."""

from sesa_fp.storage.manifest import MANIFEST_NAME, Manifest, PartInfo
from sesa_fp.storage.reader import StorageSource, from_storage, read_manifest
from sesa_fp.storage.writer import PartsWriter, dlq_sink, to_storage

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "PartInfo",
    "PartsWriter",
    "StorageSource",
    "dlq_sink",
    "from_storage",
    "read_manifest",
    "to_storage",
]
