"""Rolling JSONL[.GZ] parts on any fsspec filesystem, committed by a manifest written last."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import zlib
from collections.abc import Callable
from typing import Any

import fsspec

from sesa_fp.codec import dumps_line, dumps_line_lenient
from sesa_fp.errors import ConfigError, StorageError
from sesa_fp.result import DeadLetter, current_run_id
from sesa_fp.stats import StageStats
from sesa_fp.storage.manifest import MANIFEST_NAME, Manifest, PartInfo

__all__ = ["PartsWriter", "dlq_sink", "to_storage"]

_FLUSH_BYTES = 1 << 20


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


class PartsWriter:
    """Writes records as ``part-00000.jsonl[.gz]`` files under a prefix; `commit` writes the
    manifest last (the prefix is valid only then), `abort` removes the parts it wrote.

    Parts close at about ``part_max_mb`` of file size. One writer serves one stream at a time.
    ``run_id`` / ``stamp_time=False`` make the manifest deterministic (same input, same bytes).
    """

    def __init__(
        self,
        uri: str,
        *,
        gzip: bool = True,
        part_max_mb: float = 64,
        kind: str = "staging",
        encode: Callable[[Any], bytes] = dumps_line,
        commit_empty: bool = True,
        per_run: bool = False,
        job: str | None = None,
        storage_options: dict[str, Any] | None = None,
        run_id: str | None = None,
        stamp_time: bool = True,
    ) -> None:
        if not isinstance(part_max_mb, (int, float)) or part_max_mb <= 0:
            raise ConfigError(f"part_max_mb must be a positive number, got {part_max_mb!r}")
        self.uri = uri
        self.gzip = gzip
        self.part_max_bytes = max(1, int(part_max_mb * 1024 * 1024))
        self.kind = kind
        self.encode = encode
        self.commit_empty = commit_empty
        self.per_run = per_run
        self.job = job
        self.storage_options = storage_options or {}
        self.run_id = run_id
        self.stamp_time = stamp_time
        self.stats = StageStats(name=f"{kind}:{uri}", kind=kind)
        self.last_manifest: Manifest | None = None
        self.last_uri: str | None = None
        self._flush_at = min(_FLUSH_BYTES, max(1, self.part_max_bytes // 4))
        self._fs: Any = None
        self._reset()

    def __repr__(self) -> str:
        fn = "dlq_sink" if self.kind == "dlq" else "to_storage"
        return f"{fn}({self.uri!r}, gzip={self.gzip}, part_max_mb={self.part_max_bytes / 2**20:g})"

    def _reset(self) -> None:
        self._root: str | None = None
        self._parts: list[PartInfo] = []
        self._file: Any = None
        self._buf: list[bytes] = []
        self._buf_len = 0
        self._part_records = 0
        self._part_bytes = 0
        self._buf_records = 0

    # -- opening ---------------------------------------------------------------------------
    def _open(self) -> None:
        fs, root = fsspec.core.url_to_fs(self.uri, **self.storage_options)
        if self.per_run:
            root = _join(root, f"run_id={current_run_id() or 'adhoc'}")
        self._fs, self._root = fs, root
        manifest_path = _join(root, MANIFEST_NAME)
        try:
            if fs.exists(manifest_path):
                # Replacing a committed prefix: uncommit it first, then clear its parts (by
                # name, so a garbled manifest or an aborted run's leftovers go too).
                fs.rm_file(manifest_path)
                for old in fs.glob(_join(root, "part-*.jsonl*")):
                    fs.rm_file(old)
            fs.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot prepare {self.kind} prefix {self.uri}: {exc}") from exc

    def _start_part(self) -> None:
        assert self._root is not None
        name = f"part-{len(self._parts):05d}.jsonl" + (".gz" if self.gzip else "")
        self._part_name = name
        self._file = self._fs.open(_join(self._root, name), "wb")
        self._sha = hashlib.sha256()
        self._zip = zlib.compressobj(6, zlib.DEFLATED, 31) if self.gzip else None
        self._part_records = 0
        self._part_bytes = 0

    def _emit(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self._sha.update(data)
            self._part_bytes += len(data)

    def _flush(self) -> None:
        if not self._buf:
            return
        if self._file is not None and self._part_bytes + self._buf_len > self.part_max_bytes \
                and self._part_records:
            self._end_part()
        if self._file is None:
            self._start_part()
        data = b"".join(self._buf)
        self._emit(self._zip.compress(data) if self._zip is not None else data)
        self._part_records += self._buf_records
        self._buf.clear()
        self._buf_len = 0
        self._buf_records = 0

    def _end_part(self) -> None:
        if self._zip is not None:
            self._emit(self._zip.flush())
        self._file.close()
        self._file = None
        self._parts.append(
            PartInfo(self._part_name, self._part_records, self._part_bytes, self._sha.hexdigest())
        )

    # -- the Writer protocol -----------------------------------------------------------------
    def write(self, record: Any) -> None:
        """Append one record (raises ``TypeError`` if it cannot be encoded; nothing is written)."""
        line = self.encode(record)
        if self._root is None:
            self._open()
        self._buf.append(line)
        self._buf_len += len(line)
        self._buf_records += 1
        if self._buf_len >= self._flush_at:
            try:
                self._flush()
            except OSError as exc:
                raise StorageError(f"writing {self.kind} part under {self.uri}: {exc}") from exc

    def commit(self) -> None:
        """Close the last part and write the manifest; the prefix is valid from now on."""
        try:
            if self._root is None:
                if not self.commit_empty:
                    self._reset()
                    return
                self._open()
            self._flush()
            if self._file is not None:
                self._end_part()
            manifest = Manifest(
                kind=self.kind,
                job=self.job,
                run_id=self.run_id or current_run_id(),
                created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
                if self.stamp_time else "",
                compression="gzip" if self.gzip else None,
                parts=tuple(self._parts),
            )
            self._write_manifest(manifest)
        except OSError as exc:
            self.abort()
            raise StorageError(f"committing {self.kind} prefix {self.uri}: {exc}") from exc
        self.stats.add(n_in=manifest.records, n_out=manifest.records, bytes=manifest.bytes)
        self.last_manifest = manifest
        self.last_uri = self._url(self._root)
        self._reset()

    def _url(self, root: str | None) -> str:
        if root is None:
            return self.uri
        return str(self._fs.unstrip_protocol(root))

    def _write_manifest(self, manifest: Manifest) -> None:
        assert self._root is not None
        path = _join(self._root, MANIFEST_NAME)
        data = manifest.to_json()
        if "file" in self._fs.protocol or "local" in self._fs.protocol:
            tmp = path + ".tmp"
            self._fs.pipe_file(tmp, data)
            self._fs.mv(tmp, path)
        else:
            self._fs.pipe_file(path, data)

    def abort(self) -> None:
        """Forget everything written by this stream: close and remove its parts, no manifest."""
        root, parts = self._root, list(self._parts)
        if self._file is not None:
            parts.append(PartInfo(self._part_name, 0, 0, ""))
            with contextlib.suppress(Exception):
                self._file.close()
        if root is not None:
            for part in parts:  # best effort: without a manifest the parts are not a commit
                with contextlib.suppress(Exception):
                    self._fs.rm_file(_join(root, part.path))
        self._reset()

    def describe(self) -> dict[str, Any]:
        """Where the last commit went and what it holds (for the run report)."""
        m = self.last_manifest
        return {
            "kind": self.kind,
            "uri": self.last_uri or self.uri,
            "records": m.records if m else 0,
            "bytes": m.bytes if m else 0,
            "parts": len(m.parts) if m else 0,
        }


def to_storage(
    uri: str,
    *,
    gzip: bool = True,
    part_max_mb: float = 64,
    job: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> PartsWriter:
    """A staging writer for `tee`: rolling parts under ``uri`` and a manifest on commit.

    >>> from sesa_fp import pipe, run, tee
    >>> from sesa_fp.storage import from_storage
    >>> w = to_storage("memory://doc/staging/", gzip=True)
    >>> _ = run(pipe([{"a": 1}, {"a": 2}], tee(w)), progress=False)
    >>> list(from_storage("memory://doc/staging/"))
    [{'a': 1}, {'a': 2}]
    """
    return PartsWriter(uri, gzip=gzip, part_max_mb=part_max_mb, job=job,
                       storage_options=storage_options)


def _encode_dead_letter(item: Any) -> bytes:
    return dumps_line_lenient(item.to_dict() if isinstance(item, DeadLetter) else item)


def dlq_sink(
    uri: str,
    *,
    gzip: bool = True,
    part_max_mb: float = 64,
    per_run: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> PartsWriter:
    """A dead-letter writer for `partition`: parts under ``uri/run_id=<run>/`` plus a manifest,
    nothing at all when a run has no dead letters. Unencodable values are kept as their repr.

    >>> from sesa_fp import pipe, run, stage, partition
    >>> from sesa_fp.storage import from_storage
    >>> _ = run(pipe([{"x": "a"}], stage(lambda r: int(r["x"])),
    ...              partition(dlq_sink("memory://doc/dlq/", per_run=False))), progress=False)
    >>> [d["error_type"] for d in from_storage("memory://doc/dlq/")]
    ['ValueError']
    """
    return PartsWriter(uri, gzip=gzip, part_max_mb=part_max_mb, kind="dlq",
                       encode=_encode_dead_letter, commit_empty=False, per_run=per_run,
                       storage_options=storage_options)
