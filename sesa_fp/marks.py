"""`PartMark`: the marker a resumable run sends down the stream after each staged part.

A staging writer in journal mode (see `sesa_fp.resume`) closes a part, writes its commit
record, and the `tee` sends ``Failure(PartMark(...))`` after the part's last record. Every
stage already passes a ``Failure`` on untouched and in order, so the mark reaches the end of
the stream after everything the part holds: the loaders have acknowledged (or dead-lettered)
each of its records by then. Each `partition` on the way makes its dead letters durable and
notes how many parts its writer has committed; the last one writes the part's load ledger
entry. Marks are never counted as records and never leave a pipeline that `run` drives.
"""

from __future__ import annotations

from typing import Any

import attrs
from returns.result import Failure

__all__ = ["PartMark", "is_mark"]


@attrs.define
class PartMark:
    """Part ``index`` (file ``path``, ``records`` lines) is staged and committed; ``sinks``
    collects, on the way down, how many parts each dead-letter writer had committed when the
    mark passed it."""

    path: str
    index: int
    records: int
    sha256: str
    sinks: dict[str, int] = attrs.field(factory=dict)


def is_mark(item: Any) -> bool:
    """True for a ``Failure(PartMark)`` travelling down a stream.

    >>> is_mark(Failure(PartMark("part-00000.jsonl", 0, 2, "ab"))), is_mark(Failure("x"))
    (True, False)
    """
    return type(item) is Failure and type(item.failure()) is PartMark
