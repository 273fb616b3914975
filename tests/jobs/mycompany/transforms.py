"""The seed's custom transformer, verbatim apart from the import."""

from sesa_fp import Transformer


class RfiValidateCast(Transformer):
    def map_record(self, rec):  # type: ignore[no-untyped-def]
        if not rec.get("rfi_number"):
            return None  # drop invalid
        rec["validated"] = True
        return rec
