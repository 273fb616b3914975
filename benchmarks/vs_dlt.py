"""sesa_fp against dlt: plain JSONL -> staged JSONL.GZ files on the local filesystem.

sesa: ``run(pipe(read_jsonl(path), tee(to_storage(out, gzip=True))))``.
dlt:  a resource yielding orjson-parsed records in lists of ``--dlt-batch`` (lists, not single
items, are dlt's fast path) -> ``pipeline.run(..., loader_file_format="jsonl")`` into the
filesystem destination (local bucket_url). Each run is its own subprocess (``--repeat`` runs
each, order alternating, best kept); timings exclude interpreter start and imports.

    python benchmarks/vs_dlt.py --records 200000
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import child_result, clock, emit, log, run_child, write_input


def count_lines(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
    return n


def sesa_job(inp: Path, out: Path) -> None:
    from sesa_fp import pipe, read_jsonl, run, tee, to_storage

    start = clock()
    report = run(pipe(read_jsonl(str(inp)), tee(to_storage(str(out), gzip=True))),
                 progress=False)
    end = clock()
    written = count_lines(sorted(out.glob("part-*")))
    child_result(start, end=end, variant="sesa", records=report.emitted, written=written)


def dlt_job(inp: Path, out: Path, batch: int) -> None:
    import dlt
    import orjson

    @dlt.resource(name="rfis", write_disposition="append")
    def rfis() -> Iterator[list[dict[str, Any]]]:
        with inp.open("rb") as f:
            rows: list[dict[str, Any]] = []
            for line in f:
                rows.append(orjson.loads(line))
                if len(rows) >= batch:
                    yield rows
                    rows = []
            if rows:
                yield rows

    start = clock()
    pipeline = dlt.pipeline(
        pipeline_name="bench_rfis",
        pipelines_dir=os.environ["DLT_DATA_DIR"] + "/pipelines",
        destination=dlt.destinations.filesystem(bucket_url=out.as_uri()),
        dataset_name="rfi",
    )
    info = pipeline.run(rfis(), loader_file_format="jsonl")
    end = clock()
    info.raise_on_failed_jobs()
    files = sorted(p for p in (out / "rfi" / "rfis").rglob("*") if p.is_file())
    written = count_lines(files)
    child_result(start, end=end, variant="dlt", records=written, written=written,
                 files=len(files))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (best is kept)")
    ap.add_argument("--dlt-batch", type=int, default=10_000, help="records per yielded list")
    ap.add_argument("--variant", choices=["sesa", "dlt"], help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.variant == "sesa":
        return sesa_job(args.input, args.out)
    if args.variant == "dlt":
        return dlt_job(args.input, args.out, args.dlt_batch)

    runs: dict[str, list[dict[str, Any]]] = {"sesa": [], "dlt": []}
    with tempfile.TemporaryDirectory(prefix="sesa-bench-dlt-") as tmp_s:
        tmp = Path(tmp_s)
        inp = write_input(tmp / "in.jsonl", args.records, compress=False)
        for i in range(args.repeat):
            for variant in ("sesa", "dlt") if i % 2 == 0 else ("dlt", "sesa"):
                env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false",
                       "DLT_DATA_DIR": str(tmp / f"dlt_data-{i}")}
                out = tmp / f"out-{variant}-{i}"
                r = run_child("vs_dlt.py", "--variant", variant, "--input", str(inp),
                              "--out", str(out), "--dlt-batch", str(args.dlt_batch),
                              env=env, cwd=tmp)
                shutil.rmtree(out)
                log(f"{variant:<5} {r['elapsed_s']:.2f}s (CPU {r['cpu_s']:.2f}s) wrote "
                    f"{r['written']:,} records, peak RSS {r['peak_rss_mb']:.1f} MiB")
                if r["written"] != args.records:
                    raise SystemExit(f"{variant} wrote {r['written']} records, "
                                     f"not {args.records}")
                runs[variant].append(r)

    sesa = min(runs["sesa"], key=lambda r: r["elapsed_s"])
    dlt = min(runs["dlt"], key=lambda r: r["elapsed_s"])
    emit({
        "records": args.records,
        "sesa_s": sesa["elapsed_s"],
        "dlt_s": dlt["elapsed_s"],
        "speedup": round(dlt["elapsed_s"] / sesa["elapsed_s"], 2),
        "sesa_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["sesa"]),
        "dlt_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["dlt"]),
        "sesa_cpu_s": sesa["cpu_s"],
        "dlt_cpu_s": dlt["cpu_s"],
        "cpu_speedup": round(dlt["cpu_s"] / sesa["cpu_s"], 2),
        "dlt_written": dlt["written"],
        "dlt_files": dlt["files"],
        "sesa_runs_s": [r["elapsed_s"] for r in runs["sesa"]],
        "dlt_runs_s": [r["elapsed_s"] for r in runs["dlt"]],
    })


if __name__ == "__main__":
    main()
