"""`read_jsonl`: records from JSON-lines files on any fsspec filesystem, compression inferred."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import fsspec
import orjson
from returns.result import Failure

from sesa_fp.errors import StorageError
from sesa_fp.result import DeadLetter

__all__ = ["JsonlSource", "read_jsonl"]


class JsonlSource:
    """Iterate to read; a bad line becomes a dead letter naming the file and line number."""

    def __init__(self, urlpath: str | list[str], compression: str | None,
                 storage_options: dict[str, Any]) -> None:
        self.urlpath = urlpath
        self.compression = compression
        self.storage_options = storage_options

    def __repr__(self) -> str:
        return f"read_jsonl({self.urlpath!r})"

    def __iter__(self) -> Iterator[Any]:
        files = fsspec.open_files(self.urlpath, mode="rb", compression=self.compression,
                                  **self.storage_options)
        if not files:
            raise StorageError(f"read_jsonl: no file matches {self.urlpath!r}")
        for of in files:
            try:
                f = of.open()
            except OSError as exc:
                raise StorageError(f"read_jsonl: cannot open {of.path}: {exc}") from exc
            try:
                with f:
                    yield from self._lines(f, of.path)
            except (OSError, EOFError, zlib.error) as exc:
                raise StorageError(f"read_jsonl: cannot read {of.path}: "
                                   f"{type(exc).__name__}: {exc}") from exc

    def _lines(self, f: Any, path: str) -> Iterator[Any]:
        loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
        lineno = 0
        for line in f:
            lineno += 1
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
) -> JsonlSource:
    """Records from JSONL files: a path, a glob, a list, any fsspec URL; ``.gz`` etc. inferred.

    >>> import fsspec
    >>> fsspec.filesystem("memory").pipe("/doc/in.jsonl", b'{"a": 1}\\n{oops\\n\\n{"a": 2}\\n')
    >>> items = list(read_jsonl("memory://doc/in.jsonl"))
    >>> items[0], items[1].failure().record["line"], items[2]
    ({'a': 1}, 2, {'a': 2})
    """
    return JsonlSource(urlpath, compression, storage_options or {})
