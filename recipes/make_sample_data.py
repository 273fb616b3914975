"""Writes recipes/data/rfi-sample.jsonl: RFI-like records, deterministic, some of them bad.

    python recipes/make_sample_data.py

Bad on purpose: 4 malformed lines, 12 unparseable dates (dead letters in `cast`), 25 records
without an rfi_number (dropped by the validator), blank titles (normalised to None).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

N = 3000
OUT = Path(__file__).parent / "data" / "rfi-sample.jsonl"
TITLES = ["Door hardware spec", "  Façade anchor spacing ", "Slab penetration", "HVAC duct route",
          "Fire stopping at shaft", "Curtain wall mullion", "Rebar lap length", "Naïve question ",
          ""]
QUESTIONS = ["Please confirm the detail on sheet A-501.", "Is the substitution acceptable?",
             "  Clarify the spec section 08 71 00.  ", "Which revision governs?", ""]


def main() -> None:
    rnd = random.Random(42)
    bad_dates = set(rnd.sample(range(N), 12))
    no_number = set(rnd.sample(sorted(set(range(N)) - bad_dates), 25))
    malformed = {500, 1200, 2222, 2999}
    start = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    lines = []
    for i in range(N):
        if i in malformed:
            lines.append(f'{{"_id": "broken-{i}", "title": "unterminated')
            continue
        created = start + dt.timedelta(minutes=rnd.randrange(0, 100 * 24 * 60))
        responded = created + dt.timedelta(hours=rnd.randrange(1, 240))
        rec = {
            "_id": f"rfi-{i:05d}",
            "@timestamp": created.isoformat().replace("+00:00", "Z"),
            "project_id": f"P{rnd.randrange(100, 120)}",
            "rfi_number": None if i in no_number else rnd.randrange(1, 900),
            "title": rnd.choice(TITLES),
            "question": rnd.choice(QUESTIONS),
            "created_at": "last tuesday" if i in bad_dates
            else created.isoformat().replace("+00:00", "Z"),
            "responded_at": responded.isoformat().replace("+00:00", "Z")
            if rnd.random() < 0.8 else "",
            "status": rnd.choice(["open", "answered", "closed"]),
        }
        lines.append(json.dumps(rec, ensure_ascii=False))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {N} lines to {OUT}")


if __name__ == "__main__":
    main()
