"""`read_dead_letters`: the committed dead letters under a DLQ prefix, as a source.

The way Logstash's dead-letter-queue input is used: point it at a DLQ and feed what failed
back through a pipeline. Only committed folders are read (a ``_manifest.json`` of kind
``dlq``; every part is checked against it), in a fixed order (folders sorted by path, parts
in manifest order), and letters a replay already dealt with (``_resolved/`` marks, see
`sesa_fp.storage.resolved`) are skipped unless ``skip_resolved=False``.
"""

from __future__ import annotations

import gzip as _gzip
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from sesa_fp.codec import loads
from sesa_fp.errors import ConfigError, SesaError, StorageError
from sesa_fp.logs import log_event
from sesa_fp.secrets import mask_mapping, mask_url, redact, reveal_tree, secret_strings
from sesa_fp.storage.location import check_location, join_path, url_of
from sesa_fp.storage.manifest import MANIFEST_NAME, Manifest, parse_manifest
from sesa_fp.storage.reader import StorageSource
from sesa_fp.storage.resolved import RESOLVED_DIR, letter_id, read_marks

__all__ = ["DeadLetterSource", "StoredLetter", "read_dead_letters"]

_DONE = {"done": True}
_FIELDS = ("record", "error_type", "stage")


@attrs.frozen
class StoredLetter:
    """One committed dead letter: its stable ``id``, the folder (run) holding it, and the dead
    letter as stored (``letter["record"]`` is the input of the stage that failed)."""

    id: str
    folder: str
    letter: dict[str, Any]

    @property
    def record(self) -> Any:
        """The record the failing stage was given."""
        return self.letter["record"]

    @property
    def stage(self) -> str:
        """The name of the stage that failed."""
        return str(self.letter.get("stage") or "")


class DeadLetterSource:
    """Iterate to read (lazy, re-iterable). ``position`` is where the next read starts
    (``{"run", "part", "record"}``; ``{"done": True}`` after the last letter; the ``start``
    given, None for the beginning, before the first); pass it back as ``start=``.

    After a read, ``counts`` says how many letters were found, skipped as resolved, yielded.
    """

    def __init__(self, uri: str, *, storage_options: Mapping[str, Any] | None,
                 start: Mapping[str, Any] | None, skip_resolved: bool, letters: bool) -> None:
        self.uri = uri
        self.storage_options = dict(storage_options or {})
        self.start = None if start is None else dict(start)
        if self.start is not None and self.start != _DONE and not (
                isinstance(self.start.get("run"), str)
                and isinstance(self.start.get("part"), int)
                and isinstance(self.start.get("record"), int)):
            raise ConfigError(f"read_dead_letters: start={self.start!r} is not a position "
                              "(expected {'run': str, 'part': int, 'record': int})")
        self.skip_resolved = skip_resolved
        self.letters = letters
        self._pos: dict[str, Any] | None = self.start
        self.counts = {"runs": 0, "letters": 0, "skipped_resolved": 0, "yielded": 0}

    def __repr__(self) -> str:
        extra = ""
        if self.storage_options:
            extra += f", storage_options={mask_mapping(self.storage_options)!r}"
        if self.start is not None:
            extra += f", start={self.start!r}"
        if not self.skip_resolved:
            extra += ", skip_resolved=False"
        if self.letters:
            extra += ", letters=True"
        return f"read_dead_letters({mask_url(self.uri)!r}{extra})"

    @property
    def position(self) -> dict[str, Any] | None:
        """Where a resumed read starts (see the class docstring)."""
        return None if self._pos is None else dict(self._pos)

    def describe(self) -> dict[str, Any]:
        """What the last read found (for the run report): every letter is skipped or yielded."""
        return {"kind": "dead_letters_read", "uri": mask_url(self.uri), **self.counts}

    # -- finding the committed folders ------------------------------------------------------
    def folders(self) -> list[tuple[str, Manifest]]:
        """The committed dead-letter folders under the prefix: (path, manifest), sorted.

        A prefix that does not exist, or holds a staging commit, is a `ConfigError`."""
        try:
            import fsspec

            fs, root = fsspec.core.url_to_fs(self.uri, **reveal_tree(self.storage_options))
            root = root.rstrip("/")
            check_location(fs, root, f"dead-letter queue {mask_url(self.uri)}")
            fs.invalidate_cache(root)
            if fs.exists(join_path(root, MANIFEST_NAME)):
                paths = [join_path(root, MANIFEST_NAME)]
            else:
                if not fs.exists(root):
                    raise ConfigError(f"read_dead_letters: {mask_url(self.uri)} does not exist "
                                      "(expected a dead-letter queue prefix)")
                paths = sorted(p for p in fs.glob(join_path(root, f"**/{MANIFEST_NAME}"))
                               if f"/{RESOLVED_DIR}/" not in p)
            out = []
            for path in paths:
                folder = path.rsplit("/", 1)[0]
                shown = mask_url(url_of(fs, folder, self.uri))
                manifest = parse_manifest(fs.cat_file(path), shown)
                if manifest.kind != "dlq":
                    raise ConfigError(
                        f"read_dead_letters: {shown} holds a {manifest.kind!r} commit, not dead "
                        "letters; give a dead-letter queue prefix (the job's dlq.uri), or "
                        "replay a staging prefix with sesa replay --from")
                out.append((folder, manifest))
        except SesaError:
            raise
        except Exception as exc:  # OSError, or a client's own (botocore refuses a bucket name)
            secrets = secret_strings(self.uri, self.storage_options)
            raise StorageError(redact(f"read_dead_letters: cannot list {mask_url(self.uri)}: "
                                      f"{type(exc).__name__}: {exc}", secrets)) from exc
        self._fs, self._root = fs, root
        if not out:
            log_event("no_dead_letters", logging.WARNING, uri=mask_url(self.uri),
                      reason=f"no committed {MANIFEST_NAME} of dead letters under the prefix")
        return out

    def _relative(self, folder: str) -> str:
        return folder[len(self._root):].strip("/")

    # -- reading ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        self.counts = {"runs": 0, "letters": 0, "skipped_resolved": 0, "yielded": 0}
        self._pos = self.start
        if self.start == _DONE:
            return
        folders = self.folders()
        names = [self._relative(f) for f, _ in folders]
        first = 0
        if self.start is not None:
            if self.start["run"] not in names:
                raise ConfigError(f"read_dead_letters: start={self.start!r} names a run that "
                                  f"is not under {mask_url(self.uri)}")
            first = names.index(self.start["run"])
        counts = self.counts
        replayed = self._replayed(folders) if self.skip_resolved else set()
        for (folder, manifest), name in zip(folders[first:], names[first:], strict=True):
            counts["runs"] += 1
            marks = read_marks(self._fs, folder) if self.skip_resolved else {}
            skip_to = (0, 0)
            if self.start is not None and name == self.start["run"]:
                skip_to = (self.start["part"], self.start["record"])
            if self.skip_resolved and skip_to == (0, 0) and all(
                    letter_id(part.sha256, i) in marks or letter_id(part.sha256, i) in replayed
                    for part in manifest.parts for i in range(part.records)):
                # every letter of this folder is resolved: nothing to read there
                total = sum(part.records for part in manifest.parts)
                counts["letters"] += total
                counts["skipped_resolved"] += total
                if manifest.parts:
                    last = len(manifest.parts) - 1
                    self._pos = {"run": name, "part": last,
                                 "record": manifest.parts[last].records}
                continue
            records = iter(StorageSource(url_of(self._fs, folder, self.uri),
                                         reveal_tree(self.storage_options) or None))
            for p, part in enumerate(manifest.parts):
                for i in range(part.records):
                    letter = next(records)
                    if (p, i) < skip_to:
                        continue
                    self._pos = {"run": name, "part": p, "record": i + 1}
                    counts["letters"] += 1
                    lid = letter_id(part.sha256, i)
                    if lid in marks or lid in replayed:
                        counts["skipped_resolved"] += 1
                        continue
                    if not isinstance(letter, dict) or any(k not in letter for k in _FIELDS):
                        raise ConfigError(
                            f"read_dead_letters: line {i + 1} of {part.path} under "
                            f"{mask_url(url_of(self._fs, folder, self.uri))} is not a dead "
                            f"letter (it needs {', '.join(_FIELDS)})")
                    counts["yielded"] += 1
                    yield StoredLetter(lid, folder, letter) if self.letters else letter["record"]
            for _ in records:  # the reader checks the last part's count when drained
                pass
        self._pos = dict(_DONE)

    def _replayed(self, folders: list[tuple[str, Manifest]]) -> set[str]:
        """The ids named by ``replay_of`` in the committed letters under the prefix: letters
        that failed again in a replay whose DLQ committed before its marks were written (a
        replay killed in between) are skipped like marked ones. A replay's DLQ holds only
        such letters, so one line per folder tells which folders to read."""
        out: set[str] = set()
        for folder, manifest in folders:
            if not manifest.parts:
                continue
            try:
                with self._fs.open(join_path(folder, manifest.parts[0].path), "rb") as f:
                    raw: Any = _gzip.GzipFile(fileobj=f) if manifest.compression == "gzip" \
                        else f
                    first = loads(raw.readline())
            except (OSError, EOFError, ValueError):
                first = {"replay_of": True}  # unreadable here: the verified read decides
            if not isinstance(first, dict) or not first.get("replay_of"):
                continue
            for letter in StorageSource(url_of(self._fs, folder, self.uri),
                                        reveal_tree(self.storage_options) or None):
                if isinstance(letter, dict) and letter.get("replay_of"):
                    out.add(str(letter["replay_of"]))
        return out

    @property
    def fs(self) -> Any:
        """The filesystem of the prefix (after `folders` or a read)."""
        return self._fs


def read_dead_letters(
    uri: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    start: Mapping[str, Any] | None = None,
    skip_resolved: bool = True,
    letters: bool = False,
) -> DeadLetterSource:
    """The records of the committed dead letters under ``uri`` (a DLQ prefix with its
    ``run_id=...`` folders, or one of them): each is the input of the stage that failed.
    ``letters=True`` yields `StoredLetter` values (id, folder, the whole dead letter) instead.
    Letters a replay has resolved are skipped.

    >>> from sesa_fp import pipe, run, stage, partition, dlq_sink
    >>> _ = run(pipe([{"n": "x"}], stage(lambda r: {"n": int(r["n"])}, name="to_int"),
    ...              partition(dlq_sink("memory://doc/dl/"))), progress=False, run_id="r1")
    >>> list(read_dead_letters("memory://doc/dl/"))
    [{'n': 'x'}]
    >>> [(x.stage, x.id.split(":")[1]) for x in read_dead_letters("memory://doc/dl/",
    ...                                                             letters=True)]
    [('to_int', '0')]
    """
    return DeadLetterSource(uri, storage_options=storage_options, start=start,
                            skip_resolved=skip_resolved, letters=letters)
