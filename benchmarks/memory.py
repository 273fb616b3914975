"""Peak RSS stays flat: with the input size (the overhead job at a small and a big input), and
with the number of datasets `load_files` writes (one dataset vs thousands).

Every measurement runs in a fresh subprocess; peak RSS is that process's VmHWM.

* sizes: `overhead.py --variant sesa` at ``--small`` and ``--big`` records;
  ``growth`` = big / small.
* datasets: ``--dataset-records`` records read from JSONL.GZ and loaded by
  ``load_files(dataset="day-{day}", gzip=True)`` into 1 dataset, then into ``--datasets``
  datasets (contiguous runs of records per dataset, like a per-day template over
  time-ordered data); every record is read back from the files and counted.
  ``datasets_growth`` = many / one.

    python benchmarks/memory.py --small 200000 --big 2000000 --datasets 5000
    python benchmarks/memory.py --what datasets --datasets 5000 --dataset-records 200000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import child_result, clock, emit, log, run_child, write_input


def measure(tmp: Path, n: int) -> float:
    inp = write_input(tmp / f"in-{n}.jsonl.gz", n, compress=True)
    r = run_child("overhead.py", "--variant", "sesa", "--input", str(inp),
                  "--out", str(tmp / f"out-{n}"), cwd=tmp)
    if r["records"] != n:
        raise SystemExit(f"sesa loaded {r['records']} records, not {n}")
    log(f"{n:,} records: {r['elapsed_s']:.2f}s, peak RSS {r['peak_rss_mb']:.1f} MiB")
    inp.unlink()
    return float(r["peak_rss_mb"])


def files_job(inp: Path, out: Path, records: int, datasets: int, max_open: int) -> None:
    """Child: load ``records`` records into ``datasets`` datasets; print the result line."""
    from sesa_fp import load_files, pipe, read_jsonl, run, stage

    start = clock()
    per = -(-records // datasets)  # records per dataset, in contiguous runs

    def with_day(rec: dict[str, Any]) -> dict[str, Any]:
        return {**rec, "day": f"{rec['rfi_number'] // per:05d}"}

    loader = load_files(str(out), dataset="day-{day}", gzip=True, run_key="bench",
                        max_open_datasets=max_open)
    report = run(pipe(read_jsonl(str(inp)), stage(with_day, name="with_day"), loader),
                 progress=False)
    end = clock()
    if report.loaded != records or len(loader.last_counts) != datasets:
        raise SystemExit(f"loaded {report.loaded} records into {len(loader.last_counts)} "
                         f"datasets, expected {records} into {datasets}: {report}")
    child_result(start, end, records=report.loaded, datasets=len(loader.last_counts))


def count_back(out: Path) -> int:
    """Records readable from every committed dataset under ``out`` (checksums verified)."""
    from sesa_fp import from_storage

    return sum(sum(1 for _ in from_storage(str(m.parent))) for m in out.glob("*/*/_manifest.json"))


def measure_datasets(tmp: Path, inp: Path, records: int, datasets: int, max_open: int) -> dict[
        str, Any]:
    out = tmp / f"files-{datasets}"
    r = run_child("memory.py", "--child-files", "--input", str(inp), "--out", str(out),
                  "--dataset-records", str(records), "--datasets", str(datasets),
                  "--max-open-datasets", str(max_open), cwd=tmp)
    back = count_back(out)
    if back != records:
        raise SystemExit(f"{datasets} datasets: read back {back} records, not {records}")
    parts = sum(1 for _ in out.glob("*/*/part-*"))
    log(f"{datasets:,} datasets: {r['elapsed_s']:.2f}s, peak RSS {r['peak_rss_mb']:.1f} MiB, "
        f"{parts:,} parts")
    return {**r, "parts": parts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", choices=["all", "sizes", "datasets"], default="all")
    ap.add_argument("--small", type=int, default=200_000)
    ap.add_argument("--big", type=int, default=2_000_000)
    ap.add_argument("--datasets", type=int, default=5_000)
    ap.add_argument("--dataset-records", type=int, default=200_000)
    ap.add_argument("--max-open-datasets", type=int, default=64)
    ap.add_argument("--child-files", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_files:
        files_job(args.input, args.out, args.dataset_records, args.datasets,
                  args.max_open_datasets)
        return
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sesa-bench-memory-") as tmp_s:
        tmp = Path(tmp_s)
        if args.what in ("all", "sizes"):
            small = measure(tmp, args.small)
            big = measure(tmp, args.big)
            result.update({
                "small_records": args.small,
                "big_records": args.big,
                "small_peak_rss_mb": small,
                "big_peak_rss_mb": big,
                "growth": round(big / small, 4),
            })
        if args.what in ("all", "datasets"):
            n = args.dataset_records
            inp = write_input(tmp / f"in-{n}.jsonl.gz", n, compress=True)
            one = measure_datasets(tmp, inp, n, 1, args.max_open_datasets)
            many = measure_datasets(tmp, inp, n, args.datasets, args.max_open_datasets)
            result.update({
                "dataset_records": n,
                "datasets": args.datasets,
                "max_open_datasets": args.max_open_datasets,
                "one_dataset_peak_rss_mb": one["peak_rss_mb"],
                "many_datasets_peak_rss_mb": many["peak_rss_mb"],
                "one_dataset_s": one["elapsed_s"],
                "many_datasets_s": many["elapsed_s"],
                "many_datasets_parts": many["parts"],
                "datasets_growth": round(many["peak_rss_mb"] / one["peak_rss_mb"], 4),
            })
    emit(result)


if __name__ == "__main__":
    sys.exit(main())
