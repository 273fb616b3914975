"""The load ledger: which staged parts a run has finished loading, kept beside the staging.

After the last record of a part has been acknowledged by the loader or dead-lettered, and
the dead letters are durable, ``_loaded/<index>.json`` is written for it. A resumed run or a
``sesa replay`` skips the parts the ledger names (same file, same sha256) and loads the rest.
The ledger also keeps the logical run's id (``_loaded/_run.json``), so every attempt of one
run writes its dead letters to one place; `LoadLedger` is the whole interface, usable by any
other replay (a dead-letter replay keeps its own ledger the same way).

>>> led = LoadLedger("memory://doc/ledger/")
>>> led.mark(LedgerEntry(index=0, part="part-00000.jsonl", sha256="ab", records=3, loaded=2,
...                      dead_letters=1))
>>> led.is_loaded("part-00000.jsonl", "ab"), led.is_loaded("part-00000.jsonl", "cd")
(True, False)
>>> led.totals()
{'parts': 1, 'records': 3, 'loaded': 2, 'dead_letters': 1, 'dropped': 0}
"""

from __future__ import annotations

import contextlib
from functools import cache
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from sesa_fp.errors import ManifestError
from sesa_fp.storage.journal import put_small
from sesa_fp.storage.location import bucket_of, join_path

if TYPE_CHECKING:
    import cattrs

__all__ = ["LEDGER_DIR", "LedgerEntry", "LoadLedger"]

LEDGER_DIR = "_loaded"


@cache
def _converter() -> cattrs.Converter:
    import cattrs  # on first use: `import sesa_fp` does not load it

    return cattrs.Converter(forbid_extra_keys=False)


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """Part ``index`` (``part``, ``sha256``) is loaded: of its ``records``, ``loaded`` were
    acknowledged by the target and ``dead_letters`` dead-lettered (the rest dropped on
    purpose). ``sinks`` holds how many parts each dead-letter writer had committed right
    after this part's dead letters: a resumed run keeps exactly those."""

    index: int
    part: str
    sha256: str
    records: int
    loaded: int
    dead_letters: int
    sinks: dict[str, int] = attrs.field(factory=dict)
    run_id: str | None = None

    @property
    def dropped(self) -> int:
        """Records of the part dropped on purpose by a transform."""
        return max(self.records - self.loaded - self.dead_letters, 0)


class LoadLedger:
    """The ledger of the staging prefix ``uri``."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None) -> None:
        self.uri = uri
        import fsspec

        self.fs, root = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        self.root = join_path(root, LEDGER_DIR)
        self._entries: dict[int, LedgerEntry] | None = None

    def __repr__(self) -> str:
        from sesa_fp.secrets import mask_url

        return f"LoadLedger({mask_url(self.uri)!r})"

    def _put(self, name: str, data: bytes) -> None:
        if bucket_of(self.fs, self.root) is None:
            self.fs.makedirs(self.root, exist_ok=True)
        put_small(self.fs, join_path(self.root, name), data)

    def entries(self) -> dict[int, LedgerEntry]:
        """The entries by part index (read once, then kept up to date by `mark`)."""
        if self._entries is None:
            import cattrs

            found: dict[int, LedgerEntry] = {}
            with contextlib.suppress(OSError):
                self.fs.invalidate_cache(self.root)
            try:
                paths = self.fs.glob(join_path(self.root, "[0-9]*.json"))
            except FileNotFoundError:
                paths = []
            for path in paths:
                try:
                    entry = _converter().structure(orjson.loads(self.fs.cat_file(path)),
                                                 LedgerEntry)
                except (OSError, orjson.JSONDecodeError, cattrs.BaseValidationError,
                        TypeError, ValueError) as exc:
                    raise ManifestError(f"load ledger entry {path} is unreadable: {exc}") \
                        from exc
                found[entry.index] = entry
            self._entries = found
        return self._entries

    def is_loaded(self, part: str, sha256: str) -> bool:
        """True if the ledger names this exact part (file and content) as loaded."""
        return any(e.part == part and e.sha256 == sha256 for e in self.entries().values())

    def mark(self, entry: LedgerEntry) -> None:
        """Record ``entry``'s part as loaded (durable when this returns)."""
        self._put(f"{entry.index:05d}.json", orjson.dumps(_converter().unstructure(entry)))
        self.entries()[entry.index] = entry

    def sinks(self) -> dict[str, int]:
        """The dead-letter writers' committed part counts after the last loaded part: what
        a resumed run keeps of each (the later parts' dead letters are made again)."""
        found = self.entries()
        if not found:
            return {}
        return dict(found[max(found)].sinks)

    def totals(self) -> dict[str, int]:
        """Sums over the loaded parts."""
        es = list(self.entries().values())
        return {"parts": len(es), "records": sum(e.records for e in es),
                "loaded": sum(e.loaded for e in es),
                "dead_letters": sum(e.dead_letters for e in es),
                "dropped": sum(e.dropped for e in es)}

    def run_state(self, name: str = "_run") -> dict[str, Any] | None:
        """``{"run_id", "complete"}`` of the logical run (``name="_run"``) or replay
        (``"_replay"``) this ledger belongs to, if any."""
        try:
            return dict(orjson.loads(self.fs.cat_file(join_path(self.root, f"{name}.json"))))
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None

    def set_run_state(self, run_id: str, *, complete: bool, name: str = "_run") -> None:
        """Write the logical run's (or replay's) id, and whether it finished."""
        self._put(f"{name}.json", orjson.dumps({"run_id": run_id, "complete": complete}))

    def clear(self) -> None:
        """Forget everything (a fresh start)."""
        with contextlib.suppress(OSError):
            self.fs.invalidate_cache(self.root)
        try:
            paths = self.fs.glob(join_path(self.root, "*"))
        except FileNotFoundError:
            paths = []
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)
        self._entries = {}
