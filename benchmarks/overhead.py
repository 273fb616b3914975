"""sesa_fp overhead against a hand-written loop doing the same job with the same libraries.

Job: JSONL.GZ -> normalize -> cast created_at/responded_at to datetime -> sha256_concat id over
project_id+rfi_number -> staged JSONL.GZ (zlib level 6, gzip wrapper). Every run is a fresh
subprocess; sesa and baseline alternate; the best time of ``--repeat`` runs each is compared.

    python benchmarks/overhead.py --records 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _common import child_result, clock, emit, gz_digest, log, run_child, write_input

CAST_FIELDS = ["created_at", "responded_at"]
ID_SPEC = {"type": "sha256_concat", "fields": ["project_id", "rfi_number"]}


def sesa_job(inp: Path, out: Path) -> int:
    """The job through pipe/run; returns records staged."""
    from sesa_fp import dlq_sink, partition, pipe, read_jsonl, run, stage, tee, to_storage
    from sesa_fp.ids import id_strategy
    from sesa_fp.transforms import cast, normalize

    start = clock()
    idf = id_strategy(ID_SPEC)
    report = run(
        pipe(
            read_jsonl(str(inp)),
            stage(normalize()),
            stage(cast(CAST_FIELDS, to="datetime")),
            stage(lambda r: {**r, "_id": idf(r)}, name="with_id"),
            tee(to_storage(str(out / "staging"), gzip=True)),
            partition(dlq_sink(str(out / "dlq"))),
        ),
        progress=False,
    )
    if report.dead_letters or report.dropped:
        raise SystemExit(f"unexpected dead letters/drops: {report}")
    staged = sum(o["records"] for o in report.outputs if o["kind"] == "staging")
    if staged != report.emitted:
        raise SystemExit(f"staged {staged} != emitted {report.emitted}: {report}")
    child_result(start, variant="sesa", records=staged)
    return staged


def baseline_job(inp: Path, out: Path, plain_orjson: bool = False) -> int:
    """The same job as a plain loop: gzip reader, the same record functions, one gz file."""
    import gzip
    import zlib

    import orjson

    from sesa_fp.ids import id_strategy
    from sesa_fp.transforms import cast, normalize

    start = clock()
    norm, to_dt, idf = normalize(), cast(CAST_FIELDS, to="datetime"), id_strategy(ID_SPEC)
    if plain_orjson:  # what the exact codec costs on top: orjson alone, wide ints widened
        opts = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
        loads = orjson.loads

        def dumps_line(record: Any) -> bytes:
            return orjson.dumps(record, option=opts)
    else:  # the same JSON functions as the pipeline, so the ratio is what composing costs
        from sesa_fp.codec import dumps_line, loads
    out.mkdir(parents=True, exist_ok=True)
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    n, buf, size = 0, [], 0
    with gzip.open(inp, "rb") as src, (out / "part-00000.jsonl.gz").open("wb") as dst:
        for line in src:
            rec = to_dt(norm(loads(line)))
            line_out = dumps_line({**rec, "_id": idf(rec)})
            buf.append(line_out)
            size += len(line_out)
            n += 1
            if size >= 1 << 20:
                dst.write(z.compress(b"".join(buf)))
                buf.clear()
                size = 0
        dst.write(z.compress(b"".join(buf)))
        dst.write(z.flush())
    child_result(start, variant="baseline", records=n)
    return n


VARIANTS = ("sesa", "baseline", "orjson")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each variant (best is kept)")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.variant:  # child process: one run of one variant
        if args.variant == "sesa":
            sesa_job(args.input, args.out)
        else:
            baseline_job(args.input, args.out, plain_orjson=args.variant == "orjson")
        return

    with tempfile.TemporaryDirectory(prefix="sesa-bench-overhead-") as tmp_s:
        tmp = Path(tmp_s)
        inp = write_input(tmp / "in.jsonl.gz", args.records, compress=True)
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
        rss: list[float] = []
        for i in range(args.repeat):
            order = list(VARIANTS) if i % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                out = tmp / f"out-{variant}"
                shutil.rmtree(out, ignore_errors=True)
                r = run_child("overhead.py", "--variant", variant, "--input", str(inp),
                              "--out", str(out), cwd=tmp)
                if r["records"] != args.records:
                    raise SystemExit(f"{variant} produced {r['records']} != {args.records}")
                times[variant].append(r["elapsed_s"])
                cpu[variant].append(r["cpu_s"])
                if variant == "sesa":
                    rss.append(r["peak_rss_mb"])
                log(f"run {i + 1}/{args.repeat} {variant:<8} {r['elapsed_s']:.2f}s (CPU "
                    f"{r['cpu_s']:.2f}s) peak RSS {r['peak_rss_mb']:.1f} MiB")
        sesa_n, sesa_sha = gz_digest(sorted((tmp / "out-sesa" / "staging").glob("part-*")))
        base_n, base_sha = gz_digest([tmp / "out-baseline" / "part-00000.jsonl.gz"])
        log(f"output check: sesa {sesa_n:,} lines, baseline {base_n:,} lines, "
            f"identical content: {sesa_sha == base_sha}")
        if sesa_n != base_n or sesa_n != args.records:
            raise SystemExit("record counts differ")

    sesa_s, baseline_s = min(times["sesa"]), min(times["baseline"])
    emit({
        "records": args.records,
        "sesa_s": sesa_s,
        "baseline_s": baseline_s,
        "ratio": round(sesa_s / baseline_s, 4),
        "peak_rss_mb": max(rss),
        "identical_output": sesa_sha == base_sha,
        "cpu_ratio": round(min(cpu["sesa"]) / min(cpu["baseline"]), 4),
        "sesa_runs_s": times["sesa"],
        "baseline_runs_s": times["baseline"],
        "sesa_cpu_s": cpu["sesa"],
        "baseline_cpu_s": cpu["baseline"],
        # the loop again with plain orjson (integers beyond 64 bits silently widened): what
        # keeping values exact costs, apart from composing
        "orjson_loop_s": min(times["orjson"]),
        "exact_codec_cost": round(baseline_s / min(times["orjson"]), 4),
        "ratio_vs_orjson_loop": round(sesa_s / min(times["orjson"]), 4),
    })


if __name__ == "__main__":
    main()
