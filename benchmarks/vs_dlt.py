"""sesa_fp against dlt: plain JSONL -> staged JSONL.GZ files on the local filesystem.

sesa: ``run(pipe(read_jsonl(path), tee(to_storage(out, compression=..., level=...))))`` once
per part codec of ``--codecs``: gzip level 6 (the default), gzip level 1, zstd level 3.
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
        opener: Any = gzip.open if p.name.endswith(".gz") else open
        if p.name.endswith(".zst"):
            import zstandard

            opener = zstandard.open
        with opener(p, "rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
    return n


#: sesa variants: the part codec and level given to to_storage
CODECS = {"gzip6": ("gzip", 6), "gzip1": ("gzip", 1), "zstd": ("zstd", 3)}


def sesa_job(inp: Path, out: Path, codec: str = "gzip6") -> None:
    from sesa_fp import pipe, read_jsonl, run, tee, to_storage

    compression, level = CODECS[codec]
    start = clock()
    report = run(pipe(read_jsonl(str(inp)),
                      tee(to_storage(str(out), compression=compression, level=level))),
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
    ap.add_argument("--codecs", default="gzip6,gzip1,zstd",
                    help=f"sesa part codecs to run, comma-separated (of {', '.join(CODECS)})")
    ap.add_argument("--variant", choices=["sesa", "dlt"], help=argparse.SUPPRESS)
    ap.add_argument("--codec", choices=sorted(CODECS), default="gzip6", help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.variant == "sesa":
        return sesa_job(args.input, args.out, args.codec)
    if args.variant == "dlt":
        return dlt_job(args.input, args.out, args.dlt_batch)

    codecs = [c for c in args.codecs.split(",") if c]
    if not codecs or not set(codecs) <= set(CODECS):
        raise SystemExit(f"--codecs: choose from {', '.join(CODECS)}")
    names = [f"sesa-{c}" for c in codecs] + ["dlt"]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="sesa-bench-dlt-") as tmp_s:
        tmp = Path(tmp_s)
        inp = write_input(tmp / "in.jsonl", args.records, compress=False)
        for i in range(args.repeat):
            for name in names if i % 2 == 0 else names[::-1]:
                variant, _, codec = name.partition("-")
                env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false",
                       "DLT_DATA_DIR": str(tmp / f"dlt_data-{i}")}
                out = tmp / f"out-{name}-{i}"
                r = run_child("vs_dlt.py", "--variant", variant, "--input", str(inp),
                              "--out", str(out), "--dlt-batch", str(args.dlt_batch),
                              "--codec", codec or "gzip6", env=env, cwd=tmp)
                size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
                shutil.rmtree(out)
                r["out_mb"] = round(size / 2**20, 1)
                log(f"{name:<10} {r['elapsed_s']:.2f}s (CPU {r['cpu_s']:.2f}s) wrote "
                    f"{r['written']:,} records, {r['out_mb']} MiB, "
                    f"peak RSS {r['peak_rss_mb']:.1f} MiB")
                if r["written"] != args.records:
                    raise SystemExit(f"{name} wrote {r['written']} records, "
                                     f"not {args.records}")
                runs[name].append(r)

    best = {n: min(rs, key=lambda r: r["elapsed_s"]) for n, rs in runs.items()}
    dlt = best["dlt"]
    sesa = best[names[0]]
    per_codec = {}
    for c in codecs:
        b = best[f"sesa-{c}"]
        per_codec[c] = {"sesa_s": b["elapsed_s"], "sesa_cpu_s": b["cpu_s"],
                        "out_mb": b["out_mb"],
                        "speedup": round(dlt["elapsed_s"] / b["elapsed_s"], 2),
                        "cpu_speedup": round(dlt["cpu_s"] / b["cpu_s"], 2)}
    emit({
        "codec": codecs[0],
        "codecs": per_codec,
        "dlt_out_mb": dlt["out_mb"],
        "records": args.records,
        "sesa_s": sesa["elapsed_s"],
        "dlt_s": dlt["elapsed_s"],
        "speedup": round(dlt["elapsed_s"] / sesa["elapsed_s"], 2),
        "sesa_peak_rss_mb": max(r["peak_rss_mb"] for n in names[:-1] for r in runs[n]),
        "dlt_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["dlt"]),
        "sesa_cpu_s": sesa["cpu_s"],
        "dlt_cpu_s": dlt["cpu_s"],
        "cpu_speedup": round(dlt["cpu_s"] / sesa["cpu_s"], 2),
        "dlt_written": dlt["written"],
        "dlt_files": dlt["files"],
        "sesa_runs_s": [r["elapsed_s"] for r in runs[names[0]]],
        "dlt_runs_s": [r["elapsed_s"] for r in runs["dlt"]],
    })


if __name__ == "__main__":
    main()
