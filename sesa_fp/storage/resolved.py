"""Resolved marks: which stored dead letters a replay has dealt with, kept beside them.

A committed dead-letter folder (``.../run_id=<run>/`` with its ``_manifest.json``) never
changes. What a replay did with its letters goes into small files of its own under
``_resolved/`` in that folder, one per replay run, each written whole (a rename on local
disks, one PUT on object stores), so a reader sees a mark file entirely or not at all. A
mark maps a dead letter's id (its part's sha256 prefix and its line in the part) to what
became of it: ``loaded``, ``dropped`` (the fixed job dropped it on purpose) or
``failed_again`` (it failed again and now lives, once, in the replay run's own DLQ).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from secrets import token_hex
from typing import Any

import orjson

from sesa_fp.errors import StorageError
from sesa_fp.storage.location import join_path

__all__ = ["OUTCOMES", "RESOLVED_DIR", "letter_id", "read_marks", "write_marks"]

RESOLVED_DIR = "_resolved"
FORMAT = "sesa_fp/resolved@1"
OUTCOMES = ("loaded", "dropped", "failed_again")


def letter_id(part_sha256: str, index: int) -> str:
    """The stable id of the ``index``-th dead letter (0-based) of a committed part.

    The part's sha256 names its bytes, so the id does not depend on the prefix it was read
    through, and a folder rewritten with other letters cannot inherit old marks.

    >>> letter_id("0123456789abcdef0123", 7)
    '0123456789abcdef:7'
    """
    return f"{part_sha256[:16]}:{index}"


def read_marks(fs: Any, folder: str) -> dict[str, str]:
    """Every mark written under ``folder/_resolved/``: letter id -> outcome.

    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> _ = write_marks(fs, "/doc/dlq/run_id=a", {"ab:0": "loaded"}, run_id="r2")
    >>> read_marks(fs, "/doc/dlq/run_id=a")
    {'ab:0': 'loaded'}
    """
    where = join_path(folder, RESOLVED_DIR)
    try:
        fs.invalidate_cache(where)
        paths = sorted(fs.glob(join_path(where, "*.json")))
    except OSError as exc:
        raise StorageError(f"cannot list resolved marks under {where}: {exc}") from exc
    marks: dict[str, str] = {}
    for path in paths:
        try:
            body = orjson.loads(fs.cat_file(path))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StorageError(f"resolved marks {path} cannot be read: {exc}") from exc
        found = body.get("marks") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("format") != FORMAT \
                or not isinstance(found, dict):
            raise StorageError(f"resolved marks {path} are not {FORMAT} marks")
        marks.update({str(k): str(v) for k, v in found.items()})
    return marks


def write_marks(fs: Any, folder: str, marks: Mapping[str, str], *, run_id: str | None) -> str:
    """Commit one mark file under ``folder/_resolved/`` and return its path.

    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> write_marks(fs, "/doc/m", {"ab:1": "dropped"}, run_id="r1").split("/")[-2]
    '_resolved'
    """
    bad = sorted({v for v in marks.values() if v not in OUTCOMES})
    if bad:
        raise ValueError(f"unknown outcomes {bad}; expected one of {OUTCOMES}")
    where = join_path(folder, RESOLVED_DIR)
    name = f"{run_id or 'adhoc'}-{token_hex(4)}.json"
    path = join_path(where, name)
    data = orjson.dumps({
        "format": FORMAT,
        "run_id": run_id,
        "written_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "marks": dict(sorted(marks.items())),
    })
    if "file" in fs.protocol or "local" in fs.protocol:
        fs.makedirs(where, exist_ok=True)
        tmp = f"{path}.tmp"  # not *.json: a reader never sees it
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)  # one PUT: the object is there whole or not at all
    return str(path)
