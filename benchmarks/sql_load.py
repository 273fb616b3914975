"""Load throughput into PostgreSQL: ``load_sql`` against a hand-written psycopg ``COPY``.

The same N RFI-like rows (a JSONL file written first) are loaded into two fresh tables of the
same shape (text primary key, timestamptz, timestamps, integer, texts), with
``read_jsonl -> load_sql`` in its default mode (upsert; the keys are new, so each batch is
streamed into a COPY straight into the table, one transaction per batch), again with
``mode="insert"`` (the same COPY) and once by hand: the same ``read_jsonl`` records written
with psycopg's ``copy.write_row`` straight into the table in one ``COPY`` and one
transaction. Both read
the file the same way, so the ratio measures the loader, not the reader.
Autovacuum is off on these tables and a ``CHECKPOINT`` precedes each load: a million rows just
loaded into one variant's table would otherwise be vacuumed, analysed and flushed while the
next variant loads, on the same cores.
The tables are then counted and compared with ``EXCEPT`` both ways. The last stdout line is
JSON: ``rows``, ``sesa_rows_per_s``, ``sesa_insert_rows_per_s``, ``raw_rows_per_s``,
``ratio`` (upsert sesa / raw) and ``insert_ratio`` (insert sesa / raw); ``--repeat``
takes the best of alternating runs, and ``median_ratio`` / ``median_insert_ratio`` compare
the median runs.

    python benchmarks/sql_load.py --rows 1000000 [--url postgresql://...] [--batch 10000]

Without ``--url`` the server is ``$POSTGRES_URL``, else started with
``scripts/services.sh start postgres`` (and stopped again at the end if this script started
it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, emit, log, postgres, write_input

# the records' fields, in table order, and the table's columns
FIELDS = ("_id", "@timestamp", "project_id", "rfi_number", "title", "question", "created_at",
          "responded_at", "status")
DDL = """CREATE TABLE {name} (
    "_id" text PRIMARY KEY, "@timestamp" timestamptz NOT NULL, project_id text NOT NULL,
    rfi_number integer NOT NULL, title text, question text, created_at timestamp,
    responded_at timestamp, status varchar(16)) WITH (autovacuum_enabled = false)"""



def sql(url: str, *statements: str) -> list[Any]:
    import psycopg

    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for s in statements:
            cur = conn.execute(s)
            out.append(cur.fetchall() if cur.description else None)
    return out


def settle(url: str) -> None:
    """Write the dirty buffers out before a load (``CHECKPOINT``, when the role may), so the
    last variant's million rows are not flushed while the next one loads."""
    import psycopg

    try:
        sql(url, "CHECKPOINT")
    except psycopg.Error as exc:
        log(f"no CHECKPOINT ({type(exc).__name__}): variants may overlap background writes")


def load_sesa(url: str, inp: Path, table: str, batch: int, mode: str = "upsert") -> float:
    from sesa_fp import pipe, read_jsonl, run
    from sesa_fp.loaders.sql import load_sql

    t0 = time.perf_counter()
    report = run(pipe(read_jsonl(str(inp)), load_sql(url, table, key=["_id"], mode=mode,
                                                     batch_size=batch)), progress=False)
    elapsed = time.perf_counter() - t0
    if report.dead_letters:
        raise SystemExit(f"sesa: {report.dead_letters} dead letters")
    return elapsed


def load_raw(url: str, inp: Path, table: str, batch: int) -> float:
    import psycopg

    from sesa_fp import read_jsonl

    cols = ", ".join(f'"{f}"' for f in FIELDS)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            write = copy.write_row
            for rec in read_jsonl(str(inp)):
                write([rec.get(k) for k in FIELDS])
        conn.commit()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs, order alternating")
    args = ap.parse_args(argv)
    times: dict[str, float] = {}
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, postgres(args.url) as url:
        raw_url = url.replace("postgresql+psycopg://", "postgresql://")
        inp = write_input(Path(tmp) / "rows.jsonl", args.rows, compress=False)
        for rep in range(args.repeat):
            order = ("raw", "sesa", "sesa_insert") if rep % 2 == 0 \
                else ("sesa_insert", "sesa", "raw")
            tables = {v: f"bench_load_{v}_{time.monotonic_ns()}" for v in order}
            try:
                for variant in order:
                    table = tables[variant]
                    sql(raw_url, DDL.format(name=table))
                    settle(raw_url)
                    log(f"{variant}: loading {args.rows:,} rows into {table}")
                    if variant == "raw":
                        took = load_raw(url, inp, table, args.batch)
                    else:
                        took = load_sesa(url, inp, table, args.batch,
                                         "insert" if variant == "sesa_insert" else "upsert")
                    [[(n,)]] = sql(raw_url, f"SELECT count(*) FROM {table}")
                    if n != args.rows:
                        raise SystemExit(f"{variant}: {n} rows in {table}, "
                                         f"expected {args.rows}")
                    log(f"{variant}: {took:.2f}s, {args.rows / took:,.0f} rows/s")
                    times[variant] = min(took, times.get(variant, took))
                    runs.setdefault(variant, []).append(took)
                for a in (tables["sesa"], tables["sesa_insert"]):
                    b = tables["raw"]
                    diff = sql(raw_url, f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT "
                                        f"SELECT * FROM {b}) d",
                               f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT "
                               f"SELECT * FROM {a}) d")
                    if any(r[0][0] for r in diff):
                        raise SystemExit(f"{a} and {b} differ: {diff}")
            finally:
                for t in tables.values():
                    sql(raw_url, f"DROP TABLE IF EXISTS {t}")
    sesa_rps = args.rows / times["sesa"]
    insert_rps = args.rows / times["sesa_insert"]
    raw_rps = args.rows / times["raw"]
    emit({"rows": args.rows, "batch": args.batch, "repeat": args.repeat,
          "sesa_s": round(times["sesa"], 3), "sesa_insert_s": round(times["sesa_insert"], 3),
          "raw_s": round(times["raw"], 3),
          "sesa_rows_per_s": round(sesa_rps), "sesa_insert_rows_per_s": round(insert_rps),
          "raw_rows_per_s": round(raw_rps),
          "ratio": round(sesa_rps / raw_rps, 3),
          "insert_ratio": round(insert_rps / raw_rps, 3),
          # the same over the median run of each (less moved by one lucky run)
          "median_ratio": round(statistics.median(runs["raw"])
                                / statistics.median(runs["sesa"]), 3),
          "median_insert_ratio": round(statistics.median(runs["raw"])
                                       / statistics.median(runs["sesa_insert"]), 3)})


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
