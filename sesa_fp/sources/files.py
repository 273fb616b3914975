"""`read_jsonl`: records from JSON-lines files on any fsspec filesystem, compression inferred."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

from returns.result import Failure

from sesa_fp import codec
from sesa_fp.errors import ConfigError, StorageError
from sesa_fp.result import DeadLetter
from sesa_fp.secrets import mask_mapping, mask_value, redact, reveal_tree, secret_strings

__all__ = ["JsonlSource", "read_jsonl"]


class JsonlSource:
    """Iterate to read; a bad line becomes a dead letter naming the file and line number.

    ``position`` is ``{"file", "offset", "line"}`` right after the last line read (the byte
    offset in the decompressed file); ``start=`` / ``resume`` continue from there, files
    before it in the listing skipped."""

    def __init__(self, urlpath: str | list[str], compression: str | None,
                 storage_options: dict[str, Any], start: dict[str, Any] | None = None) -> None:
        if start is not None and not (isinstance(start, dict) and isinstance(
                start.get("file"), str) and isinstance(start.get("offset"), int)):
            raise ConfigError(f"read_jsonl: start={start!r} is not a position of this source "
                              "(pass a saved .position back)")
        self.urlpath = urlpath
        self.compression = compression
        self.storage_options = storage_options
        self.start = start
        self._file: Any = None  # the open file, whose tell() is the position
        self._path: str | None = None
        self._offset = 0
        self._lineno = 0
        # What may appear in messages built by fsspec from the path or the options.
        self._secrets = secret_strings(urlpath, storage_options)

    def __repr__(self) -> str:
        extra = "" if self.compression == "infer" else f", compression={self.compression!r}"
        if self.storage_options:
            extra += f", storage_options={mask_mapping(self.storage_options)!r}"
        if self.start is not None:
            extra += f", start={self.start!r}"
        return f"read_jsonl({mask_value(self.urlpath)!r}{extra})"

    @property
    def position(self) -> dict[str, Any] | None:
        """Where the next line starts: ``{"file", "offset", "line"}`` (None before any)."""
        if self._path is None:
            return self.start
        f = self._file
        offset = f.tell() if f is not None else self._offset
        return {"file": self._path, "offset": offset, "line": self._lineno}

    def resume(self, start: dict[str, Any]) -> JsonlSource:
        """This source, starting right after ``start`` (a saved `position`)."""
        return JsonlSource(self.urlpath, self.compression, self.storage_options, start)

    def _show(self, fs: Any, path: str) -> str:
        """A file's name for messages and dead letters, credentials masked."""
        if not self._secrets:
            return path
        return redact(str(mask_value(fs.unstrip_protocol(path))), self._secrets)

    def _error(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(redact(f"read_jsonl: {what}: {type(exc).__name__}: {exc}",
                                   self._secrets))

    def __iter__(self) -> Iterator[Any]:
        import fsspec

        try:
            files = fsspec.open_files(self.urlpath, mode="rb", compression=self.compression,
                                      **reveal_tree(self.storage_options))
        except (OSError, ValueError) as exc:
            raise self._error(f"cannot list {mask_value(self.urlpath)!r}", exc) from exc
        if not files:
            raise StorageError(f"read_jsonl: no file matches {mask_value(self.urlpath)!r}")
        start = self.start
        self._path, self._file, self._offset, self._lineno = None, None, 0, 0
        if start is not None:
            paths = [of.path for of in files]
            if start["file"] not in paths:
                raise StorageError(f"read_jsonl: cannot resume at {start['file']!r}: no "
                                   f"longer among the files of {mask_value(self.urlpath)!r}")
            files = files[paths.index(start["file"]):]
        for of in files:
            shown = self._show(of.fs, of.path)
            try:
                f = of.open()
            except OSError as exc:
                raise self._error(f"cannot open {shown}", exc) from exc
            try:
                with f:
                    self._lineno = 0
                    if start is not None:
                        f.seek(start["offset"])
                        self._lineno = int(start.get("line") or 0)
                        start = None
                    self._path, self._file = of.path, f
                    yield from self._lines(f, shown)
                    self._offset, self._file = f.tell(), None
            except (OSError, EOFError, zlib.error) as exc:
                raise self._error(f"cannot read {shown}", exc) from exc
            finally:
                self._file = None

    def _lines(self, f: Any, path: str) -> Iterator[Any]:
        loads, JSONDecodeError = codec.loads, codec.JSONDecodeError
        lineno = self._lineno
        for line in f:
            lineno += 1
            self._lineno = lineno
            try:
                rec = loads(line)
            except JSONDecodeError as exc:
                if not line.strip():
                    continue
                yield self._bad(path, lineno, line, exc)
                continue
            if type(rec) is not dict:
                kind = type(rec).__name__
                yield self._bad(path, lineno, line,
                                ValueError(f"expected a JSON object, got {kind}"))
                continue
            yield rec

    def _bad(self, path: str, lineno: int, line: bytes, exc: Exception) -> Any:
        record = {"file": path, "line": lineno, "raw": line[:4096].decode("utf-8", "replace")}
        return Failure(DeadLetter.from_exception(record, exc, stage=repr(self)))


def read_jsonl(
    urlpath: str | list[str],
    *,
    compression: str | None = "infer",
    storage_options: dict[str, Any] | None = None,
    start: dict[str, Any] | None = None,
) -> JsonlSource:
    """Records from JSONL files: a path, a glob, a list, any fsspec URL; ``.gz`` etc. inferred.

    >>> import fsspec
    >>> fsspec.filesystem("memory").pipe("/doc/in.jsonl", b'{"a": 1}\\n{oops\\n\\n{"a": 2}\\n')
    >>> items = list(read_jsonl("memory://doc/in.jsonl"))
    >>> items[0], items[1].failure().record["line"], items[2]
    ({'a': 1}, 2, {'a': 2})
    """
    return JsonlSource(urlpath, compression, storage_options or {}, start)
