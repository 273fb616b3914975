"""Rolling JSONL[.GZ] parts on any fsspec filesystem, committed by a manifest written last."""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import zlib
from collections.abc import Callable
from secrets import token_hex
from typing import Any

import attrs
import orjson

from sesa_fp.codec import dumps_line, dumps_line_lenient
from sesa_fp.errors import ConfigError, StorageError
from sesa_fp.faults import fault_point
from sesa_fp.imports import require
from sesa_fp.logs import log_event
from sesa_fp.result import DeadLetter, current_run_id
from sesa_fp.secrets import mask_mapping, mask_url
from sesa_fp.stats import StageStats
from sesa_fp.storage.journal import PartCommit, clear_commits, read_commits, write_commit
from sesa_fp.storage.location import bucket_of, check_location, join_path, normalized, url_of
from sesa_fp.storage.manifest import MANIFEST_NAME, Manifest, PartInfo, parse_manifest

__all__ = ["PartsWriter", "dlq_sink", "to_storage"]

_FLUSH_BYTES = 1 << 20
_PART_GLOB = "part-*.jsonl*"
# part compression -> (file extension, default level, level range)
_CODECS: dict[str | None, tuple[str, int, range]] = {
    None: (".jsonl", 0, range(0, 1)),
    "gzip": (".jsonl.gz", 6, range(0, 10)),
    "zstd": (".jsonl.zst", 3, range(1, 23)),
}


def _codec(gzip: bool, compression: str | None, level: int | None) -> tuple[str | None, int]:
    """The part compression and its level from ``gzip=`` / ``compression=`` / ``level=``.

    >>> _codec(True, None, None), _codec(True, "zstd", None), _codec(False, None, None)
    (('gzip', 6), ('zstd', 3), (None, 0))
    >>> _codec(True, "lz4", None)
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: compression must be one of gzip, zstd, none; got 'lz4'
    """
    kind = ("gzip" if gzip else None) if compression is None else \
        (None if compression == "none" else compression)
    if kind not in _CODECS:
        raise ConfigError(f"compression must be one of gzip, zstd, none; got {compression!r}")
    default, allowed = _CODECS[kind][1:]
    if level is None:
        return kind, default
    if not isinstance(level, int) or isinstance(level, bool) or level not in allowed:
        raise ConfigError(f"{kind or 'no'} compression level must be an int in "
                          f"{allowed.start}..{allowed.stop - 1}, got {level!r}")
    return kind, level


def _compressor(kind: str | None, level: int) -> Any:
    """An object with ``compress(bytes)`` and ``flush()`` for one part (None: plain)."""
    if kind == "gzip":
        return zlib.compressobj(level, zlib.DEFLATED, 31)
    if kind == "zstd":
        return require("zstandard", "zstd").ZstdCompressor(level=level).compressobj()
    return None


#: the key of a staged dead letter's line (a journal-mode staging part keeps the source's
#: dead letters in stream order, so a part replays exactly what passed the tee)
DEAD_LETTER_KEY = "__sesa_dead_letter__"


def _snapshot(position: Any) -> Any:
    """A JSON copy of a source position, taken now (the source moves on)."""
    return orjson.loads(orjson.dumps(position, default=str))


class PartsWriter:
    """Writes records as ``part-00000.jsonl[.gz]`` files under a prefix; `commit` writes the
    manifest last (the prefix is valid only then), `abort` removes the parts it wrote.

    Parts close at about ``part_max_mb`` of file size. One writer serves one stream at a time.
    ``run_id`` / ``stamp_time=False`` make the manifest deterministic (same input, same bytes).

    Rewriting a committed prefix keeps the old commit readable until the new one is complete:
    the new parts get names of their own (``part-<token>-00000...``) unless a part comes out
    identical to the old commit's part at the same place, which is then kept as it is; the new
    manifest replaces the old one in one step, and only then are the old parts removed.
    """

    def __init__(
        self,
        uri: str,
        *,
        gzip: bool = True,
        part_max_mb: float = 64,
        kind: str = "staging",
        compression: str | None = None,
        level: int | None = None,
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
        # gzip level 6 by default: zlib's own default, and what a reader expects of .gz;
        # level 1 writes ~2x faster for ~15% bigger parts, zstd (level 3) faster still
        self.compression, self.level = _codec(gzip, compression, level)
        self.gzip = self.compression == "gzip"
        self.part_max_bytes = max(1, int(part_max_mb * 1024 * 1024))
        self.kind = kind
        self.encode = encode
        self.commit_empty = commit_empty
        self.per_run = per_run
        self.job = job
        self.storage_options = storage_options or {}
        self.run_id = run_id
        self.stamp_time = stamp_time
        self.stats = StageStats(name=f"{kind}:{mask_url(uri)}", kind=kind)
        self.last_manifest: Manifest | None = None
        self.last_uri: str | None = None
        self._flush_at = min(_FLUSH_BYTES, max(1, self.part_max_bytes // 4))
        self._fs: Any = None
        # journal mode (set by a resumable run, `enable_journal`): a commit record per part
        self.journal = False
        self.position_fn: Callable[[], Any] | None = None
        self._adopt: int | None = None  # adopt this many committed parts (None: start over)
        self.ended: list[PartCommit] = []  # parts committed since the tee last looked
        self._reset()

    def enable_journal(self, *, position: Callable[[], Any] | None = None,
                       adopt: int | None = None) -> None:
        """Commit each part as it closes (its commit record: records, bytes, sha256 and
        ``position()`` after its last record). ``adopt=n`` keeps the first ``n`` parts an
        earlier attempt committed here (a resume; ``-1``: all of them) and forgets any later
        ones; ``adopt=None`` forgets them all (a fresh start). An abort keeps committed parts.

        >>> w = to_storage("memory://doc/journal/", gzip=False)
        >>> w.enable_journal(position=lambda: {"line": 1})
        >>> w.write({"a": 1}); w.close_part(); [(c.index, c.position) for c in w.ended]
        [(0, {'line': 1})]
        """
        self.journal = True
        self.position_fn = position
        self._adopt = adopt

    def committed_parts(self) -> int:
        """Parts committed at the prefix so far (adopted ones included)."""
        if self._root is None:
            return max(self._adopt or 0, 0)
        return len(self._parts)

    def checkpoint(self) -> int:
        """Close the open part (writing its commit record) so everything written so far is
        durable; returns `committed_parts`."""
        if self.holds_part:
            self.close_part()
        return self.committed_parts()

    def __repr__(self) -> str:
        fn = "dlq_sink" if self.kind == "dlq" else "to_storage"
        so = (f", storage_options={mask_mapping(self.storage_options)!r}"
              if self.storage_options else "")
        codec = f"gzip={self.gzip}" if self.compression != "zstd" else "compression='zstd'"
        if self.level != _CODECS[self.compression][1]:
            codec += f", level={self.level}"
        return (f"{fn}({mask_url(self.uri)!r}, {codec}, "
                f"part_max_mb={self.part_max_bytes / 2**20:g}{so})")

    def location(self) -> str:
        """Where this writer commits (a per-run writer: each run's folder below its prefix)."""
        where = normalized(self.uri, self.storage_options)
        return join_path(where, "run_id=*") if self.per_run else where

    def _reset(self) -> None:
        self._root: str | None = None
        self._dirs_made = False
        self._gen: str | None = None  # None until the prefix has been looked at
        self._old: Manifest | None = None
        self._parts: list[PartInfo] = []
        self._written: list[str] = []  # files this writer created and still owns
        self._records = 0
        self._file: Any = None
        self._zip: Any = None
        self._sha: Any = None
        self._buf: list[bytes] = []
        self._buf_len = 0
        self._part_records = 0
        self._part_bytes = 0
        self._buf_records = 0
        self._part_position: Any = None
        self._part_dead = 0
        self._buf_dead = 0
        self._commits: list[PartCommit] = []
        self._adopted_records = 0
        self._adopted_bytes = 0

    def _where(self) -> str:
        """The prefix, for messages and logs (credentials masked)."""
        return mask_url(self._url(self._root))

    # -- opening ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the target before any record is read: a missing bucket or container is a
        `StorageError` naming it; a local directory is created (by a staging writer now, by a
        dead-letter writer only when its first record arrives).

        >>> w = to_storage("memory://doc/prepared/")
        >>> w.prepare(); w.commit()
        0
        """
        self.abort()  # a stream abandoned without commit or abort leaves nothing behind
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(self.uri, **self.storage_options)
            if self.per_run:
                root = join_path(root, f"run_id={current_run_id() or 'adhoc'}")
            check_location(fs, root, f"{self.kind} prefix {mask_url(url_of(fs, root, self.uri))}")
        except OSError as exc:
            raise StorageError(f"cannot prepare {self.kind} prefix {mask_url(self.uri)}: "
                               f"{exc}") from exc
        self._fs, self._root = fs, root
        if self.journal:
            try:
                self._open_journal()
            except OSError as exc:
                self._root = None
                raise StorageError(f"cannot read the commit records of {self.kind} prefix "
                                   f"{mask_url(url_of(fs, root, self.uri))}: {exc}") from exc
        if self.commit_empty:
            try:
                self._make_dirs()
            except OSError as exc:
                where = self._where()
                self._root = None
                raise StorageError(f"cannot prepare {self.kind} prefix {where}: {exc}") from exc

    def _open_journal(self) -> None:
        """Adopt the committed parts a resume keeps, forget the others."""
        fs, root = self._fs, self._root
        assert root is not None
        keep: list[PartCommit] = []
        if self._adopt is not None:
            commits = read_commits(fs, root)
            keep = commits if self._adopt < 0 else commits[:self._adopt]
        clear_commits(fs, root, keep=len(keep))
        self._commits = list(keep)
        self._parts = [c.info() for c in keep]
        self._adopted_records = sum(c.records - c.dead_letters for c in keep)
        self._adopted_bytes = sum(c.bytes for c in keep)
        self.ended = []
        if keep:
            self._part_position = keep[-1].position

    def _make_dirs(self) -> None:
        # object stores have no directories, and their makedirs would create the bucket
        if not self._dirs_made and bucket_of(self._fs, self._root or "") is None:
            self._fs.makedirs(self._root, exist_ok=True)
        self._dirs_made = True

    def _survey(self) -> None:
        """Look at what the prefix holds before the first part: parts there (a commit, or an
        aborted writer's leftovers) mean the new parts need names of their own."""
        fs, root = self._fs, self._root
        assert root is not None
        fs.invalidate_cache(root)
        existing = fs.glob(join_path(root, _PART_GLOB))
        self._gen = token_hex(4) if existing else ""
        self._old = None
        if existing:
            try:
                self._old = parse_manifest(fs.cat_file(join_path(root, MANIFEST_NAME)), root)
            except (OSError, StorageError):
                self._old = None  # no readable commit: nothing to keep, nothing to reuse

    def _start_part(self) -> None:
        assert self._root is not None
        if self._gen is None:
            self._make_dirs()
            self._survey()
        ext = _CODECS[self.compression][0]
        n = len(self._parts)
        name = f"part-{self._gen}-{n:05d}{ext}" if self._gen else f"part-{n:05d}{ext}"
        self._part_name = name
        self._written.append(name)
        self._file = self._fs.open(join_path(self._root, name), "wb")
        self._sha = hashlib.sha256()
        self._zip = _compressor(self.compression, self.level)
        self._part_records = 0
        self._part_bytes = 0
        self._part_dead = 0

    def _emit(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self._sha.update(data)
            self._part_bytes += len(data)

    def _flush(self) -> None:
        if not self._buf:
            return
        if not self.journal and self._file is not None and self._part_records \
                and self._part_bytes + self._buf_len > self.part_max_bytes:
            self._end_part()
        if self._file is None:
            self._start_part()
        data = b"".join(self._buf)
        self._emit(self._zip.compress(data) if self._zip is not None else data)
        self._part_records += self._buf_records
        self._part_dead += self._buf_dead
        self._buf.clear()
        self._buf_len = 0
        self._buf_records = 0
        self._buf_dead = 0
        if self.position_fn is not None:
            # the buffer ends at the last record written: the source stands right after it
            self._part_position = _snapshot(self.position_fn())
        fault_point("flush")
        if self.journal and self._part_bytes >= self.part_max_bytes:
            # in journal mode a part ends right after the record just written, so its mark
            # can follow that record down the stream, before any record of the next part
            self._end_part()

    def _end_part(self) -> None:
        if self._zip is not None:
            self._emit(self._zip.flush())
        self._file.close()
        self._file = None
        self._zip = None  # a closed part keeps no compressor state (~300 KB each)
        info = PartInfo(self._part_name, self._part_records, self._part_bytes,
                        self._sha.hexdigest(), self._part_dead)
        self._sha = None
        same = self._same_as_old(len(self._parts), info)
        if same is not None:
            # identical to the old commit's part here: keep that file, so a rerun of the same
            # input leaves the prefix byte for byte as it was
            self._fs.rm_file(join_path(self._root or "", info.path))
            self._written.remove(info.path)
            info = attrs.evolve(info, path=same)
        self._parts.append(info)
        if self.journal:
            fault_point("part_closed")
            commit = PartCommit(index=len(self._parts) - 1, path=info.path,
                                records=info.records, bytes=info.bytes, sha256=info.sha256,
                                position=self._part_position, dead_letters=info.dead_letters)
            write_commit(self._fs, self._root or "", commit)
            if info.path in self._written:
                self._written.remove(info.path)  # committed: an abort keeps it
            self._commits.append(commit)
            self.ended.append(commit)
            fault_point("part_committed")

    def _same_as_old(self, index: int, info: PartInfo) -> str | None:
        """The name of the old commit's part ``index`` if it holds exactly ``info``'s bytes."""
        old = self._old
        if old is None or index >= len(old.parts) or \
                old.compression != self.compression:
            return None
        p = old.parts[index]
        if (p.records, p.bytes, p.sha256) != (info.records, info.bytes, info.sha256) \
                or "/" in p.path or not p.path.startswith("part-"):
            return None
        # the manifest's word is not enough: a rerun must also repair a damaged part
        sha, size = hashlib.sha256(), 0
        try:
            with self._fs.open(join_path(self._root or "", p.path), "rb") as f:
                while chunk := f.read(1 << 20):
                    sha.update(chunk)
                    size += len(chunk)
        except OSError:
            return None
        return p.path if (size, sha.hexdigest()) == (p.bytes, p.sha256) else None

    # -- the Writer protocol -----------------------------------------------------------------
    def write(self, record: Any) -> None:
        """Append one record (raises ``TypeError`` if it cannot be encoded; nothing is written)."""
        self._append(self.encode(record))

    def write_dead_letter(self, letter: Any) -> None:
        """Append a dead letter that passed by, tagged (`from_storage` yields it back as
        ``Failure(DeadLetter)``), so replaying the part replays it too."""
        body = letter.to_dict() if isinstance(letter, DeadLetter) else letter
        line = dumps_line_lenient({DEAD_LETTER_KEY: body})
        self._buf_dead += 1  # a line, not a record
        self._records -= 1
        self._append(line)

    def _append(self, line: bytes) -> None:
        if self._root is None:
            self.prepare()
        self._buf.append(line)
        self._buf_len += len(line)
        self._buf_records += 1
        self._records += 1
        if self._buf_len >= self._flush_at:
            try:
                self._flush()
            except OSError as exc:
                raise StorageError(f"writing {self.kind} part under {self._where()}: "
                                   f"{exc}") from exc

    @property
    def holds_part(self) -> bool:
        """True while this writer has an open part file or buffered records."""
        return self._file is not None or bool(self._buf)

    def close_part(self) -> None:
        """Write out the buffer and close the open part, keeping no file or buffer; the next
        record starts a new part. Nothing is committed until `commit`.

        >>> w = to_storage("memory://doc/closed/", gzip=False)
        >>> w.write({"a": 1}); w.close_part(); w.holds_part
        False
        >>> w.write({"a": 2}); w.commit(), len(w.last_manifest.parts)
        (2, 2)
        """
        try:
            self._flush()
            if self._file is not None:
                self._end_part()
        except OSError as exc:
            raise StorageError(f"writing {self.kind} part under {self._where()}: "
                               f"{exc}") from exc

    def commit(self) -> int:
        """Close the last part and write the manifest; the prefix is valid from now on.
        Returns the number of records committed (0 for a dead-letter writer with none)."""
        if self.journal and self._adopt is not None and self._root is None:
            self.prepare()  # parts adopted from an earlier attempt need their manifest
        if not self.commit_empty and self._records == 0 and not self._parts:
            self._reset()  # a dead-letter writer with nothing to say writes nothing at all
            return 0
        if self._root is None:
            self.prepare()
        try:
            self._flush()
            if self._file is not None:
                self._end_part()
            manifest = Manifest(
                kind=self.kind,
                job=self.job,
                run_id=self.run_id or current_run_id(),
                created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
                if self.stamp_time else "",
                compression=self.compression,
                parts=tuple(self._parts),
            )
            fault_point("manifest")
            self._write_manifest(manifest)
        except OSError as exc:
            where = self._where()
            self.abort()
            raise StorageError(f"committing {self.kind} prefix {where}: {exc}") from exc
        except BaseException:
            self.abort()
            raise
        self._written.clear()  # the parts belong to the commit now
        self._remove_stale(manifest)
        # this attempt's own records (staged dead letters are lines, not records)
        new = manifest.records - manifest.dead_letters - self._adopted_records
        self.stats.add(n_in=new, n_out=new, bytes=manifest.bytes - self._adopted_bytes)
        self.last_manifest = manifest
        self.last_uri = self._url(self._root)
        self._reset()
        return new

    def _url(self, root: str | None) -> str:
        if root is None:
            return self.uri
        return url_of(self._fs, root, self.uri)

    def _write_manifest(self, manifest: Manifest) -> None:
        assert self._root is not None
        self._make_dirs()
        path = join_path(self._root, MANIFEST_NAME)
        data = manifest.to_json()
        if "file" in self._fs.protocol or "local" in self._fs.protocol:
            # a rename replaces the old manifest in one step; readers see old or new, never half
            tmp = f"{path}.{token_hex(4)}.tmp"
            self._fs.pipe_file(tmp, data)
            fault_point("manifest_tmp")
            self._fs.mv(tmp, path)
        else:
            self._fs.pipe_file(path, data)  # one PUT: the object is replaced whole

    def _remove_stale(self, manifest: Manifest) -> None:
        """After a commit: remove the previous commit's parts and aborted writers' leftovers.
        They are not listed by the manifest, so a failure here loses nothing (it is logged and
        the next commit tries again)."""
        fs, root = self._fs, self._root
        assert root is not None
        keep = {join_path(root, p.path).rstrip("/") for p in manifest.parts}
        try:
            fs.invalidate_cache(root)
            stale = [p for p in fs.glob(join_path(root, _PART_GLOB)) if p.rstrip("/") not in keep]
            stale += fs.glob(join_path(root, f"{MANIFEST_NAME}.*.tmp"))
            for path in stale:
                fs.rm_file(path)
        except OSError as exc:
            log_event("storage_cleanup_failed", level=logging.WARNING, kind=self.kind,
                      prefix=self._where(), error=f"{type(exc).__name__}: {exc}")

    def abort(self) -> None:
        """Forget everything written by this stream: close and remove its parts, no manifest.
        A commit already at the prefix stays as it was."""
        root, written = self._root, list(self._written)
        if self._file is not None:
            try:
                self._file.close()
            except Exception as exc:  # the part is removed below; report, do not mask the cause
                log_event("storage_abort_close_failed", level=logging.WARNING, kind=self.kind,
                          error=f"{type(exc).__name__}: {exc}")
        if root is not None:
            for name in written:  # best effort: without a manifest the parts are not a commit
                try:
                    self._fs.rm_file(join_path(root, name))
                except OSError as exc:
                    log_event("storage_abort_cleanup_failed", level=logging.WARNING,
                              kind=self.kind, part=name, error=f"{type(exc).__name__}: {exc}")
        self._reset()

    def describe(self) -> dict[str, Any]:
        """Where the last commit went and what it holds (for the run report)."""
        m = self.last_manifest
        return {
            "kind": self.kind,
            "uri": mask_url(self.last_uri or self.uri),
            "records": m.records - m.dead_letters if m else 0,
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
    compression: str | None = None,
    level: int | None = None,
) -> PartsWriter:
    """A staging writer for `tee`: rolling parts under ``uri`` and a manifest on commit.

    >>> from sesa_fp import pipe, run, tee
    >>> from sesa_fp.storage import from_storage
    >>> w = to_storage("memory://doc/staging/", gzip=True)
    >>> _ = run(pipe([{"a": 1}, {"a": 2}], tee(w)), progress=False)
    >>> list(from_storage("memory://doc/staging/"))
    [{'a': 1}, {'a': 2}]

    ``compression="zstd"`` (needs the ``zstd`` extra) or ``level=1`` trade part size for speed:

    >>> w = to_storage("memory://doc/zstd/", compression="zstd")
    >>> _ = run(pipe([{"a": 1}], tee(w)), progress=False)
    >>> w.last_manifest.parts[0].path, list(from_storage("memory://doc/zstd/"))
    ('part-00000.jsonl.zst', [{'a': 1}])
    """
    return PartsWriter(uri, gzip=gzip, part_max_mb=part_max_mb, job=job,
                       storage_options=storage_options, compression=compression, level=level)


def _encode_dead_letter(item: Any) -> bytes:
    return dumps_line_lenient(item.to_dict() if isinstance(item, DeadLetter) else item)


def dlq_sink(
    uri: str,
    *,
    gzip: bool = True,
    part_max_mb: float = 64,
    per_run: bool = True,
    storage_options: dict[str, Any] | None = None,
    compression: str | None = None,
    level: int | None = None,
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
                       storage_options=storage_options, compression=compression, level=level)
