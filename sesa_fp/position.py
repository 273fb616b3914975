"""The position protocol: how a source says where it is, and starts again from there.

Every source sesa_fp ships follows it:

- ``source.position`` — JSON-serialisable, read at any moment between two records: the
  place right after the last record the source yielded (before the first: where it was told
  to start, ``None`` for the beginning). It is cheap to read and a copy is taken by whoever
  keeps it.
- ``source.resume(position)`` — a new source, equal to this one but starting right after
  ``position``: nothing before it is read again, nothing after it is skipped. Factories take
  the same value as ``start=`` (`read_jsonl`, `from_storage`, `es_source`, `sql_source`,
  `http_source`).
- ``source.resumable`` (optional, default True) — False when the position does not survive
  the process (an ``es_source`` without ``sort=``, whose order is the point in time's own).

What each position holds: `read_jsonl` ``{"file", "offset", "line"}`` (byte offset in the
decompressed file); `from_storage` ``{"part", "record"}``; `es_source` the sort values of
the last hit (``sort=`` field values, then ``_id``); `sql_source` the ``partition_on`` key;
`http_source` the page request and the records of it already yielded. A `merge` of sources
has the list of its sources' positions, as of the last record it yielded (records waiting in
its queue are not counted as read); a `pipe` whose stages are all record-by-record
(`stage`) has its source's position.

>>> from sesa_fp import pipe, stage
>>> src = pipe([{"n": 1}, {"n": 2}], stage(lambda r: r))
>>> resumable(src)  # a list has no position
False
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Resumable", "resumable"]


@runtime_checkable
class Resumable(Protocol):
    """A source with a position that survives the process (see the module doc)."""

    @property
    def position(self) -> Any: ...

    def resume(self, start: Any) -> Any: ...


def resumable(source: Any) -> bool:
    """True if ``source`` follows the protocol and its position survives the process."""
    return isinstance(source, Resumable) and bool(getattr(source, "resumable", True))
