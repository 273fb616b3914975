"""The manifest: the last file written to a staging prefix, and the proof it is complete."""

from __future__ import annotations

import builtins
from functools import cache
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from sesa_fp.errors import ManifestError

if TYPE_CHECKING:
    import cattrs

__all__ = ["MANIFEST_NAME", "Manifest", "PartInfo", "parse_manifest"]

MANIFEST_NAME = "_manifest.json"
FORMAT = "sesa_fp/manifest@1"
COMPRESSIONS = (None, "gzip", "zstd")


@attrs.frozen
class PartInfo:
    """One part: its file name relative to the prefix, record count (lines), bytes and
    sha256."""

    path: str
    records: int
    bytes: builtins.int
    sha256: str
    #: of the ``records`` lines, dead letters a journal-mode staging writer kept in place
    dead_letters: int = 0


@attrs.frozen(kw_only=True)
class Manifest:
    """What a committed prefix holds."""

    format: str = FORMAT
    kind: str = "staging"
    job: str | None = None
    run_id: str | None = None
    created_at: str = ""
    compression: str | None = None
    parts: tuple[PartInfo, ...] = ()

    @property
    def records(self) -> int:
        """Total records over all parts."""
        return sum(p.records for p in self.parts)

    @property
    def dead_letters(self) -> int:
        """Staged dead letters over all parts (lines that are not records)."""
        return sum(p.dead_letters for p in self.parts)

    @property
    def bytes(self) -> int:
        """Total bytes over all parts."""
        return sum(p.bytes for p in self.parts)

    def to_json(self) -> builtins.bytes:
        """The manifest file's bytes (totals included for people reading it)."""
        body: dict[str, Any] = _converter().unstructure(self)
        body["totals"] = {"parts": len(self.parts), "records": self.records, "bytes": self.bytes}
        return orjson.dumps(body, option=orjson.OPT_INDENT_2)




@cache
def _converter() -> cattrs.Converter:
    import cattrs  # on first use: `import sesa_fp` does not load it

    return cattrs.Converter(forbid_extra_keys=False)


def parse_manifest(data: bytes, where: str) -> Manifest:
    """Parse manifest bytes read from ``where``; any defect is a `ManifestError`.

    >>> m = Manifest(parts=(PartInfo("part-00000.jsonl", 2, 10, "ab"),))
    >>> parse_manifest(m.to_json(), "mem").records
    2
    >>> parse_manifest(b"{", "mem://x")
    Traceback (most recent call last):
    sesa_fp.errors.ManifestError: manifest at mem://x is not valid JSON: ...
    """
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"manifest at {where} is not valid JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ManifestError(f"manifest at {where} is not a {FORMAT} manifest")
    totals = body.pop("totals", None)
    if "parts" not in body:
        raise ManifestError(f"manifest at {where} is malformed: it lists no parts")
    if "compression" not in body or body["compression"] not in COMPRESSIONS:
        raise ManifestError(f"manifest at {where} names an unknown compression "
                            f"{body.get('compression')!r}")
    import cattrs

    try:
        manifest = _converter().structure(body, Manifest)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise ManifestError(f"manifest at {where} is malformed: {exc}") from exc
    expected = {"parts": len(manifest.parts), "records": manifest.records, "bytes": manifest.bytes}
    if totals is not None and totals != expected:
        raise ManifestError(f"manifest at {where} is inconsistent: totals {totals} but its "
                            f"parts add up to {expected}")
    return manifest
