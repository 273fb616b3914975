"""The seed's example transformer, as users write it: drop RFIs without a number."""

from __future__ import annotations

from typing import Any

from sesa_fp import Transformer


class RfiValidateCast(Transformer):
    """Drops records without an ``rfi_number``; marks the rest as validated."""

    def map_record(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        if not rec.get("rfi_number"):
            return None  # drop invalid
        rec["validated"] = True
        return rec
