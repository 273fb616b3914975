"""Peak RSS of the overhead job (sesa variant) at a small and a big input: streaming means flat.

Each size runs `overhead.py --variant sesa` in a fresh subprocess; peak RSS is that process's
VmHWM. ``growth`` = big / small.

    python benchmarks/memory.py --small 200000 --big 2000000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import emit, log, run_child, write_input


def measure(tmp: Path, n: int) -> float:
    inp = write_input(tmp / f"in-{n}.jsonl.gz", n, compress=True)
    r = run_child("overhead.py", "--variant", "sesa", "--input", str(inp),
                  "--out", str(tmp / f"out-{n}"), cwd=tmp)
    if r["records"] != n:
        raise SystemExit(f"sesa loaded {r['records']} records, not {n}")
    log(f"{n:,} records: {r['elapsed_s']:.2f}s, peak RSS {r['peak_rss_mb']:.1f} MiB")
    inp.unlink()
    return float(r["peak_rss_mb"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200_000)
    ap.add_argument("--big", type=int, default=2_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sesa-bench-memory-") as tmp_s:
        small = measure(Path(tmp_s), args.small)
        big = measure(Path(tmp_s), args.big)
    emit({
        "small_records": args.small,
        "big_records": args.big,
        "small_peak_rss_mb": small,
        "big_peak_rss_mb": big,
        "growth": round(big / small, 4),
    })


if __name__ == "__main__":
    main()
