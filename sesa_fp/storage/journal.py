"""Per-part commit records: a staged part is durable the moment its record is written.

A writer in journal mode writes ``_commits/<index>.json`` after each part file is closed:
the part's name, records, bytes, sha256 and the source position after its last record. A
part file without a commit record is half-written (the process died while writing it, or
between closing it and writing its record) and is never read. The manifest, written last,
still means "complete"; the commit records stay beside it (a resumed run reads positions
from them). Each record is one small object written in one PUT (or a local rename), so a
reader sees a whole record or none.
"""

from __future__ import annotations

import builtins
import contextlib
from functools import cache
from secrets import token_hex
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from sesa_fp.errors import ManifestError
from sesa_fp.storage.location import bucket_of, join_path
from sesa_fp.storage.manifest import PartInfo

if TYPE_CHECKING:
    import cattrs

__all__ = ["COMMITS_DIR", "PartCommit", "clear_commits", "put_small", "read_commits",
           "write_commit"]

COMMITS_DIR = "_commits"


@cache
def _converter() -> cattrs.Converter:
    import cattrs  # on first use: `import sesa_fp` does not load it

    return cattrs.Converter(forbid_extra_keys=False)


@attrs.frozen(kw_only=True)
class PartCommit:
    """One committed part: where it is in the prefix, what it holds, and the source position
    after its last record (None when the source has none: such a part cannot be resumed
    from, only replayed)."""

    index: int
    path: str
    records: int
    bytes: builtins.int
    sha256: str
    position: Any = None
    dead_letters: int = 0

    def info(self) -> PartInfo:
        """The manifest's view of this part."""
        return PartInfo(self.path, self.records, self.bytes, self.sha256, self.dead_letters)

    def to_json(self) -> builtins.bytes:
        """The commit record's bytes."""
        return orjson.dumps(_converter().unstructure(self))


def put_small(fs: Any, path: str, data: bytes) -> None:
    """Write a small file whole: a local rename, or one PUT on an object store."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if "file" in protocols or "local" in protocols:
        tmp = f"{path}.{token_hex(4)}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)


def write_commit(fs: Any, root: str, commit: PartCommit) -> None:
    """Write ``commit``'s record under ``root`` (after its part file is closed)."""
    if bucket_of(fs, root) is None:  # a local directory; object stores have none
        fs.makedirs(join_path(root, COMMITS_DIR), exist_ok=True)
    put_small(fs, join_path(root, f"{COMMITS_DIR}/{commit.index:05d}.json"), commit.to_json())


def read_commits(fs: Any, root: str) -> list[PartCommit]:
    """The committed parts under ``root``, in order; stops at the first missing index (a
    record after a gap belongs to no consistent prefix and is ignored).

    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> write_commit(fs, "/doc/j", PartCommit(index=0, path="part-00000.jsonl", records=2,
    ...                                       bytes=10, sha256="ab", position={"line": 2}))
    >>> [(c.path, c.position) for c in read_commits(fs, "/doc/j")]
    [('part-00000.jsonl', {'line': 2})]
    """
    where = join_path(root, COMMITS_DIR)
    with contextlib.suppress(OSError):
        fs.invalidate_cache(where)
    try:
        paths = fs.glob(join_path(where, "*.json"))
    except FileNotFoundError:
        return []
    import cattrs

    found: dict[int, PartCommit] = {}
    for path in paths:
        try:
            body = orjson.loads(fs.cat_file(path))
            commit = _converter().structure(body, PartCommit)
        except (OSError, orjson.JSONDecodeError, cattrs.BaseValidationError, TypeError,
                ValueError) as exc:
            raise ManifestError(f"commit record {path} is unreadable: {exc}") from exc
        found[commit.index] = commit
    out: list[PartCommit] = []
    while len(out) in found:
        out.append(found[len(out)])
    return out


def clear_commits(fs: Any, root: str, keep: int = 0) -> None:
    """Remove the commit records of index ``keep`` and above (all of them by default)."""
    where = join_path(root, COMMITS_DIR)
    with contextlib.suppress(OSError):
        fs.invalidate_cache(where)
    try:
        paths = fs.glob(join_path(where, "*"))
    except FileNotFoundError:
        return
    for path in paths:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        stem = name.split(".", 1)[0]
        if not stem.isdigit() or int(stem) >= keep:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(path)
