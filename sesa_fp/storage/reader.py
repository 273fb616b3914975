"""Replay a committed prefix: every part is checked against the manifest before it is read."""

from __future__ import annotations

import gzip as _gzip
import hashlib
import io
from collections.abc import Iterator
from typing import Any

from returns.result import Failure

from sesa_fp.codec import loads
from sesa_fp.errors import ConfigError, CorruptPartError, ManifestError
from sesa_fp.imports import require
from sesa_fp.marks import PartMark
from sesa_fp.result import DeadLetter
from sesa_fp.storage.location import join_path
from sesa_fp.storage.manifest import MANIFEST_NAME, Manifest, PartInfo, parse_manifest
from sesa_fp.storage.writer import DEAD_LETTER_KEY

__all__ = ["StorageSource", "from_storage", "read_manifest", "read_part"]


def read_manifest(uri: str, storage_options: dict[str, Any] | None = None) -> Manifest:
    """The manifest of a committed prefix; `ManifestError` if there is none."""
    import fsspec

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
    """The records of a committed prefix, part by part; iterate it to read.

    ``position`` is ``{"part", "record"}`` (the part's index and the records of it already
    yielded); ``start=`` / `resume` continue from there. Dead letters a journal-mode staging
    writer kept in a part come back as ``Failure(DeadLetter)``, in their place.
    """

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None,
                 start: dict[str, Any] | None = None) -> None:
        if start is not None and not (isinstance(start, dict) and isinstance(
                start.get("part"), int) and isinstance(start.get("record"), int)):
            raise ConfigError(f"from_storage: start={start!r} is not a position of this "
                              "source (pass a saved .position back)")
        self.uri = uri
        self.storage_options = storage_options or {}
        self.start = start
        # set by a resumable run (sesa_fp.resume): parts to leave out (already loaded), and
        # whether to send a PartMark after each part, so the ledger records it when loaded
        self.skip: set[str] = set()
        self.marks = False
        self.marks_sent = 0
        self._part: int | None = None
        self._record = 0

    def __repr__(self) -> str:
        from sesa_fp.secrets import mask_mapping, mask_url

        so = (f", storage_options={mask_mapping(self.storage_options)!r}"
              if self.storage_options else "")
        st = "" if self.start is None else f", start={self.start!r}"
        return f"from_storage({mask_url(self.uri)!r}{so}{st})"

    def manifest(self) -> Manifest:
        """The prefix's manifest."""
        return read_manifest(self.uri, self.storage_options)

    @property
    def position(self) -> dict[str, int] | None:
        """``{"part", "record"}`` right after the last record yielded."""
        if self._part is None:
            return self.start
        return {"part": self._part, "record": self._record}

    def resume(self, start: dict[str, Any]) -> StorageSource:
        """This source, starting right after ``start`` (a saved `position`)."""
        return StorageSource(self.uri, self.storage_options, start)

    def __iter__(self) -> Iterator[Any]:
        import fsspec

        manifest = self.manifest()
        fs, root = fsspec.core.url_to_fs(self.uri, **self.storage_options)
        first, skip = 0, 0
        if self.start is not None:
            first, skip = self.start["part"], self.start["record"]
        self._part, self._record, self.marks_sent = None, 0, 0
        for index, part in enumerate(manifest.parts):
            if index < first:
                continue
            if part.path in self.skip:
                continue
            self._part, self._record = index, 0
            # dead letters a staging writer kept are the killed run's to replay, not a
            # replay's: they were dead-lettered when the records were read
            it = read_part(fs, root, part, manifest.compression, self.uri,
                           dead_letters=False)
            for item in it:
                self._record += 1
                if self._record <= skip:
                    continue
                yield item
            skip = 0
            if self.marks:
                self.marks_sent += 1
                yield Failure(PartMark(path=part.path, index=index,
                                       records=part.records - part.dead_letters,
                                       sha256=part.sha256))


def read_part(fs: Any, root: str, part: PartInfo, compression: str | None,
              where: str, *, dead_letters: bool = True) -> Iterator[Any]:
    """The records of one part, checked against its size and sha256 first; a staged dead
    letter comes back as ``Failure(DeadLetter)`` (left out with ``dead_letters=False``)."""
    path = join_path(root, part.path)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError as exc:
        raise CorruptPartError(
            f"part {part.path} listed in the manifest of {where} is missing"
        ) from exc
    if len(data) != part.bytes or hashlib.sha256(data).hexdigest() != part.sha256:
        raise CorruptPartError(
            f"part {part.path} of {where} fails its checksum: manifest says "
            f"{part.bytes} bytes sha256 {part.sha256[:12]}..., found {len(data)} bytes "
            f"sha256 {hashlib.sha256(data).hexdigest()[:12]}..."
        )
    raw: Any = io.BytesIO(data)
    if compression == "gzip":
        raw = io.BufferedReader(_gzip.GzipFile(fileobj=raw), 1 << 20)
    elif compression == "zstd":
        zstd = require("zstandard", "zstd")
        raw = io.BufferedReader(zstd.ZstdDecompressor().stream_reader(raw), 1 << 20)
    n = 0
    for line in raw:
        n += 1
        rec = loads(line)
        if type(rec) is dict and len(rec) == 1 and DEAD_LETTER_KEY in rec:
            if dead_letters:
                yield Failure(_dead_letter(rec[DEAD_LETTER_KEY]))
            continue
        yield rec
    if n != part.records:
        raise CorruptPartError(
            f"part {part.path} of {where} holds {n} records, "
            f"manifest says {part.records}"
        )


def _dead_letter(body: Any) -> Any:
    if isinstance(body, dict):
        try:
            return DeadLetter(**body)
        except TypeError:
            pass
    return body


def from_storage(uri: str, *, storage_options: dict[str, Any] | None = None,
                 start: dict[str, Any] | None = None) -> StorageSource:
    """Replay the records of a committed staging prefix, verifying every part's sha256.

    >>> from_storage("memory://nowhere/").manifest()
    Traceback (most recent call last):
    sesa_fp.errors.ManifestError: no manifest at memory://nowhere/: the prefix is not ...
    """
    return StorageSource(uri, storage_options, start)
