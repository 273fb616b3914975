"""Replay a committed prefix: every part is checked against the manifest before it is read."""

from __future__ import annotations

import gzip as _gzip
import hashlib
import io
from collections.abc import Iterator
from typing import Any

import fsspec

from sesa_fp.codec import loads
from sesa_fp.errors import CorruptPartError, ManifestError
from sesa_fp.imports import require
from sesa_fp.storage.location import join_path
from sesa_fp.storage.manifest import MANIFEST_NAME, Manifest, parse_manifest

__all__ = ["StorageSource", "from_storage", "read_manifest"]


def read_manifest(uri: str, storage_options: dict[str, Any] | None = None) -> Manifest:
    """The manifest of a committed prefix; `ManifestError` if there is none."""
    fs, root = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    path = join_path(root, MANIFEST_NAME)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError as exc:
        raise ManifestError(
            f"no manifest at {uri}: the prefix is not committed (missing {MANIFEST_NAME})"
        ) from exc
    return parse_manifest(data, uri)


class StorageSource:
    """The records of a committed prefix, part by part; iterate it to read."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None) -> None:
        self.uri = uri
        self.storage_options = storage_options or {}

    def __repr__(self) -> str:
        from sesa_fp.secrets import mask_mapping, mask_url

        so = (f", storage_options={mask_mapping(self.storage_options)!r}"
              if self.storage_options else "")
        return f"from_storage({mask_url(self.uri)!r}{so})"

    def manifest(self) -> Manifest:
        """The prefix's manifest."""
        return read_manifest(self.uri, self.storage_options)

    def __iter__(self) -> Iterator[Any]:
        manifest = self.manifest()
        fs, root = fsspec.core.url_to_fs(self.uri, **self.storage_options)
        for part in manifest.parts:
            path = join_path(root, part.path)
            try:
                data = fs.cat_file(path)
            except FileNotFoundError as exc:
                raise CorruptPartError(
                    f"part {part.path} listed in the manifest of {self.uri} is missing"
                ) from exc
            if len(data) != part.bytes or hashlib.sha256(data).hexdigest() != part.sha256:
                raise CorruptPartError(
                    f"part {part.path} of {self.uri} fails its checksum: manifest says "
                    f"{part.bytes} bytes sha256 {part.sha256[:12]}..., found {len(data)} bytes "
                    f"sha256 {hashlib.sha256(data).hexdigest()[:12]}..."
                )
            raw: Any = io.BytesIO(data)
            if manifest.compression == "gzip":
                raw = io.BufferedReader(_gzip.GzipFile(fileobj=raw), 1 << 20)
            elif manifest.compression == "zstd":
                zstd = require("zstandard", "zstd")
                raw = io.BufferedReader(zstd.ZstdDecompressor().stream_reader(raw), 1 << 20)
            n = 0
            for line in raw:
                n += 1
                yield loads(line)
            if n != part.records:
                raise CorruptPartError(
                    f"part {part.path} of {self.uri} holds {n} records, "
                    f"manifest says {part.records}"
                )


def from_storage(uri: str, *, storage_options: dict[str, Any] | None = None) -> StorageSource:
    """Replay the records of a committed staging prefix, verifying every part's sha256.

    >>> from_storage("memory://nowhere/").manifest()
    Traceback (most recent call last):
    sesa_fp.errors.ManifestError: no manifest at memory://nowhere/: the prefix is not ...
    """
    return StorageSource(uri, storage_options)
